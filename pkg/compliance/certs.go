package compliance

import (
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
)

// heldCert is one certification label of a node, parsed.
type heldCert struct {
	standard string
	forever  bool      // "true"
	until    time.Time // the first instant it is no longer valid; zero if invalid
}

// parseCertification reads a certification label's value: "true" (no
// expiry) or a date, valid through the end of that day, UTC. Anything else
// certifies nothing.
func parseCertification(standard, value string) heldCert {
	h := heldCert{standard: standard}
	if value == "true" {
		h.forever = true
	} else if day, err := time.Parse(dateLayout, value); err == nil {
		h.until = day.AddDate(0, 0, 1)
	}
	return h
}

// state is what the certification says at now.
func (h heldCert) state(now time.Time) CertState {
	switch {
	case h.forever:
		return CertValid
	case h.until.IsZero():
		return CertInvalid
	case now.Before(h.until):
		return CertValid
	default:
		return CertExpired
	}
}

// nodeCerts caches a node's parsed certifications against the Node object
// they came from: the scheduler's snapshot replaces the object when the node
// changes, so pointer identity says whether the entry is current.
type nodeCerts struct {
	node  *v1.Node
	certs []heldCert
}

// certCache saves Score from walking every label of every node for every
// pod: a node's certifications are parsed once per version of the node. It
// also knows which standards the nodes carry, the bounded set of standards
// that metric labels may name. The node informer's handlers keep both
// current, and forget deleted nodes.
type certCache struct {
	prefix string
	nodes  sync.Map // node name -> *nodeCerts

	mu sync.RWMutex
	// carried counts, per standard, the nodes that carry a label for it.
	carried map[string]int
	// standardsOf is what each node added to carried.
	standardsOf map[string][]string
}

// otherStandard is the metric label of a standard that no node carries: a
// pod can name any standard, and a label value per pod-supplied string
// would be an unbounded series.
const otherStandard = "other"

func newCertCache(prefix string) *certCache {
	return &certCache{prefix: prefix, carried: map[string]int{}, standardsOf: map[string][]string{}}
}

// setNode records the standards that a node's labels name (added or updated node).
func (c *certCache) setNode(node *v1.Node) {
	var stds []string
	for key := range node.Labels {
		if std, ok := strings.CutPrefix(key, c.prefix); ok {
			stds = append(stds, std)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uncountLocked(node.Name)
	if len(stds) > 0 {
		c.standardsOf[node.Name] = stds
		for _, std := range stds {
			c.carried[std]++
		}
	}
}

// deleteNode forgets a deleted node.
func (c *certCache) deleteNode(name string) {
	c.nodes.Delete(name)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.uncountLocked(name)
}

func (c *certCache) uncountLocked(name string) {
	for _, std := range c.standardsOf[name] {
		if c.carried[std]--; c.carried[std] <= 0 {
			delete(c.carried, std)
		}
	}
	delete(c.standardsOf, name)
}

// sweep forgets parsed certifications of nodes that exists no longer says
// exist: Score may store a node that is deleted while a cycle runs.
func (c *certCache) sweep(exists func(name string) bool) {
	c.nodes.Range(func(key, _ any) bool {
		if !exists(key.(string)) {
			c.nodes.Delete(key)
		}
		return true
	})
}

// metricStandard is the metric label for a standard: itself when a node
// carries it, otherwise "other".
func (c *certCache) metricStandard(std string) string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.carried[std] > 0 {
		return std
	}
	return otherStandard
}

// anyCarried says whether any node carries a certification label.
func (c *certCache) anyCarried() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.carried) > 0
}

func (c *certCache) certs(node *v1.Node) []heldCert {
	if e, ok := c.nodes.Load(node.Name); ok && e.(*nodeCerts).node == node {
		return e.(*nodeCerts).certs
	}
	var certs []heldCert
	for key, value := range node.Labels {
		if std, ok := strings.CutPrefix(key, c.prefix); ok {
			certs = append(certs, parseCertification(std, value))
		}
	}
	c.nodes.Store(node.Name, &nodeCerts{node: node, certs: certs})
	return certs
}

// validCertifications counts the standards the node holds a valid
// certification for at now, leaving out those in skip.
func (c *certCache) validCertifications(node *v1.Node, skip []string, now time.Time) int {
	n := 0
	for _, h := range c.certs(node) {
		if h.state(now) == CertValid && !slices.Contains(skip, h.standard) {
			n++
		}
	}
	return n
}
