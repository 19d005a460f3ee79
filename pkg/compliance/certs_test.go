package compliance

import (
	"fmt"
	"testing"
	"time"

	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// Score's counts follow each version of a node, leave out the pod's own
// standards, and move with time: a dated certification stops counting the
// day after its date, without any node event.
func TestSpareCounts(t *testing.T) {
	const prefix = "node-restriction.kubernetes.io/compliance."
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	x := newNodeIndex(prefix, "")
	spare := func(skip []string, at time.Time, node string) int32 { return x.spareCounts(skip, at)[node] }

	x.set(st.MakeNode().Name("n").Label(prefix+"pci-dss", "true").Obj())
	if got := spare(nil, now, "n"); got != 1 {
		t.Errorf("first version: %d, want 1", got)
	}
	x.set(st.MakeNode().Name("n").Label(prefix+"pci-dss", "true").Label(prefix+"hipaa", "true").Obj())
	if got := spare(nil, now, "n"); got != 2 {
		t.Errorf("second version of the node: %d, want 2", got)
	}
	if got := spare([]string{"hipaa"}, now, "n"); got != 1 {
		t.Errorf("with hipaa left out: %d, want 1", got)
	}
	if got := spare([]string{"hipaa", "pci-dss"}, now, "n"); got != 0 {
		t.Errorf("with both left out: %d, want 0", got)
	}

	x.set(st.MakeNode().Name("m").Label(prefix+"hipaa", "2026-03-01").Obj())
	if got := spare(nil, now, "m"); got != 1 {
		t.Errorf("valid on its last day: got %d", got)
	}
	if got := spare(nil, now.Add(24*time.Hour), "m"); got != 0 {
		t.Errorf("the day after: got %d", got)
	}
	if got := spare(nil, now.Add(24*time.Hour), "n"); got != 2 {
		t.Errorf("certifications without expiry the day after: got %d, want 2", got)
	}
	x.set(st.MakeNode().Name("g").Label(prefix+"hipaa", "garbage").Obj())
	if got := x.spareCounts(nil, now); got["g"] != 0 {
		t.Errorf("a value that is neither true nor a date: got %d", got["g"])
	}
	if _, ok := x.spareCounts(nil, now)["g"]; ok {
		t.Errorf("a node holding no valid certification is in the counts")
	}
	x.remove("n")
	x.remove("m")
	if got := x.spareCounts(nil, now); len(got) != 0 {
		t.Errorf("counts %v with no node holding a valid certification, want none (Score is skipped)", got)
	}
}

// The standards that metric labels may name, and that Score counts, are
// those that nodes carry; deleted nodes and nodes that drop a label take
// theirs out.
func TestCarriedStandardsFollowNodes(t *testing.T) {
	const prefix = "node-restriction.kubernetes.io/compliance."
	x := newNodeIndex(prefix, "")
	n1 := st.MakeNode().Name("n1").Label(prefix+"pci-dss", "true").Label(prefix+"hipaa", "garbage").Obj()
	n2 := st.MakeNode().Name("n2").Label(prefix+"pci-dss", "2020-01-01").Obj()
	x.set(n1)
	x.set(n2)
	for std, want := range map[string]string{"pci-dss": "pci-dss", "hipaa": "hipaa", "soc2": otherStandard, "made-up-by-a-pod": otherStandard} {
		if got := x.metricStandard(std); got != want {
			t.Errorf("metricStandard(%q) = %q, want %q", std, got, want)
		}
	}
	if got := x.spareCounts([]string{"pci-dss"}, time.Now()); len(got) != 0 {
		t.Errorf("spareCounts(pci-dss) = %v: n1's hipaa is not valid, want none", got)
	}
	// n1 drops hipaa: no node carries it any more.
	x.set(st.MakeNode().Name("n1").Label(prefix+"pci-dss", "true").Obj())
	if got := x.metricStandard("hipaa"); got != otherStandard {
		t.Errorf("metricStandard(hipaa) = %q after n1 dropped it, want %q", got, otherStandard)
	}
	if got := x.spareCounts(nil, time.Now()); got["n1"] != 1 {
		t.Errorf("spareCounts(none)[n1] = %d, want its pci-dss", got["n1"])
	}
	x.remove("n1")
	if got := x.metricStandard("pci-dss"); got != "pci-dss" {
		t.Errorf("metricStandard(pci-dss) = %q while n2 carries it", got)
	}
	x.remove("n2")
	if got := x.metricStandard("pci-dss"); got != otherStandard {
		t.Errorf("metricStandard(pci-dss) = %q with no node, want %q", got, otherStandard)
	}
	if len(x.holders) != 0 || len(x.of) != 0 {
		t.Errorf("index keeps holders %v, nodes %v", x.holders, x.of)
	}
}

// parseDay accepts exactly the dates time.Parse accepts in dateLayout, and
// reads them the same.
func TestParseDayAgreesWithTimeParse(t *testing.T) {
	values := []string{
		"2026-03-01", "2024-02-29", "2026-02-29", "2026-02-30", "2026-04-31", "2026-12-31", "2026-13-01",
		"2026-00-10", "2026-01-00", "0000-01-01", "9999-12-31", "2026-1-01", "2026-01-1", "26-01-01",
		"2026/01/01", "2026-01-01 ", " 2026-01-01", "2026-0a-01", "+026-01-01", "-026-01-01", "2026--1-01",
		"true", "", "2026-01-01T00:00:00Z", "1900-02-29", "2000-02-29", "2100-02-29",
	}
	// And every day, valid or not, of a leap and a common year.
	for _, y := range []string{"2024", "2026"} {
		for m := 0; m <= 13; m++ {
			for d := 0; d <= 32; d++ {
				values = append(values, fmt.Sprintf("%s-%02d-%02d", y, m, d))
			}
		}
	}
	for _, v := range values {
		want, err := time.Parse(dateLayout, v)
		y, m, d, ok := parseDay(v)
		if ok != (err == nil) {
			t.Errorf("parseDay(%q) ok = %v, time.Parse error %v", v, ok, err)
			continue
		}
		if ok && (y != want.Year() || m != want.Month() || d != want.Day()) {
			t.Errorf("parseDay(%q) = %d-%d-%d, time.Parse %v", v, y, m, d, want)
		}
	}
}
