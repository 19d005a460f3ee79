package quota

import (
	"fmt"
	"sort"

	v1 "k8s.io/api/core/v1"
)

// Rejection says why a pod does not fit its quota.
type Rejection struct {
	Quota    string // namespace/name
	Resource v1.ResourceName
	// Aggregate is set when the pod fits its own quota's max but the
	// cluster's guaranteed total does not cover it; freed quota of any
	// namespace (or reclaim) can change that.
	Aggregate bool
	Message   string
}

func (r *Rejection) Error() string { return r.Message }

// Adjust is how a preemption dry run changes the counts: per namespace,
// requests removed (victims) or added back (reprieved pods).
type Adjust map[string]map[v1.ResourceName]int64

// Add records a pod of namespace ns added (sign 1) or removed (sign -1).
func (a Adjust) Add(ns string, req Resources, sign int64) {
	m := a[ns]
	if m == nil {
		m = map[v1.ResourceName]int64{}
		a[ns] = m
	}
	for r, v := range req {
		m[r] += sign * v
		if m[r] == 0 {
			delete(m, r)
		}
	}
	if len(m) == 0 {
		delete(a, ns)
	}
}

// Clone copies a.
func (a Adjust) Clone() Adjust {
	out := make(Adjust, len(a))
	for ns, m := range a {
		cp := make(map[v1.ResourceName]int64, len(m))
		for r, v := range m {
			cp[r] = v
		}
		out[ns] = cp
	}
	return out
}

// Admit decides whether a pod with these requests fits its namespace's
// quotas now:
//   - the namespace stays within every quota's max, and
//   - the sum of what all quotas use stays within the sum of their min
//     (the guaranteed total): a quota may borrow beyond its own min only
//     what the others leave unused, and while any quota borrows, a quota
//     under its min is admitted only once reclaim returned its share.
//
// A gang's first member must fit the whole gang's need; later members
// only what the gang does not hold for them already.
func (c *Cache) Admit(namespace string, req Resources, g *Gang) *Rejection {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.admitLocked(namespace, req, g, nil)
}

// Delta is what admitting the pod would add to its namespace's counts
// (requests plus any change of what its gang holds).
func (c *Cache) Delta(namespace string, req Resources, g *Gang) (Resources, string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.deltaLocked(namespace, req, g)
}

func (c *Cache) deltaLocked(ns string, req Resources, g *Gang) (Resources, string) {
	if g == nil {
		return req.Clone(), "request"
	}
	gg := c.gangs[gangKey(ns, g.Name)]
	if gg == nil || !gg.is(g) {
		// The gang's first member: the whole gang must fit.
		need := gangNeed(g, req)
		return req.Max(need), fmt.Sprintf("gang %s needs", g.Name)
	}
	// Effective use goes from used+holds to used+req+holds', where holds'
	// is the gang's need less its members with this one added.
	sum := gg.memberSum.Plus(req)
	var holdsAfter Resources
	if !(gg.complete || len(gg.members)+1 >= gg.minMember) || gg.keep {
		holdsAfter = gg.need.Minus(sum)
	}
	d := req.Plus(holdsAfter)
	d.Sub(gg.holds)
	return d, "request"
}

func (c *Cache) admitLocked(ns string, req Resources, g *Gang, adj Adjust) *Rejection {
	l := c.limits[ns]
	if l == nil {
		return nil
	}
	delta, what := c.deltaLocked(ns, req, g)
	eff := adjusted(c.effectiveLocked(ns), adj[ns])
	for _, r := range delta.Names() {
		d := delta[r]
		if !l.names(r) {
			continue
		}
		after := addSat(eff[r], d)
		if max, ok := l.Max[r]; ok && after > max {
			return &Rejection{Quota: l.maxQuota(r), Resource: r, Message: fmt.Sprintf(
				"quota %s: %s would be %s (used %s + %s %s), over max %s",
				l.maxQuota(r), r, Quantity(r, after), Quantity(r, eff[r]), what, Quantity(r, d), Quantity(r, max))}
		}
		total, guaranteed := c.aggregateLocked(r, adj)
		if addSat(total, d) <= guaranteed {
			continue
		}
		free := guaranteed - total
		if free < 0 {
			free = 0
		}
		min := l.Min[r]
		if after > min {
			return &Rejection{Quota: l.minQuota(r), Resource: r, Aggregate: true, Message: fmt.Sprintf(
				"quota %s: %s would be %s (used %s + %s %s), over min %s, and the cluster's unused guaranteed %s is %s",
				l.minQuota(r), r, Quantity(r, after), Quantity(r, eff[r]), what, Quantity(r, d), Quantity(r, min), r, Quantity(r, free))}
		}
		return &Rejection{Quota: l.minQuota(r), Resource: r, Aggregate: true, Message: fmt.Sprintf(
			"quota %s: %s would be %s (used %s + %s %s), within its min %s, but other quotas borrow it: all quotas would use %s of the guaranteed %s; reclaim returns it",
			l.minQuota(r), r, Quantity(r, after), Quantity(r, eff[r]), what, Quantity(r, d), Quantity(r, min), Quantity(r, addSat(total, d)), Quantity(r, guaranteed))}
	}
	return nil
}

// aggregateLocked sums, over the namespaces whose quotas limit r, what they
// use (with the dry run's changes) and their min: the guaranteed total.
func (c *Cache) aggregateLocked(r v1.ResourceName, adj Adjust) (total, guaranteed int64) {
	for ns, l := range c.limits {
		if !l.names(r) {
			continue
		}
		guaranteed = addSat(guaranteed, l.Min[r])
		u := addSat(c.used[ns][r], c.held[ns][r])
		if a := adj[ns][r]; a != 0 {
			u = clampAdd(u, a)
		}
		total = addSat(total, u)
	}
	return total, guaranteed
}

// adjusted applies a dry run's signed changes to a copy of r.
func adjusted(r Resources, a map[v1.ResourceName]int64) Resources {
	if len(a) == 0 {
		return r
	}
	out := r.Clone()
	for name, v := range a {
		if n := clampAdd(out[name], v); n > 0 {
			out[name] = n
		} else {
			delete(out, name)
		}
	}
	return out
}

// clampAdd adds a signed amount to a non-negative one, staying within
// 0..Saturated.
func clampAdd(u, a int64) int64 {
	if a > 0 {
		return addSat(u, a)
	}
	if u+a < 0 {
		return 0
	}
	return u + a
}

// CheckPreemption is Admit for a priority preemption dry run that changed
// the counts by adj. Pods of the pod's own namespace and of namespaces
// without a quota may be victims; a victim of another quota only under the
// reclaim rules: the pod's namespace stays under its min with the pod, and
// the victim's quota borrows in a resource the pod asks for and stays at or
// above its min in every such resource.
func (c *Cache) CheckPreemption(ns string, req Resources, g *Gang, adj Adjust) *Rejection {
	c.mu.RLock()
	defer c.mu.RUnlock()
	delta, _ := c.deltaLocked(ns, req, g)
	for _, vns := range sortedKeys(adj) {
		l := c.limits[vns]
		if vns == ns || l == nil {
			continue
		}
		removed := Resources{}
		for r, v := range adj[vns] {
			if v < 0 {
				removed[r] = -v
			}
		}
		if len(removed) == 0 {
			continue
		}
		if !c.underMinLocked(ns, delta) {
			return &Rejection{Quota: l.minQuota(""), Message: fmt.Sprintf(
				"preemption would take pods of quota %s, but this pod's namespace %s is not under its min: only reclaim takes from another quota", l.minQuota(""), ns)}
		}
		borrows := false
		for _, r := range delta.Names() {
			if !l.names(r) {
				continue
			}
			used := c.used[vns][r]
			if used > l.Min[r] {
				borrows = true
			}
			if cut := removed[r]; cut > 0 && used-cut < l.Min[r] {
				return &Rejection{Quota: l.minQuota(r), Resource: r, Message: fmt.Sprintf(
					"preemption would take quota %s below its min: %s would drop to %s (used %s - %s), below %s",
					l.minQuota(r), r, Quantity(r, max(used-cut, 0)), Quantity(r, used), Quantity(r, cut), Quantity(r, l.Min[r]))}
			}
		}
		if !borrows {
			return &Rejection{Quota: l.minQuota(""), Message: fmt.Sprintf(
				"preemption would take pods of quota %s, which does not borrow what this pod asks for", l.minQuota(""))}
		}
	}
	return c.admitLocked(ns, req, g, adj)
}

func sortedKeys(a Adjust) []string {
	out := make([]string, 0, len(a))
	for k := range a {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
