package batchquota

import (
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// allocNodes is the cluster size of the allocation checks and benchmarks.
const allocNodes = 5000

func allocInfos() []fwk.NodeInfo {
	infos := make([]fwk.NodeInfo, allocNodes)
	for i := range infos {
		infos[i] = framework.NewNodeInfo()
		infos[i].SetNode(st.MakeNode().Name(fmt.Sprintf("node-%05d", i)).Label(v1.LabelTopologyZone, fmt.Sprintf("zone-%d", i%4)).Obj())
	}
	return infos
}

// perNode admits a gang member of a namespace with a quota and returns
// Filter and Score (with two siblings placed in zone-1) as calls on node i.
func perNode(tb testing.TB) (filter func(i int) *fwk.Status, score func(i int)) {
	tb.Helper()
	pod := bqMember("team", "p", "g", 1).Obj()
	e := newBQ(tb, bqSetup{
		quotas: []*schedv1alpha1.ElasticQuota{bqEQ("team", "10", "20")},
		groups: []*schedv1alpha1.PodGroup{bqGroup("team", "g", 1, nil)},
		pods:   []*v1.Pod{pod},
	})
	state := framework.NewCycleState()
	if _, s := e.pl.PreFilter(e.ctx, state, pod, nil); !s.IsSuccess() {
		tb.Fatalf("PreFilter: %v", s)
	}
	state.Write(preScoreStateKey, siblingZones{"zone-1": 2})
	infos := allocInfos()
	filter = func(i int) *fwk.Status { return e.pl.Filter(e.ctx, state, pod, infos[i%len(infos)]) }
	score = func(i int) {
		if _, s := e.pl.Score(e.ctx, state, pod, infos[i%len(infos)]); !s.IsSuccess() {
			tb.Fatalf("Score: %v", s)
		}
	}
	return filter, score
}

// Filter and Score allocate nothing per node.
func TestFilterAndScoreAllocateNothingPerNode(t *testing.T) {
	filter, score := perNode(t)
	if s := filter(0); !s.IsSuccess() {
		t.Fatalf("Filter = %v", s)
	}
	if allocs := testing.AllocsPerRun(100, func() { filter(7) }); allocs != 0 {
		t.Errorf("Filter: %v allocations per node, want 0", allocs)
	}
	if allocs := testing.AllocsPerRun(100, func() { score(1) }); allocs != 0 {
		t.Errorf("Score: %v allocations per node, want 0", allocs)
	}
}

func BenchmarkFilter(b *testing.B) {
	filter, _ := perNode(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		filter(i)
	}
}

func BenchmarkScore(b *testing.B) {
	_, score := perNode(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		score(i)
	}
}
