package compliance

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	testingclock "k8s.io/utils/clock/testing"

	"locus.dev/locus/pkg/leader"
	"locus.dev/locus/pkg/metrics"
)

// nextEvent waits a little for an event; "" if none comes.
func nextEvent(recorder *events.FakeRecorder, within time.Duration) string {
	select {
	case e := <-recorder.Events:
		return e
	case <-time.After(within):
		return ""
	}
}

func lapsedGauge(t *testing.T) float64 {
	t.Helper()
	v, err := testutil.GetGaugeMetricValue(metrics.ComplianceLapsedPods)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// waitLapsedGauge waits until the lapsed-pods gauge reads want (the
// plugin's node and pod handlers run after the informer's store, which
// changeNode waits for, has the change) and returns what it reads last.
func waitLapsedGauge(ctx context.Context, t *testing.T, want float64) float64 {
	t.Helper()
	got := lapsedGauge(t)
	_ = wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got = lapsedGauge(t)
		return got == want, nil
	})
	return got
}

// waitTracked waits until the plugin tracks n regulated pods.
func waitTracked(ctx context.Context, t *testing.T, pl *Compliance, n int) {
	t.Helper()
	// Generous for the race detector on a loaded machine; a pod that is
	// never tracked (as when the pod's and its namespace's handlers undid
	// each other) still fails the test.
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		pl.lapses.mu.Lock()
		defer pl.lapses.mu.Unlock()
		return len(pl.lapses.pods) == n, nil
	}); err != nil {
		pl.lapses.mu.Lock()
		defer pl.lapses.mu.Unlock()
		tracked := slices.Sorted(maps.Keys(pl.lapses.pods))
		t.Fatalf("the plugin %p does not track %d pods: %v; it tracks %v", pl, n, err, tracked)
	}
}

func boundPod(name, node string, ann map[string]string) *v1.Pod {
	p := st.MakePod().Name(name).Namespace("default").UID(name).Node(node).Obj()
	p.Annotations = ann
	return p
}

// A regulated pod running on a node whose certification is removed gets one
// CertificationLapsed warning per lapse; unrelated label changes do not
// repeat it; the node qualifying again re-arms it; unregulated pods get none.
func TestLapseOnLabelChange(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pciKey := defaultPrefix + "pci-dss"
	node := st.MakeNode().Name("n1").Label(pciKey, "true").Obj()
	pl, recorder := newTestPlugin(ctx, t, pluginSetup{
		nodes: []*v1.Node{node},
		pods: []*v1.Pod{
			boundPod("regulated", "n1", map[string]string{annCompliance: "pci-dss"}),
			boundPod("plain", "n1", nil),
			st.MakePod().Name("pending").Namespace("default").UID("pending").Annotation(annCompliance, "pci-dss").Obj(),
		},
	})
	waitTracked(ctx, t, pl, 1)
	if e := nextEvent(recorder, 100*time.Millisecond); e != "" {
		t.Fatalf("event %q while the node qualifies", e)
	}

	changeNode(ctx, t, pl, "n1", removeLabel(pciKey), lacksLabel(pciKey))
	want := "Warning CertificationLapsed node n1 no longer meets the pod's compliance requirements: missing certification pci-dss; locus does not evict the pod"
	if got := nextEvent(recorder, 5*time.Second); got != want {
		t.Fatalf("event %q, want %q", got, want)
	}
	if got := waitLapsedGauge(ctx, t, 1); got != 1 {
		t.Errorf("locus_compliance_lapsed_pods = %v, want 1", got)
	}

	// Another label change and a periodic check: still one event.
	changeNode(ctx, t, pl, "n1", setLabel("team", "payments"), hasLabel("team", "payments"))
	pl.checkPods(nil)
	if e := nextEvent(recorder, 100*time.Millisecond); e != "" {
		t.Errorf("second event %q for the same lapse", e)
	}

	// Certified again, then removed again: a new lapse, a new event.
	changeNode(ctx, t, pl, "n1", setLabel(pciKey, "true"), hasLabel(pciKey, "true"))
	if got := waitLapsedGauge(ctx, t, 0); got != 0 {
		t.Errorf("locus_compliance_lapsed_pods = %v after the node qualifies again, want 0", got)
	}
	changeNode(ctx, t, pl, "n1", removeLabel(pciKey), lacksLabel(pciKey))
	if got := nextEvent(recorder, 5*time.Second); got != want {
		t.Errorf("event %q after the second lapse, want %q", got, want)
	}
}

// A dated certification lapses at midnight UTC; the periodic check, timed to
// midnight, finds it without any change to the node.
func TestLapseAtMidnight(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	beforeMidnight := time.Date(2026, 2, 15, 23, 59, 50, 0, time.UTC)
	node := st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "2026-02-15").Obj()
	pl, recorder := newTestPlugin(ctx, t, pluginSetup{
		nodes: []*v1.Node{node},
		pods:  []*v1.Pod{boundPod("regulated", "n1", map[string]string{annCompliance: "pci-dss"})},
		now:   beforeMidnight,
	})
	waitTracked(ctx, t, pl, 1)
	clk := pl.clock.(*testingclock.FakeClock)
	if e := nextEvent(recorder, 100*time.Millisecond); e != "" {
		t.Fatalf("event %q on the certification's last day", e)
	}
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return clk.HasWaiters(), nil
	}); err != nil {
		t.Fatal("the periodic check does not wait on the clock")
	}
	clk.Step(10 * time.Second) // midnight UTC, well before a minute passes
	got := nextEvent(recorder, 5*time.Second)
	if !strings.Contains(got, "CertificationLapsed") || !strings.Contains(got, "certification pci-dss expired 2026-02-15") {
		t.Errorf("event %q at midnight, want a CertificationLapsed warning naming the expiry", got)
	}
}

func TestUntilNextCheck(t *testing.T) {
	for _, tt := range []struct {
		now  time.Time
		want time.Duration
	}{
		{now: time.Date(2026, 2, 15, 12, 0, 0, 0, time.UTC), want: time.Minute},
		{now: time.Date(2026, 2, 15, 23, 59, 30, 0, time.UTC), want: 30 * time.Second},
		{now: time.Date(2026, 2, 15, 23, 59, 0, 0, time.UTC), want: time.Minute},
		// Midnight UTC, whatever the time zone of now.
		{now: time.Date(2026, 2, 16, 0, 59, 45, 0, time.FixedZone("CET", 3600)), want: 15 * time.Second},
	} {
		if got := untilNextCheck(tt.now); got != tt.want {
			t.Errorf("untilNextCheck(%v) = %v, want %v", tt.now, got, tt.want)
		}
	}
}

// A standby replica records no event; once it leads, it records those it
// has found.
func TestLapseEventsFromTheLeaderOnly(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pciKey := defaultPrefix + "pci-dss"
	elected := leader.New()
	pl, recorder := newTestPlugin(ctx, t, pluginSetup{
		nodes:   []*v1.Node{st.MakeNode().Name("n1").Label(pciKey, "true").Obj()},
		pods:    []*v1.Pod{boundPod("regulated", "n1", map[string]string{annCompliance: "pci-dss"})},
		elected: elected,
	})
	waitTracked(ctx, t, pl, 1)
	changeNode(ctx, t, pl, "n1", removeLabel(pciKey), lacksLabel(pciKey))
	if e := nextEvent(recorder, 200*time.Millisecond); e != "" {
		t.Fatalf("a standby recorded %q", e)
	}
	if got := waitLapsedGauge(ctx, t, 1); got != 1 {
		t.Errorf("locus_compliance_lapsed_pods = %v on the standby, want 1", got)
	}
	elected.Lead()
	if got := nextEvent(recorder, 5*time.Second); !strings.Contains(got, "CertificationLapsed") {
		t.Errorf("event %q after taking the lead, want CertificationLapsed", got)
	}
	if e := nextEvent(recorder, 100*time.Millisecond); e != "" {
		t.Errorf("second event %q", e)
	}
}

// The bookkeeping forgets deleted pods (also as tombstones), finished pods,
// and deleted nodes with their pods; the certification cache forgets deleted
// nodes.
func TestLapsesForgetDeletedPodsAndNodes(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pciKey := defaultPrefix + "pci-dss"
	ann := map[string]string{annCompliance: "pci-dss"}
	pl, _ := newTestPlugin(ctx, t, pluginSetup{
		nodes: []*v1.Node{
			st.MakeNode().Name("n1").Label(pciKey, "true").Obj(),
			st.MakeNode().Name("n2").Obj(),
		},
		pods: []*v1.Pod{boundPod("a", "n1", ann), boundPod("b", "n1", ann), boundPod("c", "n1", ann), boundPod("d", "n2", ann)},
	})
	waitTracked(ctx, t, pl, 4)
	if got := waitLapsedGauge(ctx, t, 1); got != 1 {
		t.Errorf("locus_compliance_lapsed_pods = %v, want 1 (d on uncertified n2)", got)
	}
	if got := pl.index.metricStandard("pci-dss"); got != "pci-dss" {
		t.Errorf("metricStandard(pci-dss) = %q while n1 carries it", got)
	}
	pods := pl.handle.ClientSet().CoreV1().Pods("default")
	if err := pods.Delete(ctx, "a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTracked(ctx, t, pl, 3)
	pl.onPodDelete(cache.DeletedFinalStateUnknown{Key: "default/b", Obj: boundPod("b", "n1", ann)})
	waitTracked(ctx, t, pl, 2)
	finished := boundPod("c", "n1", ann)
	finished.Status.Phase = v1.PodSucceeded
	if _, err := pods.UpdateStatus(ctx, finished, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitTracked(ctx, t, pl, 1)

	// Deleting the nodes forgets their certifications and their pods.
	changeNode(ctx, t, pl, "n1", nil, isGone)
	changeNode(ctx, t, pl, "n2", nil, isGone)
	waitTracked(ctx, t, pl, 0)
	if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		pl.index.mu.RLock()
		defer pl.index.mu.RUnlock()
		_, ok := pl.index.of["n1"]
		return !ok, nil
	}); err != nil {
		t.Error("the node index keeps deleted node n1")
	}
	pl.lapses.mu.Lock()
	if len(pl.lapses.byNode) != 0 || pl.lapses.nLapsed != 0 {
		t.Errorf("lapses keep byNode %v, nLapsed %d", pl.lapses.byNode, pl.lapses.nLapsed)
	}
	pl.lapses.mu.Unlock()
	if got := pl.index.metricStandard("pci-dss"); got != otherStandard {
		t.Errorf("metricStandard(pci-dss) = %q after the only node carrying it was deleted, want %q", got, otherStandard)
	}
	if got := waitLapsedGauge(ctx, t, 0); got != 0 {
		t.Errorf("locus_compliance_lapsed_pods = %v, want 0", got)
	}
}
