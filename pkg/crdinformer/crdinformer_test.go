package crdinformer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

var datasets = locusv1alpha1.Resource("datasets")

func TestUnserved(t *testing.T) {
	gv := locusv1alpha1.SchemeGroupVersion
	for _, tc := range []struct {
		name      string
		resources []*metav1.APIResourceList
		err       error
		want      map[string]bool
	}{
		{name: "group not served", want: map[string]bool{"datasets": true, "others": true}},
		{name: "one served", resources: []*metav1.APIResourceList{{GroupVersion: gv.String(), APIResources: []metav1.APIResource{{Name: "datasets"}}}},
			want: map[string]bool{"datasets": false, "others": true}},
		{name: "unknown error: assume served", err: errors.New("connection refused"), want: map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tc.resources}}
			if tc.err != nil {
				d.AddReactor("get", "resource", func(clienttesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err })
			}
			got := Unserved(d, gv, "datasets", "others")
			for k, v := range tc.want {
				if got[k] != v {
					t.Errorf("Unserved()[%s] = %v, want %v (all: %v)", k, got[k], v, got)
				}
			}
			if tc.err != nil && (got["datasets"] || got["others"]) {
				t.Errorf("Unserved() = %v on an unknown error, want all served", got)
			}
		})
	}
	if got := Unserved(nil, gv, "datasets"); got["datasets"] {
		t.Errorf("Unserved(nil) = %v, want served", got)
	}
}

// A list that finds the resource not served reads as empty, with one
// warning naming the resource and the consequence; other errors pass; the
// return of the resource is logged once.
func TestListReadsUnservedAsEmpty(t *testing.T) {
	logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
	m := New(logger, "DataLocality")
	m.consequence[datasets.String()] = "pods are placed without locality"
	notFound := apierrors.NewNotFound(schema.GroupResource{}, "")
	got := &locusv1alpha1.DatasetList{Items: []locusv1alpha1.Dataset{{}}}
	empty := &locusv1alpha1.DatasetList{}

	for i := 0; i < 3; i++ {
		obj, err := m.List(datasets, nil, empty, notFound)
		if err != nil || obj != empty {
			t.Fatalf("List(NotFound) = %v, %v; want the empty list", obj, err)
		}
	}
	if !m.NotServed(datasets) {
		t.Error("NotServed() = false after a NotFound list")
	}
	other := errors.New("connection refused")
	if _, err := m.List(datasets, nil, empty, other); err != other {
		t.Errorf("List(other error) err = %v, want it passed on", err)
	}
	if !m.NotServed(datasets) {
		t.Error("NotServed() changed on an unknown error")
	}
	if obj, err := m.List(datasets, got, empty, nil); err != nil || obj != got {
		t.Errorf("List(served) = %v, %v; want what was listed", obj, err)
	}
	if m.NotServed(datasets) {
		t.Error("NotServed() = true once served")
	}
	logs := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
	if n := strings.Count(logs, "does not serve this resource"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, logs)
	}
	for _, want := range []string{`resource="datasets.locus.dev"`, "DataLocality reads it as empty until it does: pods are placed without locality", "serves this resource again"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q:\n%s", want, logs)
		}
	}
}

// An informer of a resource that is not served syncs (empty), and reads the
// objects once the resource is served.
func TestInformerSyncsWithoutTheResource(t *testing.T) {
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	served := false
	list := func(context.Context, metav1.ListOptions) (runtime.Object, error) {
		mu.Lock()
		defer mu.Unlock()
		if !served {
			return nil, apierrors.NewNotFound(schema.GroupResource{}, "")
		}
		return &locusv1alpha1.DatasetList{ListMeta: metav1.ListMeta{ResourceVersion: "2"},
			Items: []locusv1alpha1.Dataset{{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "d", ResourceVersion: "2"}}}}, nil
	}
	w := watch.NewFake()
	watchFn := func(context.Context, metav1.ListOptions) (watch.Interface, error) {
		mu.Lock()
		defer mu.Unlock()
		if !served {
			return nil, apierrors.NewNotFound(schema.GroupResource{}, "")
		}
		return w, nil
	}
	inf := New(logger, "DataLocality").Informer(datasets, "", &locusv1alpha1.Dataset{}, &locusv1alpha1.DatasetList{}, 0, list, watchFn)
	go inf.RunWithContext(ctx)
	syncCtx, syncCancel := context.WithTimeout(ctx, 10*time.Second)
	defer syncCancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), inf.HasSynced) {
		t.Fatal("the informer did not sync without the resource")
	}
	if n := len(inf.GetStore().List()); n != 0 {
		t.Fatalf("%d objects without the resource, want 0", n)
	}
	mu.Lock()
	served = true
	mu.Unlock()
	deadline := time.Now().Add(20 * time.Second)
	for len(inf.GetStore().List()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the informer never read the objects once the resource was served")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
