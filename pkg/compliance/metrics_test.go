package compliance

import (
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"locus.dev/locus/pkg/metrics"
)

// A pod can name any standard; a standard that no node carries is counted
// as "other", so rejections_total has no series per pod-supplied string.
func TestRejectionMetricLabelsAreBounded(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	node := st.MakeNode().Name("n1").Label(defaultPrefix+"soc2", "2020-01-01").Obj()
	pl, _ := newTestPlugin(ctx, t, pluginSetup{nodes: []*v1.Node{node}})
	rejections := func() map[string]float64 {
		t.Helper()
		got, err := testutil.GetCounterValuesFromGatherer(legacyregistry.DefaultGatherer,
			"locus_compliance_rejections_total", map[string]string{"reason": metrics.RejectMissing}, "standard")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	expired := func() float64 {
		t.Helper()
		v, err := testutil.GetCounterMetricValue(metrics.ComplianceRejections.WithLabelValues("soc2", metrics.RejectExpired))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before, beforeExpired := rejections(), expired()

	for _, ann := range []string{"made-up-standard-x1", "soc2"} {
		pod := st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, ann).Obj()
		state := framework.NewCycleState()
		if _, status := pl.PreFilter(ctx, state, pod, nil); !status.IsSuccess() {
			t.Fatalf("PreFilter() = %v", status)
		}
		if status := pl.Filter(ctx, state, pod, nodeInfo(node)); status.IsSuccess() {
			t.Fatalf("Filter() passed node n1 for %s", ann)
		}
	}
	after := rejections()
	if _, ok := after["made-up-standard-x1"]; ok {
		t.Errorf("a series labelled with the pod's standard exists: %v", after)
	}
	if got := after[otherStandard] - before[otherStandard]; got != 1 {
		t.Errorf("rejections{standard=other,reason=missing} grew by %v, want 1", got)
	}
	if got := expired() - beforeExpired; got != 1 {
		t.Errorf("rejections{standard=soc2,reason=expired} grew by %v, want 1 (a standard that a node carries keeps its name)", got)
	}
}
