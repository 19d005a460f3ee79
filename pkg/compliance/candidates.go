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
	// spares are the last spare-certification counts per set of standards
	// left out (spareKey).
	spares map[string]*spareCounts
	// keptGen is the generation of the answers and spares kept: their keys
	// come from pods, so a new generation starts afresh (see keepLocked).
	keptGen uint64
}

// maxKept bounds the answers (and the spare counts) kept at once. Pods name
// standards freely; the sets that a cluster's pods ask for are few.
const maxKept = 256

// keepLocked makes room for an answer computed at the current generation:
// answers of older generations can never be used again, and past maxKept
// all are dropped, to be computed again when asked for.
func (x *nodeIndex) keepLocked() {
	if x.keptGen != x.gen || len(x.answers) >= maxKept || len(x.spares) >= maxKept {
		clear(x.answers)
		clear(x.spares)
		x.keptGen = x.gen
	}
}

// validity says when an answer computed from the index holds: while the
// index is at generation gen, from from until until, the first expiry
// among the certifications it counted valid (zero: none expires).
type validity struct {
	gen         uint64
	from, until time.Time
}

func (v *validity) holds(gen uint64, now time.Time) bool {
	return v.gen == gen && !now.Before(v.from) && (v.until.IsZero() || now.Before(v.until))
}

// counted narrows the answer's validity to a certification it counted valid.
func (v *validity) counted(h heldCert) {
	if !h.forever {
		v.expiresBy(h.until)
	}
}

// expiresBy narrows the answer's validity to end by until (zero: no end).
func (v *validity) expiresBy(until time.Time) {
	if !until.IsZero() && (v.until.IsZero() || until.Before(v.until)) {
		v.until = until
	}
}

type indexedNode struct {
	certs  []heldCert
	region string
}

// candidates is the answer for one set of requirements.
type candidates struct {
	validity
	nodes sets.Set[string]
}

// spareCounts is, for one set of standards left out, how many other valid
// certifications each node holds; nodes holding none are absent.
type spareCounts struct {
	validity
	counts map[string]int32
}

func newNodeIndex(prefix, regionLabel string) *nodeIndex {
	if regionLabel == "" {
		regionLabel = v1.LabelTopologyRegion
	}
	return &nodeIndex{
		prefix: prefix, regionLabel: regionLabel,
		holders: map[string]map[string]heldCert{}, byRegion: map[string]sets.Set[string]{},
		of: map[string]indexedNode{}, answers: map[string]*candidates{}, spares: map[string]*spareCounts{},
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

// spareKey names a set of standards left out (sorted, as Requirements
// holds them).
func spareKey(skip []string) string { return strings.Join(skip, ",") }

// spareCounts returns, for each node, how many valid certifications at now
// it holds for standards other than skip (a pod's own): what Score reads to
// keep certified capacity free, one map lookup per node. Nodes holding none
// are absent; an empty map means every node scores the same. The map is
// shared and must not be changed.
func (x *nodeIndex) spareCounts(skip []string, now time.Time) map[string]int32 {
	return kept(x, x.spares, spareKey(skip), now, func() *spareCounts {
		c := &spareCounts{validity: validity{gen: x.gen, from: now}, counts: map[string]int32{}}
		for std, holders := range x.holders {
			if slices.Contains(skip, std) {
				continue
			}
			for node, h := range holders {
				if h.state(now) == CertValid {
					c.counts[node]++
					c.counted(h)
				}
			}
		}
		return c
	}).counts
}

// kept returns the answer kept in m under key while it holds at now, or
// computes (with the index locked), keeps and returns a new one.
func kept[T interface{ holds(uint64, time.Time) bool }](x *nodeIndex, m map[string]T, key string, now time.Time, compute func() T) T {
	x.mu.RLock()
	c, ok := m[key]
	fresh := ok && c.holds(x.gen, now)
	x.mu.RUnlock()
	if fresh {
		return c
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	c = compute()
	x.keepLocked()
	m[key] = c
	return c
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
	return kept(x, x.answers, candidateKey(req), now, func() *candidates { return x.computeLocked(req, now) }).nodes
}

func (x *nodeIndex) computeLocked(req *Requirements, now time.Time) *candidates {
	c := &candidates{validity: validity{gen: x.gen, from: now}, nodes: sets.New[string]()}
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
		var v validity
		for _, std := range req.Standards {
			h, ok := x.holders[std][node]
			if !ok || h.state(now) != CertValid {
				continue nodes
			}
			v.counted(h)
		}
		c.nodes.Insert(node)
		c.expiresBy(v.until)
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
