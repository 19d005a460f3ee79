package gang

import (
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func pod(ns, name string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(ns + "/" + name)}}
}

// Every entry has a way out: completed, released and forgotten gangs leave
// the tracker; forgotten pods leave Blocked.
func TestTrackerForgets(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tr := NewTracker()
	tr.Reserved("a/g1", 1, now)
	tr.Reserved("a/g1", 3, now.Add(time.Second))
	tr.Reserved("a/g2", 1, now)
	tr.BackOff("a/g3", now.Add(time.Minute))
	if tr.Len() != 3 {
		t.Fatalf("Len = %d, want 3", tr.Len())
	}
	if start, ok := tr.Completed("a/g1"); !ok || !start.Equal(now) {
		t.Errorf("Completed = %v %v, want the first reservation's time", start, ok)
	}
	if peak, ok := tr.Release("a/g2"); !ok || peak != 1 {
		t.Errorf("Release = %d %v", peak, ok)
	}
	if until, ok := tr.BackingOff("a/g3", now); !ok || !until.Equal(now.Add(time.Minute)) {
		t.Errorf("BackingOff = %v %v", until, ok)
	}
	if _, ok := tr.BackingOff("a/g3", now.Add(time.Hour)); ok {
		t.Error("still backing off after until")
	}
	tr.Reserved("a/g4", 1, now)
	tr.BackOff("a/g4", now.Add(time.Hour))
	tr.Forget("a/g4")
	if tr.Len() != 0 {
		t.Errorf("Len = %d after everything ended, want 0", tr.Len())
	}
}

func TestBlockedFreed(t *testing.T) {
	b := NewBlocked()
	own, total, other := pod("a", "own"), pod("a", "total"), pod("b", "other")
	if !b.Changed(own, "over max", false) || b.Changed(own, "over max", false) {
		t.Error("Changed should be true once per reason")
	}
	b.Changed(total, "guaranteed total", true)
	b.Changed(other, "over max", false)
	if got := b.Freed("a", true); len(got) != 2 || got["a/own"] == nil || got["a/total"] == nil {
		t.Errorf("Freed(a) = %v, want a's pods", got)
	}
	if got := b.Freed("c", true); len(got) != 1 || got["a/total"] == nil {
		t.Errorf("Freed(c, limited) = %v, want only the pod waiting for the total", got)
	}
	if got := b.Freed("free", false); len(got) != 0 {
		t.Errorf("Freed(namespace without quota) = %v, want nothing", got)
	}
	for _, p := range []*v1.Pod{own, total, other} {
		b.Forget(p.UID)
	}
	if b.Len() != 0 {
		t.Errorf("Len = %d after forgetting every pod", b.Len())
	}
}

// Short members are taken per gang, once; a pod moves between gangs (its
// label changed) without staying in the old one; every way out empties it.
func TestShort(t *testing.T) {
	s := NewShort()
	a1, a2, b1 := pod("ns", "a1"), pod("ns", "a2"), pod("ns", "b1")
	s.Add("ns/a", a1)
	s.Add("ns/a", a2)
	s.Add("ns/b", b1)
	if !s.Waiting("ns/a") || s.Waiting("ns/c") {
		t.Errorf("Waiting(a) = %v, Waiting(c) = %v; want true, false", s.Waiting("ns/a"), s.Waiting("ns/c"))
	}
	if got := s.Take("ns/a"); len(got) != 2 || got["ns/a1"] != a1 || got["ns/a2"] != a2 {
		t.Errorf("Take(a) = %v, want a1 and a2", got)
	}
	if got := s.Take("ns/a"); len(got) != 0 || s.Waiting("ns/a") {
		t.Errorf("second Take(a) = %v, want nothing", got)
	}
	s.Add("ns/c", b1) // relabelled
	if s.Waiting("ns/b") || !s.Waiting("ns/c") || s.Len() != 1 {
		t.Errorf("after moving b1 to c: Waiting(b) %v, Waiting(c) %v, Len %d", s.Waiting("ns/b"), s.Waiting("ns/c"), s.Len())
	}
	s.Forget(b1.UID)
	s.Add("ns/d", a1)
	s.ForgetGang("ns/d")
	if s.Len() != 0 || len(s.gangs) != 0 {
		t.Errorf("left over: %d pods, gangs %v", s.Len(), s.gangs)
	}
}

// The plugin's handlers, scheduling cycles and status writer use these
// concurrently; run with -race.
func TestConcurrentUse(t *testing.T) {
	tr, b, e, s, sh := NewTracker(), NewBlocked(), NewEarly(), NewSet(), NewShort()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				key := fmt.Sprintf("ns/g%d", i%7)
				p := pod("ns", fmt.Sprintf("p%d-%d", w, i))
				tr.Reserved(key, i, time.Now())
				tr.BackOff(key, time.Now())
				_, _ = tr.BackingOff(key, time.Now())
				_, _ = tr.Completed(key)
				b.Changed(p, "r", i%2 == 0)
				_ = b.Freed("ns", true)
				e.Add(p)
				s.Insert(p.UID)
				sh.Add(key, p)
				_ = sh.Waiting(key)
				if i%3 == 0 {
					_ = sh.Take(key)
				}
				b.Forget(p.UID)
				sh.Forget(p.UID)
				s.Delete(p.UID)
				tr.Forget(key)
			}
			_ = e.Take()
		}(w)
	}
	wg.Wait()
	if b.Len() != 0 || s.Len() != 0 || tr.Len() != 0 || sh.Len() != 0 {
		t.Errorf("left over: blocked %d, set %d, tracker %d, short %d", b.Len(), s.Len(), tr.Len(), sh.Len())
	}
}
