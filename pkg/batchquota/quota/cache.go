package quota

import (
	"maps"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// Quota is one ElasticQuota. A resource absent from both Min and Max is not
// limited by it; one named only in Max has a min of zero.
type Quota struct {
	Namespace, Name string
	Min, Max        Resources
}

type podEntry struct {
	ns   string
	req  Resources
	gang string // "" when not a gang member
	// bound is set once the pod was seen bound: Unreserve never uncounts it
	// (a bind call that timed out may still have succeeded).
	bound bool
	// left is the UID of the gang that the pod was a member of until its
	// PodGroup was deleted or replaced. A bound pod ran under that gang: it
	// never joins a later PodGroup of the same name, even one whose
	// creationTimestamp (a resolution of one second) is not after the pod's.
	left types.UID
}

// Cache counts, per namespace, the requests of pods that are bound (by any
// scheduler) or reserved by locus, and the quota that gangs hold. Quotas are
// kept by namespace and name; a namespace with several is limited by the
// tightest of them per resource. Adding and removing a pod are idempotent
// per UID. It is safe for concurrent use.
type Cache struct {
	mu     sync.RWMutex
	quotas map[string]map[string]*Quota // namespace -> name -> quota
	limits map[string]*Limit            // namespace -> its quotas merged
	pods   map[types.UID]*podEntry
	nsPods map[string]map[types.UID]bool // counted pods by namespace
	used   map[string]Resources          // by namespace, pods only
	held   map[string]Resources          // by namespace, what gangs hold beyond their members
	gangs  map[string]*gang              // by namespace/name
	nsGang map[string]map[string]*gang
	dirty  map[string]bool // namespaces whose counts changed
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		quotas: map[string]map[string]*Quota{},
		limits: map[string]*Limit{},
		pods:   map[types.UID]*podEntry{},
		nsPods: map[string]map[types.UID]bool{},
		used:   map[string]Resources{},
		held:   map[string]Resources{},
		gangs:  map[string]*gang{},
		nsGang: map[string]map[string]*gang{},
		dirty:  map[string]bool{},
	}
}

// SetQuota adds or replaces one ElasticQuota and reports whether it is new
// or its min or max changed. Used is not touched: it always comes from the
// pods.
func (c *Cache) SetQuota(q *Quota) (changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cp := &Quota{Namespace: q.Namespace, Name: q.Name, Min: limitsClone(q.Min), Max: limitsClone(q.Max)}
	if c.quotas[q.Namespace] == nil {
		c.quotas[q.Namespace] = map[string]*Quota{}
	}
	old := c.quotas[q.Namespace][q.Name]
	changed = old == nil || !maps.Equal(old.Min, cp.Min) || !maps.Equal(old.Max, cp.Max)
	c.quotas[q.Namespace][q.Name] = cp
	c.limits[q.Namespace] = mergeLimits(q.Namespace, c.quotas[q.Namespace])
	c.dirty[q.Namespace] = true
	return changed
}

// DeleteQuota removes one ElasticQuota; the namespace's others stay in force.
func (c *Cache) DeleteQuota(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	qs := c.quotas[namespace]
	delete(qs, name)
	if len(qs) == 0 {
		delete(c.quotas, namespace)
		delete(c.limits, namespace)
		delete(c.dirty, namespace)
		return
	}
	c.limits[namespace] = mergeLimits(namespace, qs)
	c.dirty[namespace] = true
}

// QuotaNames returns the names of a namespace's quotas, sorted.
func (c *Cache) QuotaNames(namespace string) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if l := c.limits[namespace]; l != nil {
		return append([]string(nil), l.Names...)
	}
	return nil
}

// Limited reports whether a namespace has a quota.
func (c *Cache) Limited(namespace string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.limits[namespace] != nil
}

// AddPod counts a pod reserved by locus. Adding a pod twice counts it once;
// adding it with other requests or another gang replaces them.
func (c *Cache) AddPod(uid types.UID, namespace string, req Resources, g *Gang) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addPodLocked(uid, namespace, req, g, false)
}

// AddBoundPod counts a bound pod, as AddPod does, and remembers that it is
// bound. A gang member is bound only after its gang got through Permit, so
// its gang is complete.
func (c *Cache) AddBoundPod(uid types.UID, namespace string, req Resources, g *Gang) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.addPodLocked(uid, namespace, req, g, true) {
		return
	}
	if gg := c.gangs[gangKey(namespace, g.Name)]; gg != nil && !gg.complete {
		c.updateGangLocked(gg, func() { gg.complete = true })
	}
}

// RemovePod stops counting a pod (it was deleted or ended). Removing an
// unknown pod does nothing.
func (c *Cache) RemovePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removePodLocked(uid)
}

// Unreserve undoes AddPod, unless the pod was seen bound meanwhile: a bind
// that the API server carried out counts even if its call failed. It reports
// whether the pod was uncounted.
func (c *Cache) Unreserve(uid types.UID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.pods[uid]
	if !ok || e.bound {
		return false
	}
	c.removePodLocked(uid)
	return true
}

// HasPod reports whether the pod is counted.
func (c *Cache) HasPod(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}

// Counted returns a pod's namespace and whether it is counted.
func (c *Cache) Counted(uid types.UID) (string, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if e, ok := c.pods[uid]; ok {
		return e.ns, true
	}
	return "", false
}

func gangKey(ns, name string) string { return ns + "/" + name }

// addPodLocked counts a pod, as a member of g if g is given and the pod may
// join it, and reports whether the pod is counted as a member of g.
func (c *Cache) addPodLocked(uid types.UID, ns string, req Resources, g *Gang, bound bool) bool {
	var left types.UID
	if e, ok := c.pods[uid]; ok {
		bound = bound || e.bound
		left = e.left
	}
	if g != nil && bound && left != "" && left != g.UID {
		g = nil // it ran under the gang it left: counted alone
	}
	gname := ""
	if g != nil {
		gname = g.Name
	}
	if e, ok := c.pods[uid]; ok {
		if e.ns == ns && e.gang == gname && e.req.Equal(req) && (g == nil || c.gangs[gangKey(ns, gname)].is(g)) {
			e.bound = bound
			return g != nil
		}
		c.removePodLocked(uid)
	}
	e := &podEntry{ns: ns, req: req.Clone(), gang: gname, bound: bound, left: left}
	c.pods[uid] = e
	if c.nsPods[ns] == nil {
		c.nsPods[ns] = map[types.UID]bool{}
	}
	c.nsPods[ns][uid] = true
	u := c.used[ns]
	u.Add(e.req)
	if len(u) > 0 {
		c.used[ns] = u
	}
	c.dirty[ns] = true
	if g == nil {
		return false
	}
	gg := c.gangLocked(ns, g, e.req)
	c.updateGangLocked(gg, func() {
		gg.members[uid] = true
		gg.memberSum.Add(e.req)
		if len(gg.members) >= gg.minMember {
			gg.complete = true
		}
	})
	return true
}

func (c *Cache) removePodLocked(uid types.UID) {
	e, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	if m := c.nsPods[e.ns]; m != nil {
		delete(m, uid)
		if len(m) == 0 {
			delete(c.nsPods, e.ns)
		}
	}
	u := c.used[e.ns]
	if u.Sub(e.req) {
		u = c.recountUsedLocked(e.ns)
	}
	if len(u) == 0 {
		delete(c.used, e.ns)
	} else {
		c.used[e.ns] = u
	}
	c.dirty[e.ns] = true
	if e.gang == "" {
		return
	}
	gg := c.gangs[gangKey(e.ns, e.gang)]
	if gg == nil || !gg.members[uid] {
		return
	}
	c.updateGangLocked(gg, func() {
		delete(gg.members, uid)
		if gg.memberSum.Sub(e.req) {
			gg.memberSum = c.sumLocked(gg.members)
		}
	})
	if len(gg.members) == 0 {
		// Nobody left: a gang that timed out releases what it held, and a
		// finished one is forgotten.
		c.dropGangLocked(gg)
	}
}

// recountUsedLocked sums a namespace's pods again: after a saturated amount
// was subtracted from, the running sum is no longer exact.
func (c *Cache) recountUsedLocked(ns string) Resources {
	var u Resources
	for uid := range c.nsPods[ns] {
		u.Add(c.pods[uid].req)
	}
	return u
}

func (c *Cache) sumLocked(uids map[types.UID]bool) Resources {
	var s Resources
	for uid := range uids {
		if e := c.pods[uid]; e != nil {
			s.Add(e.req)
		}
	}
	return s
}

// effectiveLocked is what counts against a namespace's quotas: its pods plus
// what its gangs hold.
func (c *Cache) effectiveLocked(ns string) Resources {
	return c.used[ns].Plus(c.held[ns])
}

// CountedBound reports whether the pod is counted, as bound, in namespace
// with these requests: an informer update that changes nothing to count.
func (c *Cache) CountedBound(uid types.UID, namespace string, req Resources) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.pods[uid]
	return ok && e.bound && e.ns == namespace && e.req.Equal(req)
}

// PodsOf returns the UIDs of a namespace's counted pods.
func (c *Cache) PodsOf(namespace string) []types.UID {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]types.UID, 0, len(c.nsPods[namespace]))
	for uid := range c.nsPods[namespace] {
		out = append(out, uid)
	}
	return out
}
