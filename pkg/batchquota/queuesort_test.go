package batchquota

import (
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// bqQueued is a pod in the scheduling queue since queued, first queued at
// initial (nil: unknown).
func bqQueued(t *testing.T, pod *v1.Pod, queued time.Time, initial *time.Time) *framework.QueuedPodInfo {
	t.Helper()
	pi, err := framework.NewPodInfo(pod)
	if err != nil {
		t.Fatal(err)
	}
	return &framework.QueuedPodInfo{PodInfo: pi, Timestamp: queued, InitialAttemptTimestamp: initial}
}

func bqTime(d time.Duration) *time.Time {
	t := bqNow.Add(d)
	return &t
}

// newQueueSortEnv: "busy" uses half its min, "idle" and "idle2" none of
// theirs, "free" has no quota.
func newQueueSortEnv(t *testing.T) *bqEnv {
	group := func(ns, name string, age time.Duration) *schedv1alpha1.PodGroup {
		pg := bqGroup(ns, name, 2, nil)
		pg.CreationTimestamp = metav1.NewTime(bqNow.Add(-age))
		return pg
	}
	return newBQ(t, bqSetup{
		quotas: []*schedv1alpha1.ElasticQuota{bqEQ("busy", "4", "8"), bqEQ("idle", "4", "8"), bqEQ("idle2", "4", "8")},
		pods:   []*v1.Pod{bqPod("busy", "bound", 2).Node("n1").Obj()},
		groups: []*schedv1alpha1.PodGroup{
			group("busy", "train", 3*time.Hour),
			group("idle", "train", time.Minute),
			group("idle", "old", 2*time.Hour),
			group("idle", "tie", 0),
		},
	})
}

func TestLess(t *testing.T) {
	env := newQueueSortEnv(t)
	if got := env.pl.cache.Share("busy"); got != 0.5 {
		t.Fatalf("share of busy = %v, want 0.5", got)
	}
	pod := func(ns, name string) *v1.Pod { return bqPod(ns, name, 1).Obj() }
	member := func(ns, name, gang string) *v1.Pod { return bqMember(ns, name, gang, 1).Obj() }
	withPriority := func(p *v1.Pod, prio int32) *v1.Pod { p.Spec.Priority = &prio; return p }
	tests := []struct {
		name string
		a, b *framework.QueuedPodInfo
		want bool // Less(a, b); Less(b, a) must be its opposite
	}{
		{
			name: "higher priority first, whatever share and age",
			a:    bqQueued(t, withPriority(pod("busy", "x"), 10), bqNow.Add(time.Hour), bqTime(time.Hour)),
			b:    bqQueued(t, withPriority(pod("idle", "y"), 0), bqNow.Add(-time.Hour), bqTime(-time.Hour)),
			want: true,
		},
		{
			name: "same gang: the member queued first, though its name sorts later",
			a:    bqQueued(t, member("idle", "m-z", "train"), bqNow, bqTime(0)),
			b:    bqQueued(t, member("idle", "m-a", "train"), bqNow.Add(time.Second), bqTime(time.Second)),
			want: true,
		},
		{
			name: "same gang: by first time in the queue, not by the last",
			a:    bqQueued(t, member("idle", "m-z", "train"), bqNow.Add(10*time.Second), bqTime(0)),
			b:    bqQueued(t, member("idle", "m-a", "train"), bqNow.Add(5*time.Second), bqTime(time.Second)),
			want: true,
		},
		{
			name: "same gang, queued at once: by name",
			a:    bqQueued(t, member("idle", "m-a", "train"), bqNow, bqTime(0)),
			b:    bqQueued(t, member("idle", "m-b", "train"), bqNow, bqTime(0)),
			want: true,
		},
		{
			name: "same gang: priority still comes first",
			a:    bqQueued(t, withPriority(member("idle", "m-b", "train"), 5), bqNow.Add(time.Hour), bqTime(time.Hour)),
			b:    bqQueued(t, member("idle", "m-a", "train"), bqNow, bqTime(0)),
			want: true,
		},
		{
			name: "fair share: the namespace using less of its min first, though younger",
			a:    bqQueued(t, pod("idle", "y"), bqNow.Add(time.Hour), bqTime(time.Hour)),
			b:    bqQueued(t, pod("busy", "x"), bqNow.Add(-time.Hour), bqTime(-time.Hour)),
			want: true,
		},
		{
			name: "gangs of one name in two namespaces are two gangs: fair share decides",
			a:    bqQueued(t, member("idle", "m1", "train"), bqNow.Add(time.Hour), bqTime(time.Hour)),
			b:    bqQueued(t, member("busy", "m1", "train"), bqNow.Add(-time.Hour), bqTime(-time.Hour)),
			want: true,
		},
		{
			name: "a namespace without quota has share 0",
			a:    bqQueued(t, pod("free", "p"), bqNow.Add(time.Hour), bqTime(time.Hour)),
			b:    bqQueued(t, pod("busy", "p"), bqNow, bqTime(0)),
			want: true,
		},
		{
			name: "equal share: the older gang first, though its member was queued later",
			a:    bqQueued(t, member("idle", "m", "old"), bqNow.Add(time.Hour), bqTime(time.Hour)),
			b:    bqQueued(t, pod("idle2", "lone"), bqNow.Add(-time.Hour), bqTime(-time.Hour)),
			want: true,
		},
		{
			name: "equal share: a pod queued before a gang's PodGroup was created goes first",
			a:    bqQueued(t, pod("idle2", "lone"), bqNow.Add(-90*time.Minute), bqTime(-90*time.Minute)),
			b:    bqQueued(t, member("idle", "m", "train"), bqNow.Add(-2*time.Hour), bqTime(-2*time.Hour)),
			want: true,
		},
		{
			name: "equal share: pods by their first time in the queue, not the last",
			a:    bqQueued(t, pod("idle", "p"), bqNow.Add(time.Hour), bqTime(0)),
			b:    bqQueued(t, pod("idle2", "q"), bqNow, bqTime(time.Minute)),
			want: true,
		},
		{
			name: "no first attempt time: the queue time",
			a:    bqQueued(t, pod("idle", "p"), bqNow, nil),
			b:    bqQueued(t, pod("idle2", "q"), bqNow.Add(-time.Hour), bqTime(time.Second)),
			want: true,
		},
		{
			name: "a gang without its PodGroup is as old as its pod",
			a:    bqQueued(t, pod("idle2", "lone"), bqNow, bqTime(0)),
			b:    bqQueued(t, member("idle", "p", "ghost"), bqNow.Add(time.Second), bqTime(time.Second)),
			want: true,
		},
		{
			name: "tie of share and age: by namespace and name",
			a:    bqQueued(t, pod("idle", "x"), bqNow, bqTime(0)),
			b:    bqQueued(t, pod("idle2", "a"), bqNow, bqTime(0)),
			want: true,
		},
		{
			name: "tie between a gang and a pod: by namespace and gang name, not the member's name",
			a:    bqQueued(t, member("idle", "a0", "tie"), bqNow, bqTime(0)),
			b:    bqQueued(t, pod("idle", "abc"), bqNow, bqTime(0)),
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := env.pl.Less(tt.a, tt.b); got != tt.want {
				t.Errorf("Less(a, b) = %v, want %v", got, tt.want)
			}
			if got := env.pl.Less(tt.b, tt.a); got != !tt.want {
				t.Errorf("Less(b, a) = %v, want %v", got, !tt.want)
			}
		})
	}
}

// TestLessOrdersQueue: sorted by Less, a gang's members sit together.
func TestLessOrdersQueue(t *testing.T) {
	env := newQueueSortEnv(t)
	vip := bqPod("busy", "vip", 1).Priority(100).Obj()
	queue := []*framework.QueuedPodInfo{
		bqQueued(t, bqPod("busy", "lone", 1).Obj(), bqNow.Add(-2*time.Hour), bqTime(-2*time.Hour)),
		bqQueued(t, bqMember("busy", "m2", "train", 1).Obj(), bqNow.Add(2*time.Second), bqTime(2*time.Second)),
		bqQueued(t, bqPod("idle", "y", 1).Obj(), bqNow.Add(time.Hour), bqTime(time.Hour)),
		bqQueued(t, bqMember("busy", "m1", "train", 1).Obj(), bqNow.Add(time.Second), bqTime(time.Second)),
		bqQueued(t, vip, bqNow.Add(3*time.Hour), bqTime(3*time.Hour)),
		bqQueued(t, bqMember("idle", "old-1", "old", 1).Obj(), bqNow, bqTime(0)),
	}
	sort.SliceStable(queue, func(i, j int) bool { return env.pl.Less(queue[i], queue[j]) })
	var got []string
	for _, q := range queue {
		got = append(got, q.Pod.Namespace+"/"+q.Pod.Name)
	}
	want := []string{"busy/vip", "idle/old-1", "idle/y", "busy/m1", "busy/m2", "busy/lone"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("queue order (-want,+got):\n%s", diff)
	}
}

// The queue is a heap: the order of two queued pods must not change while
// they wait, though their namespaces' usage does. A pod queued after the
// change sees the new share.
func TestQueuedShareStaysWhileQueued(t *testing.T) {
	env := newQueueSortEnv(t)
	idle := bqQueued(t, bqPod("idle", "p", 1).Obj(), bqNow, bqTime(0))
	busy := bqQueued(t, bqPod("busy", "q", 1).Obj(), bqNow.Add(-time.Hour), bqTime(-time.Hour))
	if !env.pl.Less(idle, busy) {
		t.Fatal("idle (share 0) should go before busy (share 0.5)")
	}
	// idle now uses all of its min: more than busy.
	env.pl.onPod(bqPod("idle", "big", 4).Node("n1").Obj())
	if got := env.pl.cache.Share("idle"); got != 1 {
		t.Fatalf("share of idle = %v, want 1", got)
	}
	if !env.pl.Less(idle, busy) || env.pl.Less(busy, idle) {
		t.Error("the order of two queued pods changed while they waited")
	}
	// idle's pod is placed; the next pod of idle is ordered by the share now.
	placed := bqPod("idle", "p", 1).Node("n1").Obj()
	env.pl.onPod(placed)
	next := bqQueued(t, bqPod("idle", "p2", 1).Obj(), bqNow, bqTime(0))
	if env.pl.Less(next, busy) || !env.pl.Less(busy, next) {
		t.Error("a pod of idle queued after its usage grew still goes before busy")
	}
}
