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
	c := &certCache{prefix: prefix}

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
