package quota

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Victim is a pod that reclaim considers preempting: its namespace and what
// it counts against that namespace's quota.
type Victim struct {
	Namespace string
	Req       Resources
}

// ReclaimView is a private copy of the cache's counts for one reclaim
// attempt (one PostFilter call). Victim sets for every candidate node are
// tried against the same numbers, concurrently and without taking the
// cache's lock. It is read-only once built.
type ReclaimView struct {
	// counts is a private Cache holding copies of quotas, used, held and the
	// preemptor's gang; admission is decided by its Admit, so that reclaim
	// and PreFilter never disagree about the rules.
	counts *Cache
}

// ReclaimView copies the counts for a reclaim attempt by a pod of namespace
// ns in gang g (nil for a lone pod). Pods in gone are already on their way
// out (terminating after an earlier preemption) and count as removed;
// claimed is what pods of ns that are nominated to nodes will take, and
// counts as used.
func (c *Cache) ReclaimView(ns string, g *Gang, gone []types.UID, claimed Resources) *ReclaimView {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v := NewCache()
	for n, l := range c.limits {
		v.limits[n] = l.clone()
	}
	for n, u := range c.used {
		v.used[n] = u.Clone()
	}
	for n, h := range c.held {
		v.held[n] = h.Clone()
	}
	if g != nil {
		if gg := c.gangs[gangKey(ns, g.Name)]; gg != nil {
			cp := *gg
			cp.need, cp.memberSum, cp.holds = gg.need.Clone(), gg.memberSum.Clone(), gg.holds.Clone()
			cp.members = make(map[types.UID]bool, len(gg.members))
			for uid := range gg.members {
				cp.members[uid] = true
			}
			v.gangs[gangKey(ns, g.Name)] = &cp
		}
	}
	for _, uid := range gone {
		if e, ok := c.pods[uid]; ok {
			u := v.used[e.ns]
			u.Sub(e.req)
			v.used[e.ns] = u
		}
	}
	u := v.used[ns]
	u.Add(claimed)
	if len(u) > 0 {
		v.used[ns] = u
	}
	return &ReclaimView{counts: v}
}

// UnderMin is Cache.UnderMin on the view: whether ns's quota, with its
// claimed pods and req added, stays within its min for every resource of req
// that the quota names.
func (v *ReclaimView) UnderMin(ns string, req Resources) bool {
	return v.counts.UnderMin(ns, req)
}

// Borrowing reports whether ns has a quota whose pods use more than its min
// of some resource that req asks for: only such a quota gives up pods to a
// reclaiming pod with requests req.
func (v *ReclaimView) Borrowing(ns string, req Resources) bool {
	l := v.counts.limits[ns]
	if l == nil {
		return false
	}
	used := v.counts.used[ns]
	for r, d := range req {
		if d > 0 && l.names(r) && used[r] > l.Min[r] {
			return true
		}
	}
	return false
}

// KeepsMin checks that preempting victims leaves every victim quota's used
// at or above its min in each resource of req (the contested resources)
// that the victims reduce. Victims of namespaces without a quota, or of
// preemptor's own namespace ns, are refused outright.
func (v *ReclaimView) KeepsMin(ns string, req Resources, victims []Victim) *Rejection {
	removed := removedByNamespace(victims)
	for _, vns := range slices.Sorted(maps.Keys(removed)) {
		l := v.counts.limits[vns]
		if l == nil {
			return &Rejection{Message: fmt.Sprintf("namespace %s has no quota to reclaim from", vns)}
		}
		if vns == ns {
			return &Rejection{Quota: l.minQuota(""), Message: fmt.Sprintf("quota %s does not reclaim from itself", l.minQuota(""))}
		}
		used := v.counts.used[vns]
		for _, r := range req.Names() {
			cut := removed[vns][r]
			if req[r] <= 0 || cut <= 0 || !l.names(r) {
				continue
			}
			if after := used[r] - cut; after < l.Min[r] {
				return &Rejection{Quota: l.minQuota(r), Resource: r, Message: fmt.Sprintf(
					"quota %s: %s would drop to %s (used %s - %s), below its min %s",
					l.minQuota(r), r, Quantity(r, after), Quantity(r, used[r]), Quantity(r, cut), Quantity(r, l.Min[r]))}
			}
		}
	}
	return nil
}

// Admit is Cache.Admit on the view with victims removed: whether the
// preemptor would be admitted once they are gone.
func (v *ReclaimView) Admit(ns string, req Resources, g *Gang, victims []Victim) *Rejection {
	adj := Adjust{}
	for _, vi := range victims {
		adj.Add(vi.Namespace, vi.Req, -1)
	}
	return v.counts.admitLocked(ns, req, g, adj)
}

// Check is KeepsMin and then Admit.
func (v *ReclaimView) Check(ns string, req Resources, g *Gang, victims []Victim) *Rejection {
	if rej := v.KeepsMin(ns, req, victims); rej != nil {
		return rej
	}
	return v.Admit(ns, req, g, victims)
}

func removedByNamespace(victims []Victim) map[string]Resources {
	removed := map[string]Resources{}
	for _, vi := range victims {
		r := removed[vi.Namespace]
		r.Add(vi.Req)
		removed[vi.Namespace] = r
	}
	return removed
}

// Reclaimed remembers the pods that reclaim preempted, for a while. The
// informer shows them terminating only a moment after they were deleted;
// until then the next preemptor must neither count them as still using
// their quota (it could take that quota below its min) nor pick them again.
// It is safe for concurrent use.
type Reclaimed struct {
	mu     sync.Mutex
	memory time.Duration
	at     map[types.UID]time.Time
}

// NewReclaimed remembers each pod for memory, far longer than an informer
// takes to show a deletion.
func NewReclaimed(memory time.Duration) *Reclaimed {
	return &Reclaimed{memory: memory, at: map[types.UID]time.Time{}}
}

// Add remembers a pod preempted at now.
func (r *Reclaimed) Add(uid types.UID, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.at[uid] = now
}

// Has reports whether the pod is remembered.
func (r *Reclaimed) Has(uid types.UID) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.at[uid]
	return ok
}

// List returns the pods remembered at now, forgetting older ones.
func (r *Reclaimed) List(now time.Time) []types.UID {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]types.UID, 0, len(r.at))
	for uid, at := range r.at {
		if now.Sub(at) > r.memory {
			delete(r.at, uid)
			continue
		}
		out = append(out, uid)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Limited reports whether ns has a quota in the view.
func (v *ReclaimView) Limited(ns string) bool { return v.counts.limits[ns] != nil }
