package quota

import (
	"sort"
)

// Status is one quota's state at one instant.
type Status struct {
	Namespace, Name string
	Min, Max        Resources
	// Used counts the namespace's bound and reserved pods.
	Used Resources
	// Held is quota that gangs hold for members not placed yet.
	Held Resources
}

// Borrowed is what Used exceeds Min by, per resource the quota limits.
func (s *Status) Borrowed() Resources {
	out := Resources{}
	for r, u := range s.Used {
		_, inMin := s.Min[r]
		_, inMax := s.Max[r]
		if !inMin && !inMax {
			continue
		}
		if b := u - s.Min[r]; b > 0 {
			out[r] = b
		}
	}
	return out
}

// Snapshot returns every quota's state, sorted by namespace and name.
func (c *Cache) Snapshot() []Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []Status
	for _, qs := range c.quotas {
		for _, q := range qs {
			out = append(out, c.statusLocked(q))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// Statuses returns the states of a namespace's quotas, sorted by name.
func (c *Cache) Statuses(namespace string) []Status {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l := c.limits[namespace]
	if l == nil {
		return nil
	}
	out := make([]Status, 0, len(l.Names))
	for _, name := range l.Names {
		out = append(out, c.statusLocked(c.quotas[namespace][name]))
	}
	return out
}

// Get returns the state of a namespace's quota: with several, their merged
// limit (the tightest per resource) under the first one's name.
func (c *Cache) Get(namespace string) (Status, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l := c.limits[namespace]
	if l == nil {
		return Status{}, false
	}
	return Status{Namespace: namespace, Name: l.Names[0], Min: limitsClone(l.Min), Max: limitsClone(l.Max),
		Used: c.used[namespace].Clone(), Held: c.held[namespace].Clone()}, true
}

func (c *Cache) statusLocked(q *Quota) Status {
	return Status{Namespace: q.Namespace, Name: q.Name, Min: limitsClone(q.Min), Max: limitsClone(q.Max),
		Used: c.used[q.Namespace].Clone(), Held: c.held[q.Namespace].Clone()}
}

// Used returns the requests counted for a namespace (with or without a quota).
func (c *Cache) Used(namespace string) Resources {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.used[namespace].Clone()
}

// TakeDirty returns the namespaces with a quota whose counts changed since
// the last call, and forgets them.
func (c *Cache) TakeDirty() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for ns := range c.dirty {
		if _, ok := c.limits[ns]; ok {
			out = append(out, ns)
		}
	}
	clear(c.dirty)
	sort.Strings(out)
	return out
}

// MarkDirty asks for a namespace's status to be written again.
func (c *Cache) MarkDirty(namespace string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirty[namespace] = true
}

// Share is how much of its min a namespace uses: the largest used/min over
// the resources that min names. Namespaces without a quota (or without a
// min) have share 0.
func (c *Cache) Share(namespace string) float64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	l := c.limits[namespace]
	if l == nil {
		return 0
	}
	eff := c.effectiveLocked(namespace)
	share := 0.0
	for r, min := range l.Min {
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

// UnderMin reports whether a namespace, with req added, stays within its min
// for every resource of req that its quotas limit; namespaces without a
// quota are not under a min.
func (c *Cache) UnderMin(namespace string, req Resources) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.underMinLocked(namespace, req)
}

func (c *Cache) underMinLocked(namespace string, req Resources) bool {
	l := c.limits[namespace]
	if l == nil {
		return false
	}
	eff := c.effectiveLocked(namespace)
	for r, d := range req {
		if !l.names(r) {
			continue
		}
		if addSat(eff[r], d) > l.Min[r] {
			return false
		}
	}
	return true
}

// Namespaces returns the namespaces that have a quota, sorted.
func (c *Cache) Namespaces() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.limits))
	for ns := range c.limits {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out
}
