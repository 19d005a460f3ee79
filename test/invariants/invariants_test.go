package invariants

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/pkg/testenv"
)

// recorder is a TB that keeps the checker's errors for the test to read.
type recorder struct {
	mu       sync.Mutex
	errors   []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }
func (r *recorder) Cleanup(f func())                  { r.cleanups = append(r.cleanups, f) }

// A checker that cannot fail proves nothing: pods bound by hand (no
// scheduler runs here) over a quota's max, beyond the guaranteed total, and
// onto an uncertified node are all reported, and nothing else is.
func TestCheckerReportsBrokenPromises(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{})
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	sc, err := schedclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := cp.Client
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "plain", CPU: "16", Memory: "64Gi"}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateNamespace(ctx, c, "capped", nil); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateNamespace(ctx, c, "payments", map[string]string{"locus.dev/compliance": "pci-dss"}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.SchedulingV1alpha1().ElasticQuotas("capped").Create(ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: "capped", Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	checker := Watch(ctx, rec, c, sc, Options{})
	bind := func(ns, name string) {
		t.Helper()
		if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: "locus-scheduler", CPU: "1"}); err != nil {
			t.Fatal(err)
		}
		if err := c.CoreV1().Pods(ns).Bind(ctx, &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Target:     v1.ObjectReference{Kind: "Node", Name: "plain"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	bind("capped", "one") // within max 2, within the guaranteed 1
	bind("capped", "two") // within max, beyond the guaranteed total
	bind("capped", "three")
	bind("payments", "card") // no node holds pci-dss
	want := []string{
		"aggregate: capped/two bound while all quotas use 2 of cpu, over the sum of their min 1",
		"quota of namespace capped: cpu used 3 over max 2 once three bound",
		"regulated pod payments/card bound to plain, which does not hold a valid pci-dss",
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(checker.Violations()) >= 4, nil
	}); err != nil {
		t.Fatalf("violations %q, want at least 4", checker.Violations())
	}
	got := strings.Join(checker.Violations(), "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("violations:\n%s\nlack %q", got, w)
		}
	}
	if strings.Contains(got, "capped/one") {
		t.Errorf("a pod within the rules was reported:\n%s", got)
	}
	// The checker fails its test at cleanup.
	for _, f := range rec.cleanups {
		f()
	}
	if len(rec.errors) < 4 || !strings.HasPrefix(rec.errors[0], "invariant broken: ") {
		t.Errorf("the checker reported %q to its test, want one error per violation", rec.errors)
	}
}
