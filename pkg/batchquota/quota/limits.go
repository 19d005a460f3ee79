package quota

import (
	"maps"
	"slices"

	v1 "k8s.io/api/core/v1"
)

// Limit is what a namespace's quotas allow together: per resource, the
// tightest min and max among the quotas that name it. With one quota it is
// that quota.
type Limit struct {
	Namespace string
	// Names are the namespace's quota names, sorted.
	Names    []string
	Min, Max Resources
	// minFrom and maxFrom name the quota that sets each amount, for reasons.
	minFrom, maxFrom map[v1.ResourceName]string
}

// names reports whether a quota of the namespace limits r.
func (l *Limit) names(r v1.ResourceName) bool {
	_, inMin := l.Min[r]
	_, inMax := l.Max[r]
	return inMin || inMax
}

// maxQuota and minQuota are the quota (namespace/name) that sets r's max or min.
func (l *Limit) maxQuota(r v1.ResourceName) string { return l.Namespace + "/" + l.maxFrom[r] }
func (l *Limit) minQuota(r v1.ResourceName) string {
	if n, ok := l.minFrom[r]; ok {
		return l.Namespace + "/" + n
	}
	return l.Namespace + "/" + l.Names[0]
}

// mergeLimits merges a namespace's quotas: the tightest amount wins per
// resource. A quota that names a resource only in max has a min of zero for
// it, which is then the tightest min.
func mergeLimits(ns string, qs map[string]*Quota) *Limit {
	l := &Limit{Namespace: ns, Names: slices.Sorted(maps.Keys(qs)),
		Min: Resources{}, Max: Resources{}, minFrom: map[v1.ResourceName]string{}, maxFrom: map[v1.ResourceName]string{}}
	for _, name := range l.Names {
		q := qs[name]
		for r, v := range q.Max {
			if cur, ok := l.Max[r]; !ok || v < cur {
				l.Max[r], l.maxFrom[r] = v, name
			}
		}
		named := map[v1.ResourceName]bool{}
		for r := range q.Min {
			named[r] = true
		}
		for r := range q.Max {
			named[r] = true
		}
		for r := range named {
			v := q.Min[r]
			if cur, ok := l.Min[r]; !ok || v < cur {
				l.Min[r], l.minFrom[r] = v, name
			}
		}
	}
	return l
}

func (l *Limit) clone() *Limit {
	cp := *l
	cp.Names = slices.Clone(l.Names)
	cp.Min, cp.Max = limitsClone(l.Min), limitsClone(l.Max)
	return &cp
}

// limitsClone copies a min or max, keeping zero amounts (they limit).
func limitsClone(r Resources) Resources {
	out := make(Resources, len(r))
	for n, v := range r {
		if v < 0 {
			v = 0
		}
		out[n] = v
	}
	return out
}
