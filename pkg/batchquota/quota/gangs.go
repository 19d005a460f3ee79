package quota

import (
	"k8s.io/apimachinery/pkg/types"
)

// Gang is what the cache needs to know of a pod's PodGroup.
type Gang struct {
	Name      string
	MinMember int32
	// UID is the PodGroup's: a PodGroup deleted and created again under the
	// same name is a new gang, and the members of the earlier one do not
	// count toward it.
	UID types.UID
	// Need is what the whole gang asks of its quota: the PodGroup's
	// minResources when set, else the requests of minMember of its members.
	// Empty means minMember times the pod's own requests.
	Need Resources
	// Keep is set when Need comes from minResources: the gang then holds
	// Need for as long as any member is counted (a Spark driver holds its
	// executors' share before it creates them), not only until it has
	// minMember members.
	Keep bool
}

// gang is a gang that has members counted (reserved or bound). Until its
// members use what it asked for, it holds the rest, so that two gangs never
// each hold half a quota.
type gang struct {
	ns, name  string
	uid       types.UID
	need      Resources
	keep      bool
	minMember int
	members   map[types.UID]bool
	memberSum Resources
	complete  bool
	// holds is what this gang adds to c.held right now.
	holds Resources
}

// is reports whether g describes this gang (same PodGroup object).
func (gg *gang) is(g *Gang) bool {
	return gg != nil && gg.uid == g.UID
}

// heldNow is what the gang holds beyond its members: its need less what its
// members use, while it assembles (or, with Keep, while it has members).
func (gg *gang) heldNow() Resources {
	if len(gg.members) == 0 || (gg.complete && !gg.keep) {
		return nil
	}
	return gg.need.Minus(gg.memberSum)
}

// gangNeed is what a gang asks for as a whole, given one member's requests.
func gangNeed(g *Gang, req Resources) Resources {
	if len(g.Need) > 0 {
		return g.Need.Clone()
	}
	n := int64(g.MinMember)
	if n < 1 {
		n = 1
	}
	return req.Scaled(n)
}

// gangLocked returns the cache's entry for g, creating it (or replacing one
// of an earlier PodGroup of the same name, whose members then count as lone
// pods).
func (c *Cache) gangLocked(ns string, g *Gang, req Resources) *gang {
	key := gangKey(ns, g.Name)
	gg := c.gangs[key]
	if gg != nil && gg.uid != g.UID {
		c.detachGangLocked(gg)
		gg = nil
	}
	if gg == nil {
		gg = &gang{ns: ns, name: g.Name, uid: g.UID, need: gangNeed(g, req), keep: g.Keep,
			minMember: int(g.MinMember), members: map[types.UID]bool{}}
		c.gangs[key] = gg
		if c.nsGang[ns] == nil {
			c.nsGang[ns] = map[string]*gang{}
		}
		c.nsGang[ns][g.Name] = gg
	}
	return gg
}

// updateGangLocked applies change to a gang and keeps held in step.
func (c *Cache) updateGangLocked(gg *gang, change func()) {
	change()
	after := gg.heldNow()
	if gg.holds.Equal(after) {
		return
	}
	h := c.held[gg.ns]
	if h.Sub(gg.holds) {
		h = c.recountHeldLocked(gg.ns, gg)
	}
	h.Add(after)
	gg.holds = after
	if len(h) == 0 {
		delete(c.held, gg.ns)
	} else {
		c.held[gg.ns] = h
	}
	c.dirty[gg.ns] = true
}

// recountHeldLocked sums what the namespace's gangs other than skip hold.
func (c *Cache) recountHeldLocked(ns string, skip *gang) Resources {
	var h Resources
	for _, g := range c.nsGang[ns] {
		if g != skip {
			h.Add(g.holds)
		}
	}
	return h
}

// dropGangLocked forgets a gang and what it holds. Its members stay counted.
func (c *Cache) dropGangLocked(gg *gang) {
	c.updateGangLocked(gg, func() { gg.members = map[types.UID]bool{}; gg.memberSum = nil })
	key := gangKey(gg.ns, gg.name)
	if c.gangs[key] == gg {
		delete(c.gangs, key)
	}
	if m := c.nsGang[gg.ns]; m[gg.name] == gg {
		delete(m, gg.name)
		if len(m) == 0 {
			delete(c.nsGang, gg.ns)
		}
	}
}

// detachGangLocked forgets a gang whose PodGroup is gone or replaced: its
// counted members stay counted, as lone pods.
func (c *Cache) detachGangLocked(gg *gang) {
	for uid := range gg.members {
		if e := c.pods[uid]; e != nil {
			e.gang, e.left = "", gg.uid
		}
	}
	c.dropGangLocked(gg)
}

// SetGang updates a gang from its PodGroup (minMember, minResources
// changed). A gang without counted members is not tracked, and its next
// first member reads the PodGroup anew. A different UID replaces the gang.
func (c *Cache) SetGang(ns string, g *Gang) {
	c.mu.Lock()
	defer c.mu.Unlock()
	gg := c.gangs[gangKey(ns, g.Name)]
	if gg == nil {
		return
	}
	if gg.uid != g.UID {
		c.detachGangLocked(gg)
		return
	}
	c.updateGangLocked(gg, func() {
		gg.minMember = int(g.MinMember)
		gg.keep = g.Keep
		if len(g.Need) > 0 {
			gg.need = g.Need.Clone()
		}
		if len(gg.members) >= gg.minMember {
			gg.complete = true
		}
	})
}

// DropGang forgets a deleted PodGroup's gang: what it held is released and
// its members count as lone pods.
func (c *Cache) DropGang(ns, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gg := c.gangs[gangKey(ns, name)]; gg != nil {
		c.detachGangLocked(gg)
	}
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

// Gangs returns the keys (namespace/name) of the gangs with counted members.
func (c *Cache) Gangs() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.gangs))
	for k := range c.gangs {
		out = append(out, k)
	}
	return out
}
