package quota

import (
	"sort"
)

// Status is a quota's state at one instant.
type Status struct {
	Namespace, Name string
	Min, Max        Resources
	// Used counts the namespace's bound and reserved pods.
	Used Resources
	// Held is quota held for gang members not yet placed.
	Held Resources
}

// Borrowed is what Used exceeds Min by, per resource.
func (s *Status) Borrowed() Resources {
	out := Resources{}
	for r, u := range s.Used {
		if _, named := s.Min[r]; !named {
			if _, limited := s.Max[r]; !limited {
				continue
			}
		}
		if b := u - s.Min[r]; b > 0 {
			out[r] = b
		}
	}
	return out
}

// Snapshot returns every quota's state, sorted by namespace.
func (c *Cache) Snapshot() []Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Status, 0, len(c.quotas))
	for ns, q := range c.quotas {
		out = append(out, c.statusLocked(ns, q))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Namespace < out[j].Namespace })
	return out
}

// Get returns one namespace's quota state.
func (c *Cache) Get(namespace string) (Status, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q, ok := c.quotas[namespace]
	if !ok {
		return Status{}, false
	}
	return c.statusLocked(namespace, q), true
}

func (c *Cache) statusLocked(ns string, q *Quota) Status {
	used := c.used[ns].Clone()
	if used == nil {
		used = Resources{}
	}
	held := c.held[ns].Clone()
	if held == nil {
		held = Resources{}
	}
	return Status{Namespace: ns, Name: q.Name, Min: q.Min.Clone(), Max: q.Max.Clone(), Used: used, Held: held}
}

// Used returns the requests counted for a namespace (with or without a quota).
func (c *Cache) Used(namespace string) Resources {
	c.mu.RLock()
	defer c.mu.RUnlock()
	u := c.used[namespace].Clone()
	if u == nil {
		u = Resources{}
	}
	return u
}

// TakeDirty returns the namespaces with a quota whose used changed since the
// last call, and forgets them.
func (c *Cache) TakeDirty() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for ns := range c.dirty {
		if _, ok := c.quotas[ns]; ok {
			out = append(out, ns)
		}
	}
	c.dirty = map[string]bool{}
	sort.Strings(out)
	return out
}

// MarkDirty asks for a namespace's status to be written again.
func (c *Cache) MarkDirty(namespace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty[namespace] = true
}

// Share is how much of its min a namespace's quota uses: the largest
// used/min over the resources that min names. Namespaces without a quota
// (or without a min) have share 0.
func (c *Cache) Share(namespace string) float64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.quotas[namespace]
	if q == nil {
		return 0
	}
	eff := c.effectiveLocked(namespace)
	share := 0.0
	for r, min := range q.Min {
		var s float64
		switch {
		case min > 0:
			s = float64(eff[r]) / float64(min)
		case eff[r] > 0:
			s = 1e9 // borrowing with a zero min
		}
		if s > share {
			share = s
		}
	}
	return share
}

// GangMembers returns how many members of a gang are counted (reserved or
// bound) and whether the gang has reached its minMember.
func (c *Cache) GangMembers(namespace, name string) (int, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	g := c.gangs[gangKey(namespace, name)]
	if g == nil {
		return 0, false
	}
	return len(g.members), g.complete
}

// UnderMin reports whether a namespace's quota, with req added, stays within
// its min for every resource that min names; namespaces without a quota are
// not under a min.
func (c *Cache) UnderMin(namespace string, req Resources) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	q := c.quotas[namespace]
	if q == nil {
		return false
	}
	eff := c.effectiveLocked(namespace)
	for r, d := range req {
		if !q.names(r) {
			continue
		}
		if eff[r]+d > q.Min[r] {
			return false
		}
	}
	return true
}
