package quota

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// reclaimGiB is one GiB of memory in milli-units.
const reclaimGiB = int64(1) << 30 * 1000

func reclaimCPU(n int64) Resources { return Resources{v1.ResourceCPU: n * 1000} }

// reclaimCache: team-a (min 4, max 8 cpu) is idle; team-b (min 4, max 8 cpu,
// min 8Gi memory) runs six 1-cpu/1Gi pods b-0..b-5 plus two memory-only
// pods (so it borrows 2 cpu and sits exactly at its memory min); team-c
// (min 2 cpu) is idle; team-d has no quota and runs one pod.
func reclaimCache() *Cache {
	c := NewCache()
	c.SetQuota(&Quota{Namespace: "team-a", Name: "qa", Min: reclaimCPU(4), Max: reclaimCPU(8)})
	c.SetQuota(&Quota{Namespace: "team-b", Name: "qb",
		Min: Resources{v1.ResourceCPU: 4000, v1.ResourceMemory: 8 * reclaimGiB},
		Max: Resources{v1.ResourceCPU: 8000, v1.ResourceMemory: 16 * reclaimGiB}})
	c.SetQuota(&Quota{Namespace: "team-c", Name: "qc", Min: reclaimCPU(2), Max: reclaimCPU(8)})
	for i := 0; i < 6; i++ {
		c.AddPod(types.UID(fmt.Sprintf("b-%d", i)), "team-b", Resources{v1.ResourceCPU: 1000, v1.ResourceMemory: reclaimGiB}, nil)
	}
	c.AddPod("b-mem-0", "team-b", Resources{v1.ResourceMemory: reclaimGiB}, nil)
	c.AddPod("b-mem-1", "team-b", Resources{v1.ResourceMemory: reclaimGiB}, nil)
	c.AddPod("d-0", "team-d", reclaimCPU(1), nil)
	return c
}

func reclaimVictimsOfB(n int) []Victim {
	var out []Victim
	for i := 0; i < n; i++ {
		out = append(out, Victim{Namespace: "team-b", Req: Resources{v1.ResourceCPU: 1000, v1.ResourceMemory: reclaimGiB}})
	}
	return out
}

func TestReclaimViewBorrowingAndUnderMin(t *testing.T) {
	tests := []struct {
		name          string
		gone          []types.UID
		claimed       Resources
		ns            string
		req           Resources
		wantBorrowing bool
		wantUnderMin  bool
	}{
		{name: "quota beyond its min in the requested resource borrows", ns: "team-b", req: reclaimCPU(1), wantBorrowing: true},
		{name: "at min in the requested resource does not borrow", ns: "team-b", req: Resources{v1.ResourceMemory: reclaimGiB}},
		{name: "terminating pods count as gone", gone: []types.UID{"b-0", "b-1"}, ns: "team-b", req: reclaimCPU(1)},
		{name: "one terminating pod leaves it borrowing", gone: []types.UID{"b-0"}, ns: "team-b", req: reclaimCPU(1), wantBorrowing: true},
		{name: "unknown terminating pods change nothing", gone: []types.UID{"nope"}, ns: "team-b", req: reclaimCPU(1), wantBorrowing: true},
		{name: "namespace without a quota neither borrows nor is under a min", ns: "team-d", req: reclaimCPU(1)},
		{name: "idle quota is under its min", ns: "team-a", req: reclaimCPU(4), wantUnderMin: true},
		{name: "beyond min with the pod", ns: "team-a", req: reclaimCPU(5)},
		{name: "nominated pods of the namespace hold part of the min", claimed: reclaimCPU(3), ns: "team-a", req: reclaimCPU(2)},
		{name: "nominated pods leave room", claimed: reclaimCPU(3), ns: "team-a", req: reclaimCPU(1), wantUnderMin: true},
		{name: "a resource the quota does not name is not limited", ns: "team-a", req: Resources{v1.ResourceMemory: 100 * reclaimGiB}, wantUnderMin: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := reclaimCache().ReclaimView("team-a", nil, tt.gone, tt.claimed)
			if got := v.Borrowing(tt.ns, tt.req); got != tt.wantBorrowing {
				t.Errorf("Borrowing(%s, %s) = %v, want %v", tt.ns, tt.req, got, tt.wantBorrowing)
			}
			if got := v.UnderMin(tt.ns, tt.req); got != tt.wantUnderMin {
				t.Errorf("UnderMin(%s, %s) = %v, want %v", tt.ns, tt.req, got, tt.wantUnderMin)
			}
		})
	}
}

func TestReclaimViewCheck(t *testing.T) {
	type verdict struct {
		Quota    string
		Resource v1.ResourceName
		Message  string // a part of it
	}
	gang6 := &Gang{Name: "g", MinMember: 6}
	tests := []struct {
		name    string
		ns      string
		req     Resources
		gang    *Gang
		victims []Victim
		want    *verdict
	}{
		{name: "no victims, within min", ns: "team-a", req: reclaimCPU(1)},
		{name: "one victim of a borrowing quota", ns: "team-a", req: reclaimCPU(1), victims: reclaimVictimsOfB(1)},
		{name: "down to exactly min", ns: "team-a", req: reclaimCPU(2), victims: reclaimVictimsOfB(2)},
		{name: "never below min", ns: "team-a", req: reclaimCPU(3), victims: reclaimVictimsOfB(3),
			want: &verdict{Quota: "team-b/qb", Resource: v1.ResourceCPU, Message: "cpu would drop to 3 (used 6 - 3), below its min 4"}},
		{name: "a contested resource the victims reduce below min", ns: "team-a",
			req: Resources{v1.ResourceCPU: 1000, v1.ResourceMemory: reclaimGiB}, victims: reclaimVictimsOfB(1),
			want: &verdict{Quota: "team-b/qb", Resource: v1.ResourceMemory, Message: "memory would drop to 7Gi"}},
		{name: "an uncontested resource may fall below min", ns: "team-a", req: reclaimCPU(1),
			victims: []Victim{{Namespace: "team-b", Req: Resources{v1.ResourceCPU: 1000, v1.ResourceMemory: 4 * reclaimGiB}}}},
		{name: "never from its own namespace", ns: "team-b", req: reclaimCPU(1), victims: reclaimVictimsOfB(1),
			want: &verdict{Quota: "team-b/qb", Message: "does not reclaim from itself"}},
		{name: "never from a namespace without a quota", ns: "team-a", req: reclaimCPU(1),
			victims: []Victim{{Namespace: "team-d", Req: reclaimCPU(1)}},
			want:    &verdict{Message: "namespace team-d has no quota"}},
		{name: "a gang beyond min is not admitted while others borrow", ns: "team-a", req: reclaimCPU(1), gang: gang6,
			want: &verdict{Quota: "team-a/qa", Resource: v1.ResourceCPU, Message: "over min"}},
		{name: "the gang is admitted once the borrowed cpu is back", ns: "team-a", req: reclaimCPU(1), gang: gang6, victims: reclaimVictimsOfB(2)},
		{name: "over max stays over max", ns: "team-a", req: reclaimCPU(9), victims: reclaimVictimsOfB(2),
			want: &verdict{Quota: "team-a/qa", Resource: v1.ResourceCPU, Message: "over max 8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := reclaimCache().ReclaimView(tt.ns, tt.gang, nil, nil)
			rej := v.Check(tt.ns, tt.req, tt.gang, tt.victims)
			var got *verdict
			if rej != nil {
				got = &verdict{Quota: rej.Quota, Resource: rej.Resource, Message: rej.Message}
				if tt.want != nil && strings.Contains(rej.Message, tt.want.Message) {
					got.Message = tt.want.Message
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Check (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestReclaimViewIsACopy: the view keeps the numbers it was built with while
// the cache moves on, and reading it races with nothing (go test -race).
func TestReclaimViewIsACopy(t *testing.T) {
	c := reclaimCache()
	v := c.ReclaimView("team-a", nil, nil, nil)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			c.RemovePod(types.UID(fmt.Sprintf("b-%d", i%6)))
			c.SetQuota(&Quota{Namespace: "team-b", Name: "qb", Min: reclaimCPU(int64(i % 8)), Max: reclaimCPU(8)})
			c.AddPod(types.UID(fmt.Sprintf("b-%d", i%6)), "team-b", reclaimCPU(2), nil)
		}
	}()
	go func() {
		defer wg.Done()
		for i := 0; i < 200; i++ {
			if !v.Borrowing("team-b", reclaimCPU(1)) {
				t.Errorf("the view changed with the cache: team-b no longer borrows")
				return
			}
			if rej := v.Check("team-a", reclaimCPU(1), nil, reclaimVictimsOfB(2)); rej != nil {
				t.Errorf("Check on the view changed with the cache: %v", rej)
				return
			}
		}
	}()
	wg.Wait()
	if got := c.Used("team-b")[v1.ResourceCPU]; got != 12000 {
		t.Fatalf("the cache itself: team-b uses %d milli-cpu, want 12000 (six pods now of 2 cpu)", got)
	}
}

func TestReclaimedForgetsAfterItsMemory(t *testing.T) {
	r := NewReclaimed(time.Minute)
	t0 := time.Unix(1000, 0)
	r.Add("old", t0)
	r.Add("new", t0.Add(50*time.Second))
	if diff := cmp.Diff([]types.UID{"new", "old"}, r.List(t0.Add(time.Minute))); diff != "" {
		t.Errorf("List within a minute (-want,+got):\n%s", diff)
	}
	if diff := cmp.Diff([]types.UID{"new"}, r.List(t0.Add(61*time.Second))); diff != "" {
		t.Errorf("List after a minute (-want,+got):\n%s", diff)
	}
	if r.Has("old") || !r.Has("new") {
		t.Errorf("Has(old)=%v Has(new)=%v, want false, true", r.Has("old"), r.Has("new"))
	}
}
