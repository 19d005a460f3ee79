package explain

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// evaluation is a made-up cycle over three nodes: two feasible, one rejected
// by two plugins.
func evaluation() *Evaluation {
	return &Evaluation{
		Pod:          st.MakePod().Namespace("pay").Name("card").Obj(),
		ScorePlugins: []string{"TaintToleration", "NodeResourcesFit", "Compliance", "DataLocality"},
		Best:         "b",
		Nodes: []NodeResult{
			{Node: "b", Scores: map[string]int64{"TaintToleration": 300, "NodeResourcesFit": 80, "Compliance": 100, "DataLocality": 200}, Total: 680},
			{Node: "a", Scores: map[string]int64{"TaintToleration": 300, "NodeResourcesFit": 90, "Compliance": 0, "DataLocality": 0}, Total: 390},
			{Node: "c", Failures: []Failure{
				{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu"},
				{Plugin: "Compliance", Reason: "missing certification pci-dss", Unresolvable: true},
			}},
		},
	}
}

func TestWriteNodeTable(t *testing.T) {
	tests := []struct {
		name string
		ev   *Evaluation
		opts TableOptions
		want string
	}{
		{
			name: "locus plugins in their own columns, in-tree ones summed",
			ev:   evaluation(),
			opts: TableOptions{Current: "a"},
			want: `NODE   VERDICT            COMPLIANCE   DATALOCALITY   OTHER   TOTAL   FAILED
b      best               100          200            380     680     
a      feasible,current   0            0              390     390     
c      rejected           -            -              -       -       NodeResourcesFit: Insufficient cpu; Compliance: missing certification pci-dss
`,
		},
		{
			name: "wide: every plugin",
			ev:   evaluation(),
			opts: TableOptions{Wide: true},
			want: `NODE   VERDICT    TAINTTOLERATION   NODERESOURCESFIT   COMPLIANCE   DATALOCALITY   TOTAL   FAILED
b      best       300               80                 100          200            680     
a      feasible   300               90                 0            0              390     
c      rejected   -                 -                  -            -              -       NodeResourcesFit: Insufficient cpu; Compliance: missing certification pci-dss
`,
		},
		{
			name: "rejected as a whole: no node is feasible, none is scored",
			ev: &Evaluation{
				PreFilter: &Failure{Plugin: "BatchQuota", Reason: "quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2"},
				Nodes: []NodeResult{
					{Node: "a", Failures: []Failure{{Plugin: "BatchQuota", Reason: "quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2"}}},
				},
			},
			want: `NODE   VERDICT    FAILED
a      rejected   BatchQuota: quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2
`,
		},
		{
			name: "rejected before any node was looked at: one row for all",
			ev: &Evaluation{
				PreFilter: &Failure{Plugin: "Compliance", Reason: `invalid standard "PCI-DSS"`, Unresolvable: true},
				Nodes: []NodeResult{
					{Node: "a", Failures: []Failure{{Plugin: "Compliance", Reason: `invalid standard "PCI-DSS"`, Unresolvable: true}}},
					{Node: "b", Failures: []Failure{{Plugin: "Compliance", Reason: `invalid standard "PCI-DSS"`, Unresolvable: true}}},
				},
			},
			want: `NODE      VERDICT    FAILED
(all 2)   rejected   Compliance: invalid standard "PCI-DSS"
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteNodeTable(&buf, tc.ev, tc.opts); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, buf.String()); diff != "" {
				t.Errorf("table (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestReason(t *testing.T) {
	tests := []struct {
		name string
		ev   *Evaluation
		want string
	}{
		{name: "placed", ev: evaluation(), want: ""},
		{
			name: "nodes counted by their first failure, most common first",
			ev: &Evaluation{Nodes: []NodeResult{
				{Node: "a", Failures: []Failure{{Plugin: "Compliance", Reason: "missing certification pci-dss"}}},
				{Node: "b", Failures: []Failure{{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu"}, {Plugin: "Compliance", Reason: "missing certification pci-dss"}}},
				{Node: "c", Failures: []Failure{{Plugin: "Compliance", Reason: "missing certification pci-dss"}}},
			}},
			want: "0/3 nodes are available: 2 Compliance: missing certification pci-dss; 1 NodeResourcesFit: Insufficient cpu",
		},
		{
			name: "rejected as a whole",
			ev:   &Evaluation{PreFilter: &Failure{Plugin: "DataLocality", Reason: `invalid locus.dev/locality-wait "soon"`}},
			want: `DataLocality: invalid locus.dev/locality-wait "soon"`,
		},
		{name: "no nodes", ev: &Evaluation{}, want: "no nodes available to schedule pods"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.ev.Reason(); got != tc.want {
				t.Errorf("want %q, got %q", tc.want, got)
			}
		})
	}
}

func TestWriteOutcomes(t *testing.T) {
	ev := evaluation()
	outcomes := []Outcome{
		{Pod: ev.Pod, Verdict: Placed, Node: "b", Evaluation: ev},
		{Pod: st.MakePod().Namespace("etl").Name("big").Obj(), Verdict: Waits, Reason: "BatchQuota: quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2"},
		{Pod: st.MakePod().Namespace("spark").Name("exec-1").Obj(), Verdict: HeldForGang, Node: "a", Reason: "gang job: 1 of minMember 2 members could be reserved"},
	}
	var buf bytes.Buffer
	if err := WriteOutcomes(&buf, outcomes); err != nil {
		t.Fatal(err)
	}
	want := `#     POD            VERDICT   NODE   REASON
1     pay/card       placed    b      score 680, best of 2 feasible nodes
2     etl/big        waits     -      BatchQuota: quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2
3     spark/exec-1   held      a      gang job: 1 of minMember 2 members could be reserved
`
	if diff := cmp.Diff(want, buf.String()); diff != "" {
		t.Errorf("table (-want,+got):\n%s", diff)
	}
}
