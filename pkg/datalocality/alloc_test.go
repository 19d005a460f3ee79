package datalocality

import (
	"context"
	"fmt"
	"testing"

	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// allocNodes is the cluster size of the allocation checks and benchmarks.
const allocNodes = 5000

// snapshotInfos are the test nodes (where the test Datasets live) and
// enough more, over zones a to c of r1 and r2, to make allocNodes.
func snapshotInfos() []fwk.NodeInfo {
	nodes := testNodes()
	for i := len(nodes); i < allocNodes; i++ {
		nodes = append(nodes, node(fmt.Sprintf("node-%05d", i), string(rune('a'+i%3)), []string{"r1", "r2"}[i%2]))
	}
	infos := make([]fwk.NodeInfo, len(nodes))
	for i, n := range nodes {
		infos[i] = nodeInfo(n)
	}
	return infos
}

// perNode runs PreFilter and PreScore for a pod that reads "cached" (a
// node, a zone and a region) and waits for node-level locality, then
// returns Filter and Score as calls on node i.
func perNode(tb testing.TB) (filter func(i int) *fwk.Status, score func(i int)) {
	tb.Helper()
	ctx := context.Background()
	p := newTestPlugin(ctx, tb, pluginSetup{})
	infos := snapshotInfos()
	pod := dataPod("cached").Annotation(annWait, "1h").Obj()
	state := framework.NewCycleState()
	if _, s := p.PreFilter(ctx, state, pod, infos); !s.IsSuccess() {
		tb.Fatalf("PreFilter: %v", s)
	}
	if s := p.PreScore(ctx, state, pod, infos); !s.IsSuccess() {
		tb.Fatalf("PreScore: %v", s)
	}
	filter = func(i int) *fwk.Status { return p.Filter(ctx, state, pod, infos[i%len(infos)]) }
	score = func(i int) {
		if _, s := p.Score(ctx, state, pod, infos[i%len(infos)]); !s.IsSuccess() {
			tb.Fatalf("Score: %v", s)
		}
	}
	return filter, score
}

// Filter and Score allocate nothing for a node; a node the locality wait
// rejects costs only the framework's *Status and its reasons slice (the
// reason itself is made once per pod).
func TestFilterAndScoreAllocateNothingPerNode(t *testing.T) {
	filter, score := perNode(t)
	if s := filter(0); !s.IsSuccess() { // n1 holds the data
		t.Fatalf("Filter(n1) = %v", s)
	}
	if allocs := testing.AllocsPerRun(100, func() { filter(0) }); allocs != 0 {
		t.Errorf("Filter on the node holding the data: %v allocations, want 0", allocs)
	}
	if s := filter(3); s.IsSuccess() {
		t.Fatalf("Filter(n4) = success, want the locality wait's rejection")
	}
	if allocs := testing.AllocsPerRun(100, func() { filter(3) }); allocs > 2 {
		t.Errorf("Filter on a node the wait rejects: %v allocations, want at most 2 (the *Status)", allocs)
	}
	for _, i := range []int{0, 2, 4000} {
		if allocs := testing.AllocsPerRun(100, func() { score(i) }); allocs != 0 {
			t.Errorf("Score on node %d: %v allocations, want 0", i, allocs)
		}
	}
}

// BenchmarkFilter calls Filter on the node holding the data and on one the
// locality wait rejects (its *Status is the framework's API).
func BenchmarkFilter(b *testing.B) {
	filter, _ := perNode(b)
	for _, bc := range []struct {
		name string
		node int
	}{{"near", 0}, {"rejected", 3}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				filter(bc.node)
			}
		})
	}
}

func BenchmarkScore(b *testing.B) {
	_, score := perNode(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		score(i)
	}
}
