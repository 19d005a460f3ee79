package datalocality

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakediscovery "k8s.io/client-go/discovery/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// annotationLimit is the API server's limit on all of an object's
// annotations together.
const annotationLimit = 256 * 1024

// eventNoteLimit is the API server's limit on an event's note: a longer
// event is refused and lost.
const eventNoteLimit = 1024

// Annotations of nearly 256 KiB (what the API server allows) give reasons
// and events of bounded length: before, the malformed wait was quoted whole
// into the reason (copied into the pod's status and the log on every
// attempt), and every missing Dataset was listed in the event, which the
// API server refused past 1,024 bytes.
func TestHugeAnnotationsGiveBoundedMessages(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	manyNames := strings.Repeat("missing-dataset,", annotationLimit/len("missing-dataset,")-64)
	for i := 0; i < 100; i++ {
		manyNames += fmt.Sprintf("d-%d,", i)
	}
	for _, tc := range []struct {
		name, datasets, wait string
		wantCode             fwk.Code
	}{
		{name: "one huge wait", datasets: "cached", wait: strings.Repeat("9", annotationLimit-100), wantCode: fwk.UnschedulableAndUnresolvable},
		{name: "one huge dataset name", datasets: strings.Repeat("x", annotationLimit-100), wantCode: fwk.Skip},
		{name: "thousands of dataset names", datasets: manyNames, wantCode: fwk.Skip},
		{name: "multibyte wait", datasets: "cached", wait: strings.Repeat("é", annotationLimit/4), wantCode: fwk.UnschedulableAndUnresolvable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPlugin(ctx, t, pluginSetup{})
			pod := dataPod(tc.datasets).Obj()
			if tc.wait != "" {
				pod.Annotations[annWait] = tc.wait
			}
			state := framework.NewCycleState()
			_, status := p.PreFilter(ctx, state, pod, nodeInfos())
			if status.Code() != tc.wantCode {
				t.Fatalf("PreFilter() = %v, want code %v", status, tc.wantCode)
			}
			if n := len(status.Message()); n > 200 {
				t.Errorf("PreFilter() reason is %d bytes, want it bounded: %.300s", n, status.Message())
			}
			if tc.wantCode == fwk.UnschedulableAndUnresolvable && !strings.Contains(status.Message(), "bytes)") {
				t.Errorf("PreFilter() reason %q does not say how long the value was", status.Message())
			}
			for _, e := range p.events() {
				if len(e) > eventNoteLimit {
					t.Errorf("event of %d bytes, over the API server's limit: %.300s", len(e), e)
				}
				if !strings.Contains(e, "DatasetNotFound") {
					t.Errorf("unexpected event %.300s", e)
				}
				if tc.name == "thousands of dataset names" && !strings.Contains(e, " more not found") {
					t.Errorf("event %q does not say how many more", e)
				}
			}
		})
	}
}

// A Dataset of 10,000 locations (the CRD allows 512; an API server without
// the CRD's schema, or the what-if engine, may hold more) is read whole.
func TestTenThousandLocations(t *testing.T) {
	ds := &locusv1alpha1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "wide"}}
	for i := 0; i < 10000; i++ {
		ds.Spec.Locations = append(ds.Spec.Locations, locusv1alpha1.DatasetLocation{Node: fmt.Sprintf("node-%d", i), Bytes: resource.MustParse("1Gi")})
	}
	d := &Data{}
	d.addDataset(ds)
	if len(d.Nodes) != 10000 {
		t.Fatalf("%d nodes hold the data, want 10000", len(d.Nodes))
	}
	n := node("node-9999", "a", "r1")
	if l := d.LevelOf(n); l != LevelNode {
		t.Errorf("LevelOf(node-9999) = %v", l)
	}
	if note := PlacementNote(d, n, LevelNode); note != "node-level locality on node-9999: 1Gi on the node" {
		t.Errorf("PlacementNote = %q", note)
	}
}

// Where the API server does not serve Datasets, the plugin registers no
// Dataset event (the scheduler would wait forever for its own informer of
// them) and warns, naming the resource.
func TestNoDatasetEventsWhereUnserved(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	for _, tc := range []struct {
		name      string
		resources []*metav1.APIResourceList
		want      bool
	}{
		{name: "served", resources: []*metav1.APIResourceList{{GroupVersion: locusv1alpha1.SchemeGroupVersion.String(), APIResources: []metav1.APIResource{{Name: "datasets"}}}}, want: true},
		{name: "not served"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newTestPlugin(ctx, t, pluginSetup{})
			logger := ktesting.NewLogger(t, ktesting.NewConfig(ktesting.BufferLogs(true)))
			p.logger = logger
			p.checkServed(&fakediscovery.FakeDiscovery{Fake: &clienttesting.Fake{Resources: tc.resources}})
			events, err := p.EventsToRegister(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got := false
			for _, e := range events {
				if e.Event.Resource == locusv1alpha1.DatasetResource {
					got = true
				}
			}
			if got != tc.want {
				t.Errorf("Dataset event registered: %v, want %v", got, tc.want)
			}
			logs := logger.GetSink().(ktesting.Underlier).GetBuffer().String()
			if warned := strings.Contains(logs, `does not serve this resource`) && strings.Contains(logs, `resource="datasets.v1alpha1.locus.dev"`); warned == tc.want {
				t.Errorf("warned: %v, want %v:\n%s", warned, !tc.want, logs)
			}
		})
	}
}

// A pod naming a Dataset while the API server does not serve Datasets is
// told so in its DatasetNotFound event.
func TestDatasetNotFoundNamesTheMissingCRD(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestPlugin(ctx, t, pluginSetup{})
	_, _ = p.missing.List(datasetsResource, nil, &locusv1alpha1.DatasetList{}, apierrors.NewNotFound(datasetsResource, ""))
	pod := dataPod("sales").Obj()
	p.PreFilter(ctx, framework.NewCycleState(), pod, nodeInfos())
	want := "Warning DatasetNotFound Dataset sales not found in namespace ml; it does not affect placement (the API server does not serve datasets.locus.dev: is its CRD installed?)"
	if got := p.events(); len(got) != 1 || got[0] != want {
		t.Errorf("events = %q, want %q", got, want)
	}
}
