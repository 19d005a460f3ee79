package quota

import (
	"math"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"
)

// A pod whose requests are explicit zeros (cpu: "0", memory: "0"), deleted
// after another pod of its namespace, crashed the cache: the namespace's
// used had been dropped and Sub wrote into a nil map.
func TestZeroRequestPodDeletedLast(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Max: cpu(8)})
	zero := FromList(v1.ResourceList{v1.ResourceCPU: resource.MustParse("0"), v1.ResourceMemory: resource.MustParse("0")})
	if len(zero) != 0 {
		t.Errorf("FromList kept zero amounts: %v", zero)
	}
	c.AddBoundPod("zero", "a", Resources{v1.ResourceCPU: 0, v1.ResourceMemory: 0}, nil)
	c.AddBoundPod("p", "a", res(1000, 1), nil)
	c.RemovePod("p")
	c.RemovePod("zero")
	if u := c.Used("a"); len(u) != 0 {
		t.Errorf("used = %v, want nothing", u)
	}
	var nilRes Resources
	nilRes.Sub(cpu(1)) // nil-safe
	nilRes.Add(nil)
	if nilRes != nil {
		t.Errorf("adding nothing allocated %v", nilRes)
	}
}

// Requests times minMember in milli-bytes overflow int64; the arithmetic
// saturates instead, so such a gang is refused rather than wrapping to a
// negative need that would be admitted.
func TestSaturatingArithmetic(t *testing.T) {
	huge := FromList(v1.ResourceList{v1.ResourceMemory: resource.MustParse("8Ei")})
	if huge[v1.ResourceMemory] != Saturated {
		t.Fatalf("8Ei in milli-bytes = %d, want saturated", huge[v1.ResourceMemory])
	}
	big := Resources{v1.ResourceMemory: math.MaxInt64 / 4}
	if got := big.Scaled(100)[v1.ResourceMemory]; got != Saturated {
		t.Errorf("Scaled overflowed to %d", got)
	}
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "qa", Max: Resources{v1.ResourceMemory: math.MaxInt64 / 2}, Min: Resources{v1.ResourceMemory: math.MaxInt64 / 2}})
	if rej := c.Admit("a", big, &Gang{Name: "g", MinMember: 100000}); rej == nil {
		t.Error("a gang needing more than int64 can count was admitted")
	}
	// Saturated sums recount exactly when a pod leaves.
	c.AddBoundPod("x", "a", big, nil)
	c.AddBoundPod("y", "a", big, nil)
	c.AddBoundPod("z", "a", big, nil)
	c.AddBoundPod("w", "a", big, nil)
	c.AddBoundPod("v", "a", big, nil)
	if got := c.Used("a")[v1.ResourceMemory]; got != Saturated {
		t.Fatalf("used = %d, want saturated", got)
	}
	c.RemovePod("x")
	c.RemovePod("y")
	c.RemovePod("z")
	if got, want := c.Used("a")[v1.ResourceMemory], 2*(int64(math.MaxInt64)/4); got != want {
		t.Errorf("used after removals = %d, want %d", got, want)
	}
}

// Lender min 6, borrower min 2 max 8 using 8: the lender's pods, inside its
// min, are not admitted while that would take all quotas beyond their
// guaranteed total; with one borrower pod gone, one is.
func TestAggregateStaysWithinGuaranteed(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "lender", Name: "q", Min: cpu(6), Max: cpu(6)})
	c.SetQuota(&Quota{Namespace: "borrower", Name: "q", Min: cpu(2), Max: cpu(8)})
	for i := 0; i < 8; i++ {
		c.AddBoundPod(types.UID("b"+string(rune('0'+i))), "borrower", cpu(1), nil)
	}
	rej := c.Admit("lender", cpu(1), nil)
	if rej == nil {
		t.Fatal("lender admitted while the borrower uses its min: used would exceed the guaranteed total")
	}
	if !rej.Aggregate || !strings.Contains(rej.Message, "within its min 6") || !strings.Contains(rej.Message, "would use 9 of the guaranteed 8") {
		t.Errorf("rejection %+v", rej)
	}
	if !c.UnderMin("lender", cpu(1)) {
		t.Error("lender with one pod is not under its min")
	}
	view := c.ReclaimView("lender", nil, nil, nil)
	if rej := view.Check("lender", cpu(1), nil, []Victim{{Namespace: "borrower", Req: cpu(1)}}); rej != nil {
		t.Errorf("one borrower pod does not make room: %v", rej)
	}
	if rej := view.Admit("lender", cpu(2), nil, []Victim{{Namespace: "borrower", Req: cpu(1)}}); rej == nil {
		t.Error("two lender CPUs admitted after one borrower CPU was reclaimed")
	}
	// The borrower cannot grow either.
	if rej := c.Admit("borrower", cpu(1), nil); rej == nil {
		t.Error("borrower admitted over max")
	}
}

// Several ElasticQuotas in one namespace: the tightest per resource wins,
// deleting one leaves the others in force, and each has its own status.
func TestSeveralQuotasInANamespace(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "wide", Min: cpu(10), Max: cpu(10)})
	c.SetQuota(&Quota{Namespace: "a", Name: "tight", Min: res(2000, 4), Max: res(4000, 8)})
	if got := c.QuotaNames("a"); len(got) != 2 || got[0] != "tight" || got[1] != "wide" {
		t.Errorf("QuotaNames = %v", got)
	}
	c.AddBoundPod("p", "a", cpu(4), nil)
	rej := c.Admit("a", cpu(1), nil)
	if rej == nil || rej.Quota != "a/tight" || !strings.Contains(rej.Message, "over max 4") {
		t.Fatalf("want a/tight's max 4 to refuse, got %+v", rej)
	}
	if st := c.Statuses("a"); len(st) != 2 || !st[0].Used.Equal(cpu(4)) || !st[1].Used.Equal(cpu(4)) {
		t.Errorf("statuses %+v, want both at cpu=4", st)
	}
	c.DeleteQuota("a", "tight")
	if rej := c.Admit("a", cpu(1), nil); rej != nil {
		t.Errorf("after deleting the tight quota: %v", rej)
	}
	if rej := c.Admit("a", cpu(7), nil); rej == nil || rej.Quota != "a/wide" {
		t.Errorf("the wide quota no longer limits: %+v", rej)
	}
	c.DeleteQuota("a", "wide")
	if c.Limited("a") {
		t.Error("namespace still limited with no quota left")
	}
}

// Unreserve after the informer saw the pod bound (the bind call timed out
// but succeeded) must not uncount a running pod.
func TestUnreserveKeepsBoundPods(t *testing.T) {
	c := NewCache()
	c.AddPod("p", "a", cpu(1), nil)      // Reserve
	c.AddBoundPod("p", "a", cpu(1), nil) // the informer sees it bound
	if c.Unreserve("p") {
		t.Error("Unreserve uncounted a bound pod")
	}
	c.AddPod("p", "a", cpu(1), nil) // a retried Reserve does not forget it is bound
	if c.Unreserve("p") || !c.Used("a").Equal(cpu(1)) {
		t.Errorf("bound pod uncounted: used %v", c.Used("a"))
	}
	c.AddPod("q", "a", cpu(1), nil)
	if !c.Unreserve("q") || !c.Used("a").Equal(cpu(1)) {
		t.Errorf("reserved pod not uncounted: used %v", c.Used("a"))
	}
	c.RemovePod("p") // deleted
	if len(c.Used("a")) != 0 {
		t.Errorf("used %v after delete", c.Used("a"))
	}
}

// A gang is sized by what it asks for: minResources (kept while members
// are counted, for drivers that create their executors later) or the sum of
// its members' own requests, not its first member's times minMember.
func TestGangNeed(t *testing.T) {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "a", Name: "q", Min: cpu(8), Max: cpu(8)})
	job1 := &Gang{Name: "job1", MinMember: 1, UID: "u1", Need: cpu(5), Keep: true}
	job2 := &Gang{Name: "job2", MinMember: 1, UID: "u2", Need: cpu(5), Keep: true}
	if rej := c.Admit("a", cpu(1), job1); rej != nil {
		t.Fatalf("job1's driver refused: %v", rej)
	}
	c.AddBoundPod("d1", "a", cpu(1), job1)
	if st, _ := c.Get("a"); !st.Held.Equal(cpu(4)) {
		t.Errorf("held %v, want the 4 CPUs the executors will use", st.Held)
	}
	if rej := c.Admit("a", cpu(1), job2); rej == nil || !strings.Contains(rej.Message, "gang job2 needs 5") {
		t.Errorf("job2 admitted while job1 holds its share: %+v", rej)
	}
	for i, uid := range []types.UID{"e1", "e2", "e3", "e4"} {
		if rej := c.Admit("a", cpu(1), job1); rej != nil {
			t.Fatalf("executor %d refused: %v", i, rej)
		}
		c.AddPod(uid, "a", cpu(1), job1)
	}
	if st, _ := c.Get("a"); !st.Used.Equal(cpu(5)) || len(st.Held) != 0 {
		t.Errorf("used %v held %v, want 5 used and nothing held", st.Used, st.Held)
	}
	for _, uid := range []types.UID{"e1", "e2", "e3", "e4"} {
		c.RemovePod(uid)
	}
	if st, _ := c.Get("a"); !st.Held.Equal(cpu(4)) {
		t.Errorf("held %v after the executors ended, want 4 while the driver runs", st.Held)
	}
	c.RemovePod("d1")
	if st, _ := c.Get("a"); len(st.Held) != 0 || len(st.Used) != 0 {
		t.Errorf("job gone: used %v held %v", st.Used, st.Held)
	}
	if rej := c.Admit("a", cpu(1), job2); rej != nil {
		t.Errorf("job2 refused after job1 left: %v", rej)
	}

	// Mixed sizes: a 1-CPU driver and three 2-CPU executors need 7, not 4.
	mixed := &Gang{Name: "mixed", MinMember: 4, UID: "m", Need: cpu(7)}
	c.AddPod("m0", "a", cpu(1), mixed)
	if st, _ := c.Get("a"); !st.Held.Equal(cpu(6)) {
		t.Errorf("held %v, want 6 for the three 2-CPU members", st.Held)
	}
	if rej := c.Admit("a", cpu(2), &Gang{Name: "other", MinMember: 1, UID: "o"}); rej == nil {
		t.Error("a second gang took quota the mixed gang holds")
	}
}

// A PodGroup deleted and created again under the same name is a new gang:
// pods of the earlier run still counted do not complete it.
func TestReusedPodGroupName(t *testing.T) {
	c := NewCache()
	old := &Gang{Name: "g", MinMember: 2, UID: "old"}
	c.AddBoundPod("o1", "a", cpu(1), old)
	c.AddBoundPod("o2", "a", cpu(1), old)
	if _, complete := c.GangMembers("a", "g"); !complete {
		t.Fatal("old run not complete")
	}
	fresh := &Gang{Name: "g", MinMember: 2, UID: "new"}
	c.AddPod("n1", "a", cpu(1), fresh)
	if n, complete := c.GangMembers("a", "g"); n != 1 || complete {
		t.Errorf("new run: %d members, complete %v; want 1, not complete", n, complete)
	}
	if !c.Used("a").Equal(cpu(3)) {
		t.Errorf("used %v, want the old run's pods still counted", c.Used("a"))
	}
	c.DropGang("a", "g")
	if n, _ := c.GangMembers("a", "g"); n != 0 {
		t.Errorf("dropped gang has %d members", n)
	}
	if st, ok := c.Get("a"); ok && len(st.Held) != 0 {
		t.Errorf("dropped gang still holds %v", st.Held)
	}
}

// minMember updates take effect on a gang that is assembling.
func TestSetGangMinMember(t *testing.T) {
	c := NewCache()
	g := &Gang{Name: "g", MinMember: 3, UID: "u"}
	c.AddPod("p1", "a", cpu(1), g)
	c.AddPod("p2", "a", cpu(1), g)
	if _, complete := c.GangMembers("a", "g"); complete {
		t.Fatal("complete with 2 of 3")
	}
	c.SetGang("a", &Gang{Name: "g", MinMember: 2, UID: "u"})
	if _, complete := c.GangMembers("a", "g"); !complete {
		t.Error("not complete after minMember dropped to 2")
	}
}
