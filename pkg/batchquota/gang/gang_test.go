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

// The plugin's handlers, scheduling cycles and status writer use these
// concurrently; run with -race.
func TestConcurrentUse(t *testing.T) {
	tr, b, e, s := NewTracker(), NewBlocked(), NewEarly(), NewSet()
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
				b.Forget(p.UID)
				s.Delete(p.UID)
				tr.Forget(key)
			}
			_ = e.Take()
		}(w)
	}
	wg.Wait()
	if b.Len() != 0 || s.Len() != 0 || tr.Len() != 0 {
		t.Errorf("left over: blocked %d, set %d, tracker %d", b.Len(), s.Len(), tr.Len())
	}
}
