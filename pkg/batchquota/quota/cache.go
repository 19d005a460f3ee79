package quota

import (
	"fmt"
	"sync"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Quota is one namespace's ElasticQuota. A resource absent from both Min and
// Max is not limited; one named only in Max has a min of zero.
type Quota struct {
	Namespace, Name string
	Min, Max        Resources
}

func (q *Quota) names(r v1.ResourceName) bool {
	_, inMin := q.Min[r]
	_, inMax := q.Max[r]
	return inMin || inMax
}

// Gang identifies a pod's PodGroup and how many members it needs.
type Gang struct {
	Name      string
	MinMember int32
}

type podEntry struct {
	ns   string
	req  Resources
	gang string // "" when not a gang member
}

// gang holds quota for the members of an admitted gang that are not placed
// yet, so that two gangs never each hold half a quota.
type gang struct {
	ns, name  string
	perPod    Resources
	minMember int
	members   map[types.UID]bool
	complete  bool
}

// held is the quota the gang holds beyond its placed members. A gang holds
// nothing until its first member is placed, and nothing once complete.
func (g *gang) held() Resources {
	missing := g.minMember - len(g.members)
	if g.complete || missing <= 0 || len(g.members) == 0 {
		return nil
	}
	return g.perPod.Scaled(int64(missing))
}

// Cache counts, per namespace, the requests of pods that are bound (by any
// scheduler) or reserved by locus, and the quota held for assembling gangs.
// Adding and removing a pod are idempotent per UID. It is safe for
// concurrent use.
type Cache struct {
	mu     sync.RWMutex
	quotas map[string]*Quota
	pods   map[types.UID]*podEntry
	used   map[string]Resources // by namespace, pods only
	held   map[string]Resources // by namespace, gang placeholders
	gangs  map[string]*gang     // by namespace/name
	dirty  map[string]bool      // namespaces whose used changed
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{
		quotas: map[string]*Quota{},
		pods:   map[types.UID]*podEntry{},
		used:   map[string]Resources{},
		held:   map[string]Resources{},
		gangs:  map[string]*gang{},
		dirty:  map[string]bool{},
	}
}

// SetQuota adds or replaces a namespace's quota. Used is not touched: it
// always comes from the pods.
func (c *Cache) SetQuota(q *Quota) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.quotas[q.Namespace] = q
	c.dirty[q.Namespace] = true
}

// DeleteQuota removes a namespace's quota.
func (c *Cache) DeleteQuota(namespace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.quotas, namespace)
	delete(c.dirty, namespace)
}

// AddPod counts a pod (bound, or reserved by locus). Adding a pod twice
// counts it once; adding it with other requests replaces them.
func (c *Cache) AddPod(uid types.UID, namespace string, req Resources, g *Gang) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addPodLocked(uid, namespace, req, g)
}

// AddBoundPod counts a bound pod, as AddPod does. A gang member is only
// bound once its gang reached minMember, so its gang is complete and holds
// nothing for the members that are missing now (finished, or never needed).
func (c *Cache) AddBoundPod(uid types.UID, namespace string, req Resources, g *Gang) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addPodLocked(uid, namespace, req, g)
	if g == nil {
		return
	}
	if gg := c.gangs[gangKey(namespace, g.Name)]; gg != nil && !gg.complete {
		c.updateGangLocked(gg, func() { gg.complete = true })
	}
}

// RemovePod stops counting a pod. Removing an unknown pod does nothing.
func (c *Cache) RemovePod(uid types.UID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removePodLocked(uid)
}

// HasPod reports whether the pod is counted.
func (c *Cache) HasPod(uid types.UID) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	_, ok := c.pods[uid]
	return ok
}

func gangKey(ns, name string) string { return ns + "/" + name }

func (c *Cache) addPodLocked(uid types.UID, ns string, req Resources, g *Gang) {
	gname := ""
	if g != nil {
		gname = g.Name
	}
	if e, ok := c.pods[uid]; ok {
		if e.ns == ns && e.gang == gname && e.req.Equal(req) {
			return
		}
		c.removePodLocked(uid)
	}
	c.pods[uid] = &podEntry{ns: ns, req: req.Clone(), gang: gname}
	if c.used[ns] == nil {
		c.used[ns] = Resources{}
	}
	c.used[ns].Add(req)
	c.dirty[ns] = true
	if g == nil {
		return
	}
	key := gangKey(ns, g.Name)
	gg := c.gangs[key]
	if gg == nil {
		gg = &gang{ns: ns, name: g.Name, perPod: req.Clone(), minMember: int(g.MinMember), members: map[types.UID]bool{}}
		c.gangs[key] = gg
	}
	c.updateGangLocked(gg, func() {
		gg.members[uid] = true
		if len(gg.members) >= gg.minMember {
			gg.complete = true
		}
	})
}

func (c *Cache) removePodLocked(uid types.UID) {
	e, ok := c.pods[uid]
	if !ok {
		return
	}
	delete(c.pods, uid)
	c.used[e.ns].Sub(e.req)
	if len(c.used[e.ns]) == 0 {
		delete(c.used, e.ns)
	}
	c.dirty[e.ns] = true
	if e.gang == "" {
		return
	}
	key := gangKey(e.ns, e.gang)
	gg := c.gangs[key]
	if gg == nil {
		return
	}
	c.updateGangLocked(gg, func() { delete(gg.members, uid) })
	if len(gg.members) == 0 {
		// Nobody left: a gang that timed out releases its placeholder, and a
		// finished one is forgotten.
		delete(c.gangs, key)
	}
}

// updateGangLocked applies change to a gang and keeps held in step.
func (c *Cache) updateGangLocked(g *gang, change func()) {
	before := g.held()
	change()
	after := g.held()
	h := c.held[g.ns]
	if h == nil {
		h = Resources{}
		c.held[g.ns] = h
	}
	h.Sub(before)
	h.Add(after)
	if len(h) == 0 {
		delete(c.held, g.ns)
	}
}

// effectiveLocked is what counts against a namespace's quota: its pods plus
// the placeholders of its assembling gangs.
func (c *Cache) effectiveLocked(ns string) Resources {
	eff := c.used[ns].Clone()
	if eff == nil {
		eff = Resources{}
	}
	eff.Add(c.held[ns])
	return eff
}

// Rejection says why a pod does not fit its quota.
type Rejection struct {
	Quota    string // namespace/name
	Resource v1.ResourceName
	Message  string
}

func (r *Rejection) Error() string { return r.Message }

// Admit decides whether a pod with these requests fits its namespace's quota
// now. A gang member that is the first of its gang must fit with
// minMember pods' worth; later members are covered by the gang's placeholder.
func (c *Cache) Admit(namespace string, req Resources, g *Gang) *Rejection {
	return c.AdmitAdjusted(namespace, req, g, nil)
}

// AdmitAdjusted is Admit with the namespace's usage changed by adjust: what
// a preemption dry run that removes (negative) or adds back (positive) pods
// of the namespace would leave.
func (c *Cache) AdmitAdjusted(namespace string, req Resources, g *Gang, adjust Resources) *Rejection {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.quotas[namespace]
	if q == nil {
		return nil
	}
	delta := req
	what := "request"
	if g != nil {
		gg := c.gangs[gangKey(namespace, g.Name)]
		switch {
		case gg == nil:
			n := int64(g.MinMember)
			if n < 1 {
				n = 1
			}
			delta = req.Scaled(n)
			what = fmt.Sprintf("gang %s of %d pods", g.Name, n)
		case !gg.complete:
			// The placeholder already holds one member's worth for this pod.
			delta = req.Clone()
			delta.Sub(gg.perPod)
		}
	}
	return c.checkLocked(q, delta, what, adjust)
}

func (c *Cache) checkLocked(q *Quota, delta Resources, what string, adjust Resources) *Rejection {
	ns := q.Namespace
	eff := c.effectiveLocked(ns)
	eff.Add(adjust)
	for _, r := range delta.Names() {
		d := delta[r]
		if d <= 0 || !q.names(r) {
			continue
		}
		after := eff[r] + d
		if max, ok := q.Max[r]; ok && after > max {
			return &Rejection{Quota: ns + "/" + q.Name, Resource: r, Message: fmt.Sprintf(
				"quota %s/%s: %s would be %s (used %s + %s %s), over max %s",
				ns, q.Name, r, Quantity(r, after), Quantity(r, eff[r]), what, Quantity(r, d), Quantity(r, max))}
		}
		min := q.Min[r]
		if after <= min {
			continue
		}
		// Beyond min: admitted only while the cluster's unused guaranteed
		// quota (which includes this quota's own unused min) covers it.
		free := c.unusedGuaranteedLocked(r) - adjust[r]
		if free < d {
			if free < 0 {
				free = 0
			}
			return &Rejection{Quota: ns + "/" + q.Name, Resource: r, Message: fmt.Sprintf(
				"quota %s/%s: %s would be %s (used %s + %s %s), over min %s, and the cluster's unused guaranteed %s is %s",
				ns, q.Name, r, Quantity(r, after), Quantity(r, eff[r]), what, Quantity(r, d), Quantity(r, min), r, Quantity(r, free))}
		}
	}
	return nil
}

// unusedGuaranteedLocked is the sum over all quotas that name r of min - used:
// what is left to lend of the cluster's guaranteed quota.
func (c *Cache) unusedGuaranteedLocked(r v1.ResourceName) int64 {
	var total int64
	for ns, q := range c.quotas {
		if !q.names(r) {
			continue
		}
		total += q.Min[r] - c.effectiveLocked(ns)[r]
	}
	return total
}
