package compliance

import (
	"context"
	"fmt"
	"maps"
	"math/rand"
	"slices"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// The index answers exactly what Check says node by node, through random
// node additions, label changes, deletions and the passing of days, for
// every combination of standards and residency.
func TestNodeIndexAgreesWithCheck(t *testing.T) {
	const prefix = defaultPrefix
	residency := map[string][]string{"us": {"us-east-1", "us-west-2"}, "eu": {"eu-west-1"}}
	regions := []string{"us-east-1", "us-west-2", "eu-west-1", "ap-south-1", ""}
	values := []string{"true", "2026-02-14", "2026-02-15", "2026-02-16", "2026-03-01", "garbage", ""}
	var reqs []*Requirements
	for _, stds := range [][]string{nil, {"pci-dss"}, {"hipaa"}, {"hipaa", "pci-dss"}} {
		for _, res := range []string{"", "us", "eu"} {
			if len(stds) == 0 && res == "" {
				continue
			}
			r := &Requirements{Standards: stds, Residency: res}
			if res != "" {
				r.Regions = sets.New(residency[res]...)
			}
			reqs = append(reqs, r.withLabelKeys(prefix))
		}
	}
	rng := rand.New(rand.NewSource(1))
	x := newNodeIndex(prefix, "")
	nodes := map[string]*v1.Node{}
	now := testNow
	for step := 0; step < 3000; step++ {
		name := fmt.Sprintf("n%d", rng.Intn(40))
		switch op := rng.Intn(10); {
		case op < 7:
			b := st.MakeNode().Name(name)
			if r := regions[rng.Intn(len(regions))]; r != "" {
				b = b.Label(v1.LabelTopologyRegion, r)
			}
			for _, std := range []string{"pci-dss", "hipaa"} {
				if v := values[rng.Intn(len(values))]; v != "" {
					b = b.Label(prefix+std, v)
				}
			}
			nodes[name] = b.Obj()
			x.set(nodes[name])
		case op < 9:
			delete(nodes, name)
			x.remove(name)
		default:
			now = now.Add(time.Duration(rng.Intn(30)) * time.Hour)
		}
		for _, req := range reqs {
			want := sets.New[string]()
			for n, node := range nodes {
				if req.Check(node, prefix, now) == nil {
					want.Insert(n)
				}
			}
			if got := x.candidates(req, now); !got.Equal(want) {
				t.Fatalf("step %d, %s at %v: index says %v, Check says %v", step, candidateKey(req), now, sets.List(got), sets.List(want))
			}
		}
		// Score's spare counts agree with each node's labels read one by one.
		for _, skip := range [][]string{nil, {"pci-dss"}, {"hipaa"}, {"hipaa", "pci-dss"}} {
			want := map[string]int32{}
			for n, node := range nodes {
				for _, std := range []string{"pci-dss", "hipaa"} {
					if v, ok := node.Labels[prefix+std]; ok && !slices.Contains(skip, std) && certificationValue(v, now) == CertValid {
						want[n]++
					}
				}
			}
			if got := x.spareCounts(skip, now); !maps.Equal(got, want) {
				t.Fatalf("step %d, spare counts leaving out %v at %v: index says %v, labels say %v", step, skip, now, got, want)
			}
		}
	}
}

// The answers kept are bounded: their keys come from pods, which name
// standards freely, and a node change starts afresh.
func TestNodeIndexBoundsAnswersKept(t *testing.T) {
	x := newNodeIndex(defaultPrefix, "")
	x.set(st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "true").Obj())
	for i := range 3 * maxKept {
		std := fmt.Sprintf("made-up-%d", i)
		x.candidates((&Requirements{Standards: []string{std}}).withLabelKeys(defaultPrefix), testNow)
		x.spareCounts([]string{std}, testNow)
	}
	if len(x.answers) > maxKept || len(x.spares) > maxKept {
		t.Errorf("%d answers and %d spare counts kept, want at most %d each", len(x.answers), len(x.spares), maxKept)
	}
	x.set(st.MakeNode().Name("n2").Label(defaultPrefix+"pci-dss", "true").Obj())
	if got := x.candidates((&Requirements{Standards: []string{"pci-dss"}}).withLabelKeys(defaultPrefix), testNow); got.Len() != 2 {
		t.Errorf("after n2 was added: %v, want n1 and n2", sets.List(got))
	}
	if len(x.answers) != 1 || len(x.spares) != 0 {
		t.Errorf("after a node change: %d answers and %d spare counts kept, want only the one asked for since", len(x.answers), len(x.spares))
	}
}

// An answer is kept until a node changes or a certification it counted
// expires; a node update that changes no certification or region keeps it.
func TestNodeIndexKeepsAnswers(t *testing.T) {
	x := newNodeIndex(defaultPrefix, "")
	req := (&Requirements{Standards: []string{"pci-dss"}}).withLabelKeys(defaultPrefix)
	n1 := st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "2026-02-15").Obj()
	x.set(n1)
	first := x.candidates(req, testNow)
	if !first.Equal(sets.New("n1")) {
		t.Fatalf("got %v, want n1", sets.List(first))
	}
	x.set(st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "2026-02-15").Label("team", "data").Obj())
	if again := x.candidates(req, testNow.Add(time.Hour)); fmt.Sprintf("%p", again) != fmt.Sprintf("%p", first) {
		t.Errorf("an unrelated label change recomputed the answer")
	}
	midnight := time.Date(2026, 2, 16, 0, 0, 0, 0, time.UTC)
	if got := x.candidates(req, midnight); got.Len() != 0 {
		t.Errorf("at midnight after the expiry date: %v, want none", sets.List(got))
	}
}

// PreFilter names the qualifying nodes when they are few, and leaves the
// search alone when they are many (Filter, stopped early by the framework,
// is cheaper then) or none (Filter then gives each node's reason).
func TestPreFilterNarrowsTheSearch(t *testing.T) {
	var nodes []*v1.Node
	for i := 0; i < 400; i++ {
		b := st.MakeNode().Name(fmt.Sprintf("n%03d", i)).Label(v1.LabelTopologyRegion, "us-east-1")
		if i%40 == 0 { // 10 certified nodes
			b = b.Label(defaultPrefix+"pci-dss", "true")
		}
		if i%2 == 0 { // 200 with hipaa
			b = b.Label(defaultPrefix+"hipaa", "true")
		}
		nodes = append(nodes, b.Obj())
	}
	pl, _ := newTestPlugin(context.Background(), t, pluginSetup{nodes: nodes})
	infos := make([]fwk.NodeInfo, len(nodes))
	for i, n := range nodes {
		infos[i] = framework.NewNodeInfo()
		infos[i].SetNode(n)
	}
	prefilter := func(ann string) *framework.PreFilterResult {
		t.Helper()
		pod := st.MakePod().Namespace("default").Name("p").Annotation(annCompliance, ann).Obj()
		res, status := pl.PreFilter(context.Background(), framework.NewCycleState(), pod, infos)
		if !status.IsSuccess() {
			t.Fatalf("PreFilter(%s): %v", ann, status)
		}
		return res
	}
	certified := sets.New[string]()
	for i := 0; i < 400; i += 40 {
		certified.Insert(fmt.Sprintf("n%03d", i))
	}
	if res := prefilter("pci-dss"); res.AllNodes() || !res.NodeNames.Equal(certified) {
		t.Errorf("pci-dss (10 of 400 nodes): got %v, want the 10 certified nodes %v", res, sets.List(certified))
	}
	if res := prefilter("hipaa"); !res.AllNodes() {
		t.Errorf("hipaa (200 of 400 nodes, above the %d the framework looks for): got %d nodes, want no narrowing",
			feasibleNodesToFind(400), res.NodeNames.Len())
	}
	if res := prefilter("soc2"); !res.AllNodes() {
		t.Errorf("soc2 (no node): got %v, want no narrowing, so that Filter says why for each node", res)
	}
}

func TestFeasibleNodesToFind(t *testing.T) {
	for _, tc := range []struct{ nodes, want int }{{50, 50}, {100, 100}, {1000, 420}, {5000, 500}, {15000, 750}} {
		if got := feasibleNodesToFind(tc.nodes); got != tc.want {
			t.Errorf("feasibleNodesToFind(%d) = %d, want %d", tc.nodes, got, tc.want)
		}
	}
}
