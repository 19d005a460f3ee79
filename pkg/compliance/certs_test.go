package compliance

import (
	"testing"
	"time"

	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// A node is parsed again when the scheduler hands over a new version of it,
// and expiry moves with time, not with the cache.
func TestCertCache(t *testing.T) {
	const prefix = "node-restriction.kubernetes.io/compliance."
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newCertCache(prefix)

	v1node := st.MakeNode().Name("n").Label(prefix+"pci-dss", "true").Obj()
	if got := c.validCertifications(v1node, nil, now); got != 1 {
		t.Errorf("first version: %d, want 1", got)
	}
	if got := c.validCertifications(v1node, nil, now); got != 1 {
		t.Errorf("first version, cached: %d, want 1", got)
	}
	v2node := st.MakeNode().Name("n").Label(prefix+"pci-dss", "true").Label(prefix+"hipaa", "true").Obj()
	if got := c.validCertifications(v2node, nil, now); got != 2 {
		t.Errorf("second version of the node: %d, want 2 (not the cached 1)", got)
	}
	if got := c.validCertifications(v2node, []string{"hipaa"}, now); got != 1 {
		t.Errorf("with hipaa skipped: %d, want 1", got)
	}

	last := st.MakeNode().Name("m").Label(prefix+"hipaa", "2026-03-01").Obj()
	if got := c.validCertifications(last, nil, now); got != 1 {
		t.Errorf("valid on its last day: got %d", got)
	}
	if got := c.validCertifications(last, nil, now.Add(24*time.Hour)); got != 0 {
		t.Errorf("the day after: got %d", got)
	}
}

// The standards that metric labels may name are those that nodes carry;
// deleted nodes and nodes that drop a label take theirs out.
func TestCertCacheStandardsAndForgetting(t *testing.T) {
	const prefix = "node-restriction.kubernetes.io/compliance."
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := newCertCache(prefix)
	n1 := st.MakeNode().Name("n1").Label(prefix+"pci-dss", "true").Label(prefix+"hipaa", "garbage").Obj()
	n2 := st.MakeNode().Name("n2").Label(prefix+"pci-dss", "2020-01-01").Obj()
	c.setNode(n1)
	c.setNode(n2)
	for std, want := range map[string]string{"pci-dss": "pci-dss", "hipaa": "hipaa", "soc2": otherStandard, "made-up-by-a-pod": otherStandard} {
		if got := c.metricStandard(std); got != want {
			t.Errorf("metricStandard(%q) = %q, want %q", std, got, want)
		}
	}
	// n1 drops hipaa: no node carries it any more.
	c.setNode(st.MakeNode().Name("n1").Label(prefix+"pci-dss", "true").Obj())
	if got := c.metricStandard("hipaa"); got != otherStandard {
		t.Errorf("metricStandard(hipaa) = %q after n1 dropped it, want %q", got, otherStandard)
	}
	c.validCertifications(n1, nil, now)
	c.validCertifications(n2, nil, now)
	c.deleteNode("n1")
	if got := c.metricStandard("pci-dss"); got != "pci-dss" {
		t.Errorf("metricStandard(pci-dss) = %q while n2 carries it", got)
	}
	if _, ok := c.nodes.Load("n1"); ok {
		t.Error("deleted node n1 is still cached")
	}
	c.deleteNode("n2")
	if got := c.metricStandard("pci-dss"); got != otherStandard {
		t.Errorf("metricStandard(pci-dss) = %q with no node, want %q", got, otherStandard)
	}
	if len(c.carried) != 0 || len(c.standardsOf) != 0 {
		t.Errorf("cache keeps carried %v, standardsOf %v", c.carried, c.standardsOf)
	}
	// A node that Score parsed after its delete event is swept.
	c.validCertifications(n2, nil, now)
	c.sweep(func(name string) bool { return name != "n2" })
	if _, ok := c.nodes.Load("n2"); ok {
		t.Error("sweep kept n2, which no longer exists")
	}
}
