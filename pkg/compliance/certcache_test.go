package compliance

import (
	"testing"
	"time"

	st "k8s.io/kubernetes/pkg/scheduler/testing"
)

// The cache counts as ValidCertifications does, and a new version of the
// node (a new object) is parsed again.
func TestCertCache(t *testing.T) {
	const prefix = "node-restriction.kubernetes.io/compliance."
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	c := &certCache{prefix: prefix}
	nodes := []struct {
		labels map[string]string
		skip   []string
	}{
		{labels: map[string]string{prefix + "pci-dss": "true", prefix + "hipaa": "2026-03-01", prefix + "soc2": "2026-02-28", "other": "x"}},
		{labels: map[string]string{prefix + "pci-dss": "true", prefix + "hipaa": "2026-12-31"}, skip: []string{"pci-dss"}},
		{labels: map[string]string{prefix + "pci-dss": "yes", prefix + "iso": "2030-01-01"}},
		{labels: map[string]string{}},
	}
	for i, n := range nodes {
		node := st.MakeNode().Name("n").Obj()
		node.Labels = n.labels
		want := ValidCertifications(node.Labels, prefix, n.skip, now)
		if got := c.validCertifications(node, n.skip, now); got != want {
			t.Errorf("node version %d: cache counts %d, ValidCertifications %d", i, got, want)
		}
		// Asked again for the same object: the same answer, from the cache.
		if got := c.validCertifications(node, n.skip, now); got != want {
			t.Errorf("node version %d, cached: %d, want %d", i, got, want)
		}
	}
	// Expiry moves with time, not with the cache.
	node := st.MakeNode().Name("m").Label(prefix+"hipaa", "2026-03-01").Obj()
	if got := c.validCertifications(node, nil, now); got != 1 {
		t.Errorf("valid on its last day: got %d", got)
	}
	if got := c.validCertifications(node, nil, now.Add(24*time.Hour)); got != 0 {
		t.Errorf("the day after: got %d", got)
	}
}
