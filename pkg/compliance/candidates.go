package compliance

import (
	"slices"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
)

// nodeIndex knows, from node events, which nodes carry a certification
// label for each standard and which region each node is in. PreFilter asks
// it for the only nodes a regulated pod can use and, when they are few,
// hands them to the framework as a PreFilterResult, so that no plugin
// filters or scores the others.
//
// The answer for a set of requirements is kept until a node's
// certifications or region change, or one of the certifications it relied
// on expires; pods with the same requirements (the usual case: a team's
// jobs) then cost a map lookup each.
type nodeIndex struct {
	prefix      string
	regionLabel string

	mu sync.RWMutex
	// gen changes whenever a node's certifications or region change.
	gen uint64
	// holders holds, per standard, the parsed label of each node carrying one.
	holders map[string]map[string]heldCert
	// byRegion holds the nodes of each region.
	byRegion map[string]sets.Set[string]
	// of is what each node added to holders and byRegion.
	of map[string]indexedNode
	// answers are the last candidates per requirements (candidateKey).
	answers map[string]*candidates
}

type indexedNode struct {
	certs  []heldCert
	region string
}

// candidates is the answer for one set of requirements.
type candidates struct {
	gen uint64
	// [from, until) is when the answer holds: it was computed at from, and
	// until is the first expiry among the certifications it counted valid
	// (zero: none expires).
	from, until time.Time
	nodes       sets.Set[string]
}

func newNodeIndex(prefix, regionLabel string) *nodeIndex {
	if regionLabel == "" {
		regionLabel = v1.LabelTopologyRegion
	}
	return &nodeIndex{
		prefix: prefix, regionLabel: regionLabel,
		holders: map[string]map[string]heldCert{}, byRegion: map[string]sets.Set[string]{},
		of: map[string]indexedNode{}, answers: map[string]*candidates{},
	}
}

// set records a node that was added or updated.
func (x *nodeIndex) set(node *v1.Node) {
	n := indexedNode{region: node.Labels[x.regionLabel]}
	for key, value := range node.Labels {
		if std, ok := strings.CutPrefix(key, x.prefix); ok {
			n.certs = append(n.certs, parseCertification(std, value))
		}
	}
	slices.SortFunc(n.certs, func(a, b heldCert) int { return strings.Compare(a.standard, b.standard) })
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.of[node.Name]; ok {
		if old.region == n.region && slices.Equal(old.certs, n.certs) {
			return // a status or unrelated label change
		}
		x.removeLocked(node.Name, old)
	}
	x.of[node.Name] = n
	for _, h := range n.certs {
		if x.holders[h.standard] == nil {
			x.holders[h.standard] = map[string]heldCert{}
		}
		x.holders[h.standard][node.Name] = h
	}
	if x.byRegion[n.region] == nil {
		x.byRegion[n.region] = sets.New[string]()
	}
	x.byRegion[n.region].Insert(node.Name)
	x.gen++
}

// remove forgets a deleted node.
func (x *nodeIndex) remove(name string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.of[name]; ok {
		x.removeLocked(name, old)
		x.gen++
	}
}

func (x *nodeIndex) removeLocked(name string, old indexedNode) {
	for _, h := range old.certs {
		delete(x.holders[h.standard], name)
		if len(x.holders[h.standard]) == 0 {
			delete(x.holders, h.standard)
		}
	}
	if nodes := x.byRegion[old.region]; nodes != nil {
		nodes.Delete(name)
		if nodes.Len() == 0 {
			delete(x.byRegion, old.region)
		}
	}
	delete(x.of, name)
}

// metricStandard is the metric label for a standard: itself when a node
// carries a label for it, otherwise "other". The standards that nodes carry
// are a bounded set; those that pods name are not.
func (x *nodeIndex) metricStandard(std string) string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if len(x.holders[std]) > 0 {
		return std
	}
	return otherStandard
}

// spareKeys returns the certification labels of the standards that some
// node carries, leaving out skip (a pod's own standards): what Score counts
// to keep certified capacity free. Empty when no node carries another.
func (x *nodeIndex) spareKeys(skip []string) []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var keys []string
	for std := range x.holders {
		if !slices.Contains(skip, std) {
			keys = append(keys, x.prefix+std)
		}
	}
	slices.Sort(keys)
	return keys
}

// candidateKey names a set of requirements: their standards (sorted) and
// residency group.
func candidateKey(req *Requirements) string {
	return strings.Join(req.Standards, ",") + "|" + req.Residency
}

// candidates returns the nodes that meet req at now, as far as node events
// have told: every required standard validly certified, inside the
// residency group. The set is shared and must not be changed.
func (x *nodeIndex) candidates(req *Requirements, now time.Time) sets.Set[string] {
	key := candidateKey(req)
	x.mu.RLock()
	c := x.answers[key]
	fresh := c != nil && c.gen == x.gen && !now.Before(c.from) && (c.until.IsZero() || now.Before(c.until))
	x.mu.RUnlock()
	if fresh {
		return c.nodes
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c = x.computeLocked(req, now)
	x.answers[key] = c
	return c.nodes
}

func (x *nodeIndex) computeLocked(req *Requirements, now time.Time) *candidates {
	c := &candidates{gen: x.gen, from: now, nodes: sets.New[string]()}
	inResidency := func(node string) bool {
		return req.Residency == "" || req.Regions.Has(x.of[node].region)
	}
	if len(req.Standards) == 0 {
		for region := range req.Regions {
			for node := range x.byRegion[region] {
				c.nodes.Insert(node)
			}
		}
		return c
	}
	// Walk the holders of the rarest standard; look the others up.
	rarest := req.Standards[0]
	for _, std := range req.Standards[1:] {
		if len(x.holders[std]) < len(x.holders[rarest]) {
			rarest = std
		}
	}
nodes:
	for node := range x.holders[rarest] {
		if !inResidency(node) {
			continue
		}
		until := time.Time{}
		for _, std := range req.Standards {
			h, ok := x.holders[std][node]
			if !ok || h.state(now) != CertValid {
				continue nodes
			}
			if !h.forever && (until.IsZero() || h.until.Before(until)) {
				until = h.until
			}
		}
		c.nodes.Insert(node)
		if !until.IsZero() && (c.until.IsZero() || until.Before(c.until)) {
			c.until = until
		}
	}
	return c
}

// narrowsSearch says whether handing the framework candidates out of
// allNodes saves work. The framework stops filtering once it has found
// enough feasible nodes (numFeasibleNodesToFind: at least 100, a share of
// the cluster that falls from 50% to 5% as it grows), but it copies a
// PreFilterResult and looks up each of its nodes, on the scheduling
// goroutine, and computes that share again on the smaller list. A set no
// larger than what it would look for anyway is a clear win: without it the
// framework would filter every node of the cluster to find them. A larger
// set is left to Filter, which the framework runs in parallel and stops
// early.
func narrowsSearch(candidates, allNodes int) bool {
	return candidates > 0 && candidates < allNodes && candidates <= feasibleNodesToFind(allNodes)
}

// feasibleNodesToFind is kube-scheduler's numFeasibleNodesToFind with the
// default percentageOfNodesToScore (adaptive).
func feasibleNodesToFind(allNodes int) int {
	const minFeasibleNodesToFind, minFeasibleNodesPercentageToFind = 100, 5
	if allNodes < minFeasibleNodesToFind {
		return allNodes
	}
	percentage := max(50-allNodes/125, minFeasibleNodesPercentageToFind)
	return max(allNodes*percentage/100, minFeasibleNodesToFind)
}
