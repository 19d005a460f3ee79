package quota

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

func cpu(cores int64) Resources { return Resources{v1.ResourceCPU: cores * 1000} }

func res(cpuMilli int64, memGi int64) Resources {
	r := Resources{}
	if cpuMilli != 0 {
		r[v1.ResourceCPU] = cpuMilli
	}
	if memGi != 0 {
		r[v1.ResourceMemory] = memGi << 30 * 1000
	}
	return r
}

func TestFromList(t *testing.T) {
	got := FromList(v1.ResourceList{v1.ResourceCPU: resource.MustParse("1500m"), v1.ResourceMemory: resource.MustParse("2Gi")})
	want := Resources{v1.ResourceCPU: 1500, v1.ResourceMemory: 2 << 30 * 1000}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want,+got):\n%s", diff)
	}
	if s := got.String(); s != "cpu=1500m,memory=2Gi" {
		t.Errorf("String() = %q", s)
	}
	if back := FromList(got.ToList()); !back.Equal(got) {
		t.Errorf("round trip changed %v into %v", got, back)
	}
}

func TestAdmit(t *testing.T) {
	tests := []struct {
		name    string
		quotas  []*Quota
		pods    map[string]Resources // namespace -> one pod's worth already bound
		ns      string
		req     Resources
		gang    *Gang
		wantErr string // substring; "" means admitted
	}{
		{
			name: "no quota: not limited",
			ns:   "free", req: cpu(100),
		},
		{
			name:   "within min",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(4), Max: cpu(8)}},
			pods:   map[string]Resources{"a": cpu(3)},
			ns:     "a", req: cpu(1),
		},
		{
			name:   "over max",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(4), Max: cpu(8)}, {Namespace: "b", Name: "qb", Min: cpu(100)}},
			pods:   map[string]Resources{"a": cpu(8)},
			ns:     "a", req: cpu(1),
			wantErr: "quota a/qa: cpu would be 9 (used 8 + request 1), over max 8",
		},
		{
			name:   "borrow from an idle quota",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(4), Max: cpu(8)}, {Namespace: "b", Name: "qb", Min: cpu(4), Max: cpu(8)}},
			pods:   map[string]Resources{"a": cpu(4)},
			ns:     "a", req: cpu(3),
		},
		{
			name:   "nothing left to borrow",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(4), Max: cpu(8)}, {Namespace: "b", Name: "qb", Min: cpu(4), Max: cpu(8)}},
			pods:   map[string]Resources{"a": cpu(5), "b": cpu(3)},
			ns:     "a", req: cpu(1),
			wantErr: "over min 4, and the cluster's unused guaranteed cpu is 0",
		},
		{
			name:   "borrowing counts other borrowers",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(2), Max: cpu(8)}, {Namespace: "b", Name: "qb", Min: cpu(4), Max: cpu(8)}, {Namespace: "c", Name: "qc", Min: cpu(2), Max: cpu(8)}},
			// c already borrows 2 of b's idle 4: only 2 are left for a.
			pods: map[string]Resources{"c": cpu(4), "a": cpu(2)},
			ns:   "a", req: cpu(3),
			wantErr: "unused guaranteed cpu is 2",
		},
		{
			name:   "a resource the quota does not name is not limited",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(1), Max: cpu(1)}},
			ns:     "a", req: res(1000, 64),
		},
		{
			name:   "named only in max: min is zero, so it borrows",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Max: cpu(8)}, {Namespace: "b", Name: "qb", Min: cpu(2)}},
			ns:     "a", req: cpu(3),
			wantErr: "unused guaranteed cpu is 2",
		},
		{
			name:   "first gang member needs minMember pods' worth",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(8), Max: cpu(8)}},
			pods:   map[string]Resources{"a": cpu(1)},
			ns:     "a", req: cpu(1), gang: &Gang{Name: "spark", MinMember: 8},
			wantErr: "gang spark needs 8",
		},
		{
			name:   "gang that fits",
			quotas: []*Quota{{Namespace: "a", Name: "qa", Min: cpu(8), Max: cpu(8)}},
			ns:     "a", req: cpu(1), gang: &Gang{Name: "spark", MinMember: 8},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := NewCache()
			for _, q := range tc.quotas {
				c.SetQuota(q)
			}
			for ns, r := range tc.pods {
				c.AddPod(types.UID("bound-"+ns), ns, r, nil)
			}
			rej := c.Admit(tc.ns, tc.req, tc.gang)
			switch {
			case tc.wantErr == "" && rej != nil:
				t.Errorf("rejected: %v", rej)
			case tc.wantErr != "" && rej == nil:
				t.Errorf("admitted, want a rejection containing %q", tc.wantErr)
			case tc.wantErr != "" && !strings.Contains(rej.Message, tc.wantErr):
				t.Errorf("rejection %q does not contain %q", rej.Message, tc.wantErr)
			}
		})
	}
}

func TestIdempotentAddRemove(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Max: cpu(10)})
	c.AddPod("p", "a", cpu(2), nil)
	c.AddPod("p", "a", cpu(2), nil) // the informer seeing the bound pod after Reserve
	if got := c.Used("a"); !got.Equal(cpu(2)) {
		t.Errorf("used after adding twice = %v, want cpu=2", got)
	}
	c.AddPod("p", "a", cpu(3), nil) // resized
	if got := c.Used("a"); !got.Equal(cpu(3)) {
		t.Errorf("used after resize = %v, want cpu=3", got)
	}
	c.RemovePod("p")
	c.RemovePod("p")
	c.RemovePod("never-added")
	if got := c.Used("a"); len(got) != 0 {
		t.Errorf("used after removing = %v, want nothing", got)
	}
}

func TestUsedSurvivesQuotaRecreate(t *testing.T) {
	c := NewCache()
	c.AddPod("p1", "a", cpu(2), nil) // pods counted before any quota exists
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Max: cpu(3)})
	c.DeleteQuota("a", "qa")
	c.AddPod("p2", "a", cpu(1), nil)
	c.SetQuota(&Quota{Namespace: "a", Name: "qa2", Max: cpu(3)})
	st, ok := c.Get("a")
	if !ok || !st.Used.Equal(cpu(3)) {
		t.Fatalf("used = %v (%v), want cpu=3 rebuilt from pods", st.Used, ok)
	}
	if rej := c.Admit("a", cpu(1), nil); rej == nil {
		t.Error("admitted over max after the quota was recreated")
	}
}

// Two gangs of 8 against a quota of 8: once the first gang has a member
// reserved, its placeholder holds the rest, so the second gang's first
// member is refused, and the first gang's later members are admitted.
func TestGangPlaceholderPreventsDeadlock(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Min: cpu(8), Max: cpu(8)})
	g1, g2 := &Gang{Name: "g1", MinMember: 8}, &Gang{Name: "g2", MinMember: 8}
	if rej := c.Admit("a", cpu(1), g1); rej != nil {
		t.Fatalf("first gang refused: %v", rej)
	}
	c.AddPod("g1-0", "a", cpu(1), g1)
	if rej := c.Admit("a", cpu(1), g2); rej == nil {
		t.Fatal("second gang admitted while the first holds the whole quota")
	}
	for i := 1; i < 8; i++ {
		if rej := c.Admit("a", cpu(1), g1); rej != nil {
			t.Fatalf("member %d of the admitted gang refused: %v", i, rej)
		}
		c.AddPod(types.UID(fmt.Sprintf("g1-%d", i)), "a", cpu(1), g1)
	}
	if n, complete := c.GangMembers("a", "g1"); n != 8 || !complete {
		t.Errorf("gang g1: %d members, complete %v", n, complete)
	}
	st, _ := c.Get("a")
	if !st.Used.Equal(cpu(8)) || len(st.Held) != 0 {
		t.Errorf("used %v held %v, want used cpu=8 and nothing held", st.Used, st.Held)
	}
	// A timed-out gang releases its placeholder with its last member.
	c2 := NewCache()
	c2.SetQuota(&Quota{Namespace: "a", Name: "qa", Min: cpu(8), Max: cpu(8)})
	c2.AddPod("x0", "a", cpu(1), g2)
	c2.AddPod("x1", "a", cpu(1), g2)
	if st, _ := c2.Get("a"); !st.Held.Equal(cpu(6)) {
		t.Errorf("held %v, want cpu=6 for the 6 missing members", st.Held)
	}
	c2.RemovePod("x0")
	c2.RemovePod("x1")
	if st, _ := c2.Get("a"); len(st.Held) != 0 || len(st.Used) != 0 {
		t.Errorf("after release: used %v held %v, want nothing", st.Used, st.Held)
	}
	if rej := c2.Admit("a", cpu(1), g1); rej != nil {
		t.Errorf("quota not released: %v", rej)
	}
}

func TestShare(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Min: cpu(4)})
	c.SetQuota(&Quota{Namespace: "b", Name: "qb", Min: cpu(4)})
	c.AddPod("a1", "a", cpu(3), nil)
	c.AddPod("b1", "b", cpu(1), nil)
	if sa, sb := c.Share("a"), c.Share("b"); !(sb < sa) || sa != 0.75 || sb != 0.25 {
		t.Errorf("shares a=%v b=%v, want 0.75 and 0.25", sa, sb)
	}
	if s := c.Share("none"); s != 0 {
		t.Errorf("share of a namespace without quota = %v", s)
	}
}

func TestTakeDirty(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa"})
	c.AddPod("p", "b", cpu(1), nil) // no quota: never reported
	if got := c.TakeDirty(); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("TakeDirty() = %v, want [a]", got)
	}
	if got := c.TakeDirty(); len(got) != 0 {
		t.Errorf("second TakeDirty() = %v, want nothing", got)
	}
	c.AddPod("q", "a", cpu(1), nil)
	if got := c.TakeDirty(); !cmp.Equal(got, []string{"a"}) {
		t.Errorf("after a pod: %v", got)
	}
}

// Event handlers (informer adds and deletes) run concurrently with Reserve,
// Unreserve and admission; the race detector checks the locking, and the
// final count must be exact.
func TestConcurrentAccounting(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Min: cpu(1000), Max: cpu(1000)})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				uid := types.UID(fmt.Sprintf("w%d-%d", w, i))
				g := &Gang{Name: fmt.Sprintf("g%d", w%2), MinMember: 4}
				_ = c.Admit("a", cpu(1), g)
				c.AddPod(uid, "a", cpu(1), g) // Reserve
				c.AddPod(uid, "a", cpu(1), g) // informer sees it bound
				_ = c.Share("a")
				_ = c.Snapshot()
				if i%2 == 0 {
					c.RemovePod(uid) // Unreserve or delete
					c.RemovePod(uid)
				}
			}
		}(w)
	}
	wg.Wait()
	if got := c.Used("a"); !got.Equal(cpu(8 * 100)) {
		t.Errorf("used = %v, want cpu=800", got)
	}
}
