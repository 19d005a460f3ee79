package quota

import (
	"fmt"
	"math"
	"math/rand"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// modelPod is what the property test expects the cache to count.
type modelPod struct {
	ns    string
	req   Resources
	bound bool
}

// amounts are the request sizes the operations draw from: zeros, ordinary
// values, and values whose sums overflow int64.
var amounts = []int64{0, 1, 500, 1000, 4000, 1 << 40, math.MaxInt64 / 3, math.MaxInt64}

// runOps applies the operations encoded in data to a cache and checks after
// each one that nothing went negative, no zero amount is kept, used equals
// the (saturating) sum of the counted pods, and held equals what the gangs
// hold. Every byte sequence is a valid program, so the fuzzer explores freely.
func runOps(t *testing.T, data []byte) {
	c := NewCache()
	model := map[types.UID]*modelPod{}
	nss := []string{"a", "b", "c"}
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	res := func() Resources {
		return Resources{v1.ResourceCPU: amounts[int(next())%len(amounts)], v1.ResourceMemory: amounts[int(next())%len(amounts)]}
	}
	gang := func() *Gang {
		b := next()
		if b%3 == 0 {
			return nil
		}
		g := &Gang{Name: fmt.Sprintf("g%d", b%4), MinMember: int32(b % 5), UID: types.UID(fmt.Sprintf("u%d", (b>>4)%2))}
		if b&8 != 0 {
			g.Need, g.Keep = res(), true
		}
		return g
	}
	for step := 0; len(data) > 0; step++ {
		op := next() % 10
		uid := types.UID(fmt.Sprintf("p%d", next()%12))
		ns := nss[int(next())%len(nss)]
		switch op {
		case 0:
			c.SetQuota(&Quota{Namespace: ns, Name: fmt.Sprintf("q%d", next()%2), Min: res(), Max: res()})
		case 1:
			c.DeleteQuota(ns, fmt.Sprintf("q%d", next()%2))
		case 2, 3:
			r, g := res(), gang()
			_ = c.Admit(ns, r, g)
			c.AddPod(uid, ns, r, g)
			m := model[uid]
			model[uid] = &modelPod{ns: ns, req: r.Clone(), bound: m != nil && m.bound}
		case 4:
			r, g := res(), gang()
			c.AddBoundPod(uid, ns, r, g)
			model[uid] = &modelPod{ns: ns, req: r.Clone(), bound: true}
		case 5:
			c.RemovePod(uid)
			delete(model, uid)
		case 6:
			got := c.Unreserve(uid)
			m := model[uid]
			if want := m != nil && !m.bound; got != want {
				t.Fatalf("step %d: Unreserve(%s) = %v, want %v", step, uid, got, want)
			}
			if got {
				delete(model, uid)
			}
		case 7:
			if g := gang(); g != nil {
				c.SetGang(ns, g)
			}
		case 8:
			c.DropGang(ns, fmt.Sprintf("g%d", next()%4))
		case 9:
			v := c.ReclaimView(ns, gang(), []types.UID{uid}, res())
			_ = v.Check(ns, res(), gang(), []Victim{{Namespace: nss[int(next())%3], Req: res()}})
			_ = c.Snapshot()
			_ = c.Share(ns)
			_ = c.TakeDirty()
		}
		checkInvariants(t, step, c, model)
	}
}

func checkInvariants(t *testing.T, step int, c *Cache, model map[types.UID]*modelPod) {
	t.Helper()
	c.mu.RLock()
	defer c.mu.RUnlock()
	want := map[string]Resources{}
	for _, m := range model {
		u := want[m.ns]
		u.Add(m.req)
		want[m.ns] = u
	}
	for _, ns := range []string{"a", "b", "c"} {
		if got := c.used[ns]; !got.Equal(want[ns]) {
			t.Fatalf("step %d: used[%s] = %v, want %v (sum of counted pods)", step, ns, got, want[ns])
		}
		var held Resources
		for _, g := range c.nsGang[ns] {
			held.Add(g.heldNow())
			if !g.holds.Equal(g.heldNow()) {
				t.Fatalf("step %d: gang %s/%s records holds %v, holds %v", step, ns, g.name, g.holds, g.heldNow())
			}
		}
		if got := c.held[ns]; !got.Equal(held) {
			t.Fatalf("step %d: held[%s] = %v, want %v", step, ns, got, held)
		}
		for what, r := range map[string]Resources{"used": c.used[ns], "held": c.held[ns]} {
			for name, v := range r {
				if v <= 0 {
					t.Fatalf("step %d: %s[%s][%s] = %d", step, what, ns, name, v)
				}
			}
		}
	}
	n := 0
	for ns, m := range c.nsPods {
		for uid := range m {
			if e := c.pods[uid]; e == nil || e.ns != ns {
				t.Fatalf("step %d: namespace index lists %s under %s", step, uid, ns)
			}
			n++
		}
	}
	if n != len(c.pods) {
		t.Fatalf("step %d: namespace index holds %d pods, cache %d", step, n, len(c.pods))
	}
	if len(c.pods) != len(model) {
		t.Fatalf("step %d: %d pods counted, want %d", step, len(c.pods), len(model))
	}
	for key, g := range c.gangs {
		if len(g.members) == 0 {
			t.Fatalf("step %d: gang %s kept with no members", step, key)
		}
		for uid := range g.members {
			if e := c.pods[uid]; e == nil || e.gang != g.name || e.ns != g.ns {
				t.Fatalf("step %d: gang %s lists %s, which is not counted as its member", step, key, uid)
			}
		}
	}
}

// TestCacheProperties runs random operation sequences (seeded, so a failure
// repeats) through runOps.
func TestCacheProperties(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 2000; i++ {
		data := make([]byte, 20+rng.Intn(400))
		rng.Read(data)
		runOps(t, data)
	}
}

// FuzzCache lets `go test -fuzz=FuzzCache` search for sequences that break
// the invariants; the seed corpus runs with every `go test`.
func FuzzCache(f *testing.F) {
	f.Add([]byte{4, 0, 0, 1, 1, 4, 1, 0, 3, 3, 5, 1, 0, 5, 0, 0})
	f.Add([]byte{0, 0, 0, 2, 2, 2, 0, 0, 3, 3, 1, 2, 1, 0, 3, 3, 4, 6, 1, 0})
	f.Add([]byte{2, 3, 1, 7, 7, 9, 2, 3, 1, 7, 7, 9, 6, 3, 1, 5, 3, 1})
	f.Fuzz(func(t *testing.T, data []byte) { runOps(t, data) })
}
