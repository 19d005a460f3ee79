package explain

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	"locus.dev/locus/pkg/explain/report"
)

func ptr(v int64) *int64 { return &v }

func TestEvaluationResult(t *testing.T) {
	ev := evaluation()
	ev.Nodes = append(ev.Nodes, NodeResult{Node: "d", Failures: []Failure{{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu"}}})
	got := ev.Result(ResultOptions{Nodes: true, Current: "a"})
	want := report.PodResult{
		Pod:            report.PodRef{Namespace: "pay", Name: "card"},
		Verdict:        report.Placed,
		Node:           "b",
		Score:          ptr(680),
		NodesEvaluated: 4,
		NodesFeasible:  2,
		Rejections: []report.Rejection{
			{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu", NodeCount: 2, Nodes: []string{"c", "d"}},
			{Plugin: "Compliance", Reason: "missing certification pci-dss", Unresolvable: true, NodeCount: 1, Nodes: []string{"c"}},
		},
		ScorePlugins: []string{"TaintToleration", "NodeResourcesFit", "Compliance", "DataLocality"},
		Nodes: []report.NodeResult{
			{Name: "b", Verdict: report.NodeBest, Scores: map[string]int64{"TaintToleration": 300, "NodeResourcesFit": 80, "Compliance": 100, "DataLocality": 200}, Total: ptr(680)},
			{Name: "a", Verdict: report.NodeFeasible, Current: true, Scores: map[string]int64{"TaintToleration": 300, "NodeResourcesFit": 90, "Compliance": 0, "DataLocality": 0}, Total: ptr(390)},
			{Name: "c", Verdict: report.NodeRejected, Failures: []report.PluginReason{
				{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu"},
				{Plugin: "Compliance", Reason: "missing certification pci-dss", Unresolvable: true},
			}},
			{Name: "d", Verdict: report.NodeRejected, Failures: []report.PluginReason{{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu"}}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("result (-want,+got):\n%s", diff)
	}
	if got := ev.Result(ResultOptions{}); got.Nodes != nil {
		t.Errorf("without Nodes, want no per-node results, got %d", len(got.Nodes))
	}
}

func TestEvaluationResultPending(t *testing.T) {
	quotaFailure := Failure{Plugin: "BatchQuota", Reason: "quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2"}
	nodes := &report.Unavailable{Resource: "nodes", Reason: metav1.StatusReasonForbidden, Impact: ImpactNodes}
	tests := []struct {
		name        string
		ev          *Evaluation
		unavailable *report.Unavailable
		verdict     report.Verdict
		reason      string
	}{
		{
			name:    "no node fits",
			ev:      &Evaluation{Nodes: []NodeResult{{Node: "a", Failures: []Failure{{Plugin: "Compliance", Reason: "missing certification pci-dss"}}}}},
			verdict: report.Waits,
			reason:  "0/1 nodes are available: 1 Compliance: missing certification pci-dss",
		},
		{
			name:    "turned away by the quota",
			ev:      &Evaluation{PreFilter: &quotaFailure, Nodes: []NodeResult{{Node: "a", Failures: []Failure{quotaFailure}}}},
			verdict: report.Waits,
			reason:  "BatchQuota: " + quotaFailure.Reason,
		},
		{
			name:        "nodes unreadable: the quota still turns it away",
			ev:          &Evaluation{PreFilter: &quotaFailure},
			unavailable: nodes,
			verdict:     report.Waits,
			reason:      "BatchQuota: " + quotaFailure.Reason,
		},
		{
			name:        "nodes unreadable, nothing else against it",
			ev:          &Evaluation{},
			unavailable: nodes,
			verdict:     report.Unknown,
			reason:      "could not list nodes: forbidden; node-level reasons unavailable",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Pod = st.MakePod().Namespace("etl").Name("job").Obj()
			got := tc.ev.Result(ResultOptions{NodesUnavailable: tc.unavailable})
			if got.Verdict != tc.verdict || got.Reason != tc.reason || !got.Pending || got.Node != "" || got.Score != nil || got.NodesFeasible != 0 {
				t.Errorf("want verdict %s, reason %q, pending, no node; got %+v", tc.verdict, tc.reason, got)
			}
		})
	}
}

func TestOutcomeResults(t *testing.T) {
	ev := evaluation()
	outcomes := []Outcome{
		{Pod: ev.Pod, Verdict: Placed, Node: "b", Evaluation: ev},
		{Pod: st.MakePod().Namespace("etl").Name("big").Obj(), Verdict: Waits, Reason: "BatchQuota: over max"},
		{Pod: st.MakePod().Namespace("spark").Name("exec-1").Obj(), Verdict: HeldForGang, Node: "a", Reason: "gang job: 1 of minMember 2",
			Evaluation: &Evaluation{Pod: st.MakePod().Namespace("spark").Name("exec-1").Obj(), Best: "a", Nodes: []NodeResult{{Node: "a", Scores: map[string]int64{}, Total: 7}}}},
	}
	var results []report.PodResult
	for i, o := range outcomes {
		results = append(results, o.Result(i+1, false))
	}
	type brief struct {
		Order   int
		Pod     string
		Verdict report.Verdict
		Pending bool
		Node    string
		Score   *int64
		Reason  string
	}
	var got []brief
	for _, r := range results {
		got = append(got, brief{r.Order, r.Pod.Namespace + "/" + r.Pod.Name, r.Verdict, r.Pending, r.Node, r.Score, r.Reason})
		if r.Nodes != nil {
			t.Errorf("%s: without details, want no per-node results", r.Pod.Name)
		}
	}
	want := []brief{
		{1, "pay/card", report.Placed, false, "b", ptr(680), ""},
		{2, "etl/big", report.Waits, true, "", nil, "BatchQuota: over max"},
		{3, "spark/exec-1", report.Held, true, "a", ptr(7), "gang job: 1 of minMember 2"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("results (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff(report.SimulationSummary{Pods: 3, Placed: 1, Held: 1, Waiting: 1, Unschedulable: 2}, Summarize(results)); diff != "" {
		t.Errorf("summary (-want,+got):\n%s", diff)
	}
	if got := outcomes[0].Result(1, true); len(got.Nodes) != 3 {
		t.Errorf("with details, want the 3 nodes, got %d", len(got.Nodes))
	}
}

func TestLoadToleratesForbidden(t *testing.T) {
	forbidden := func(ns string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New(`User "jane" cannot list resource "pods" in `+ns))
	}
	var listed []string
	podsList := loadList{resource: "pods", required: true, namespaced: true, impact: impactPods, partial: impactPods, list: func(ns string) error {
		if ns == metav1.NamespaceAll || ns == "other" {
			return forbidden(ns)
		}
		listed = append(listed, ns)
		return nil
	}}
	s := &State{}
	if err := s.load(podsList, []string{"other", "team"}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"team"}, listed); diff != "" {
		t.Errorf("listed in (-want,+got):\n%s", diff)
	}
	if len(s.Unavailable) != 1 || s.Unavailable[0].Reason != metav1.StatusReasonForbidden || !cmp.Equal(s.Unavailable[0].ReadNamespaces, []string{"team"}) {
		t.Fatalf("want pods forbidden, read in team, got %+v", s.Unavailable)
	}

	nodes := loadList{resource: "nodes", required: true, impact: ImpactNodes, list: func(string) error {
		return apierrors.NewForbidden(schema.GroupResource{Resource: "nodes"}, "", errors.New("no"))
	}}
	if err := s.load(nodes, []string{"team"}); err != nil {
		t.Fatal(err)
	}
	if u := s.NodesUnavailable(); u == nil || len(u.ReadNamespaces) != 0 {
		t.Fatalf("want nodes unavailable, got %+v", s.Unavailable)
	}
	for _, kind := range []string{"storageclasses.storage.k8s.io", "csinodes.storage.k8s.io"} {
		if err := s.load(loadList{resource: kind, list: func(string) error {
			return apierrors.NewForbidden(schema.GroupResource{Resource: kind}, "", errors.New("no"))
		}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"could not list pods in all namespaces: forbidden; read namespace team only; " + impactPods,
		"could not list nodes: forbidden; node-level reasons unavailable",
		"could not list storageclasses.storage.k8s.io, csinodes.storage.k8s.io: forbidden; evaluating without them",
	}
	if diff := cmp.Diff(want, UnavailableMessages(s.Unavailable)); diff != "" {
		t.Errorf("messages (-want,+got):\n%s", diff)
	}

	// Errors other than Forbidden still fail a required kind.
	broken := loadList{resource: "nodes", required: true, list: func(string) error { return apierrors.NewInternalError(errors.New("etcd down")) }}
	if err := s.load(broken, nil); err == nil || !strings.Contains(err.Error(), "listing nodes") {
		t.Errorf("want the error of listing nodes, got %v", err)
	}
	// A kind that this cluster does not serve is left out.
	missing := loadList{resource: "datasets.locus.dev", namespaced: true, list: func(string) error {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "datasets"}, "")
	}}
	if err := s.load(missing, []string{"team"}); err != nil {
		t.Fatal(err)
	}
	if got := UnavailableMessage(s.Unavailable[len(s.Unavailable)-1]); got != "could not list datasets.locus.dev: not served by this cluster; evaluating without them" {
		t.Errorf("got %q", got)
	}
}
