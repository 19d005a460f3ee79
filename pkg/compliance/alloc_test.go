package compliance

import (
	"context"
	"fmt"
	"testing"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// allocNodes is the cluster size of the allocation checks and benchmarks.
const allocNodes = 5000

// snapshotNodes are allocNodes nodes, every third one in eu-west-1 and the
// others in us-east-1, every other one certified for pci-dss, every fifth
// for soc2.
func snapshotNodes() ([]*v1.Node, []fwk.NodeInfo) {
	nodes := make([]*v1.Node, allocNodes)
	infos := make([]fwk.NodeInfo, allocNodes)
	for i := range nodes {
		b := st.MakeNode().Name(fmt.Sprintf("node-%05d", i)).Label(v1.LabelTopologyRegion, []string{"us-east-1", "us-east-1", "eu-west-1"}[i%3])
		if i%2 == 0 {
			b = b.Label(defaultPrefix+"pci-dss", "true")
		}
		if i%5 == 0 {
			// A second standard, so that Score has a certification to
			// count beyond a pci-dss pod's own, and a dated one.
			b = b.Label(defaultPrefix+"soc2", "2099-12-31")
		}
		nodes[i] = b.Obj()
		infos[i] = framework.NewNodeInfo()
		infos[i].SetNode(nodes[i])
	}
	return nodes, infos
}

// perNode runs PreFilter and PreScore for the pod, then returns Filter and
// Score as calls on node i of the snapshot.
func perNode(tb testing.TB, pod *v1.Pod) (filter func(i int) *fwk.Status, score func(i int), infos []fwk.NodeInfo) {
	tb.Helper()
	nodes, infos := snapshotNodes()
	pl, _ := newTestPlugin(context.Background(), tb, pluginSetup{nodes: nodes})
	ctx, state := context.Background(), framework.NewCycleState()
	if _, s := pl.PreFilter(ctx, state, pod, infos); !s.IsSuccess() && !s.IsSkip() {
		tb.Fatalf("PreFilter: %v", s)
	}
	if s := pl.PreScore(ctx, state, pod, infos); !s.IsSuccess() {
		tb.Fatalf("PreScore: %v", s)
	}
	filter = func(i int) *fwk.Status { return pl.Filter(ctx, state, pod, infos[i%len(infos)]) }
	score = func(i int) {
		if _, s := pl.Score(ctx, state, pod, infos[i%len(infos)]); !s.IsSuccess() {
			tb.Fatalf("Score: %v", s)
		}
	}
	return filter, score, infos
}

var regulatedPod = st.MakePod().Namespace("default").Name("p").
	Annotation(annCompliance, "pci-dss").Annotation(annResidency, "us").Obj()

// Filter and Score allocate nothing for a node, once PreFilter and PreScore
// have run: not for one that qualifies, and not for one without the
// certification or outside the residency (their reasons are made once per
// pod). The framework's Status for a rejected node is the one allocation
// left: the framework's API makes a *Status and the slice of its reasons.
func TestFilterAndScoreAllocateNothingPerNode(t *testing.T) {
	filter, score, _ := perNode(t, regulatedPod)
	for _, tc := range []struct {
		name string
		node int
		pass bool
	}{{"qualifies", 0, true}, {"no certification", 1, false}, {"outside the residency", 2, false}} {
		if got := filter(tc.node); got.IsSuccess() != tc.pass {
			t.Fatalf("%s: Filter = %v", tc.name, got)
		}
		want := 0.0
		if !tc.pass {
			want = 2 // the *Status and its reasons
		}
		if allocs := testing.AllocsPerRun(100, func() { filter(tc.node) }); allocs > want {
			t.Errorf("Filter on a node that %s: %v allocations, want %v", tc.name, allocs, want)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { score(3) }); allocs != 0 {
		t.Errorf("Score: %v allocations per node, want 0", allocs)
	}
	plain := st.MakePod().Namespace("default").Name("plain").Obj()
	_, plainScore, _ := perNode(t, plain)
	if allocs := testing.AllocsPerRun(100, func() { plainScore(5) }); allocs != 0 {
		t.Errorf("Score of a plain pod: %v allocations per node, want 0", allocs)
	}
}

// BenchmarkFilter calls Filter on a node that qualifies and on one without
// the certification (its *Status is the framework's API).
func BenchmarkFilter(b *testing.B) {
	filter, _, _ := perNode(b, regulatedPod)
	for _, bc := range []struct {
		name string
		node int
	}{{"qualifies", 0}, {"rejected", 1}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				filter(bc.node)
			}
		})
	}
}

// BenchmarkScore scores every node in turn, for a regulated pod (its own
// standard left out) and for a plain one.
func BenchmarkScore(b *testing.B) {
	for _, bc := range []struct {
		name string
		pod  *v1.Pod
	}{{"regulated", regulatedPod}, {"plain", st.MakePod().Namespace("default").Name("plain").Obj()}} {
		b.Run(bc.name, func(b *testing.B) {
			_, score, _ := perNode(b, bc.pod)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				score(i)
			}
		})
	}
}
