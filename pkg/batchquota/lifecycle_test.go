package batchquota

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/metrics"
)

// quotaSeries lists the locus_quota_* series of one quota as
// "name{resource}=value".
func quotaSeries(t *testing.T, ns, name string) []string {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "locus_quota_") {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["namespace"] == ns && labels["quota"] == name {
				out = append(out, f.GetName()+"{"+labels["resource"]+"}="+resource.NewMilliQuantity(int64(m.GetGauge().GetValue()*1000), resource.DecimalSI).String())
			}
		}
	}
	return out
}

// Every series has a way out: a resource back at zero reads zero (not its
// last non-zero value), a resource the quota no longer has loses its series,
// and a deleted quota loses all of them.
func TestQuotaGaugesLeaveWithTheirQuota(t *testing.T) {
	metrics.RegisterBatchQuota()
	st := quota.Status{Namespace: "gauges", Name: "q",
		Min: quota.Resources{v1.ResourceCPU: 2000}, Max: quota.Resources{v1.ResourceCPU: 4000, v1.ResourceMemory: 1 << 30 * 1000},
		Used: quota.Resources{v1.ResourceCPU: 1000, "nvidia.com/gpu": 1000}}
	setGauges(st)
	if got := quotaSeries(t, "gauges", "q"); len(got) != 6 {
		t.Fatalf("series %v, want min cpu, max cpu and memory, used cpu, memory and gpu", got)
	}
	st.Used = nil // every pod gone
	st.Max = quota.Resources{v1.ResourceCPU: 4000}
	setGauges(st)
	got := strings.Join(quotaSeries(t, "gauges", "q"), " ")
	for _, want := range []string{"locus_quota_used{cpu}=0", "locus_quota_min{cpu}=2", "locus_quota_max{cpu}=4"} {
		if !strings.Contains(got, want) {
			t.Errorf("series %q lack %q", got, want)
		}
	}
	for _, gone := range []string{"nvidia.com/gpu", "locus_quota_max{memory}", "locus_quota_used{memory}"} {
		if strings.Contains(got, gone) {
			t.Errorf("series %q still have %q", got, gone)
		}
	}

	env := newBQ(t, bqSetup{})
	eq := &schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "gauges", Name: "q", UID: "eq"}}
	env.pl.onQuota(eq)
	env.pl.onQuotaDelete(cache.DeletedFinalStateUnknown{Key: "gauges/q", Obj: eq})
	if got := quotaSeries(t, "gauges", "q"); len(got) != 0 {
		t.Errorf("series of a deleted quota: %v", got)
	}
	if env.pl.cache.Limited("gauges") {
		t.Error("deleted quota still limits its namespace")
	}
}

// Gang and waiting-pod state leaves with its PodGroup and its pods.
func TestGangStateLeavesWithItsPodGroup(t *testing.T) {
	const ns = "team-a"
	pg := bqGroup(ns, "train", 2, nil)
	env := newBQ(t, bqSetup{
		quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "1", "1")},
		groups: []*schedv1alpha1.PodGroup{pg},
		pods:   []*v1.Pod{bqMember(ns, "m1", "train", 1).Obj(), bqMember(ns, "m2", "train", 1).Obj()},
	})
	m1 := bqMember(ns, "m1", "train", 1).Obj()
	if st := env.attempt(m1); st.IsSuccess() {
		t.Fatal("a gang of 2 CPUs admitted under max 1")
	}
	if env.pl.blocked.Len() != 1 {
		t.Fatalf("blocked pods %d, want 1", env.pl.blocked.Len())
	}
	env.pl.gangs.Reserved(gangKey(ns, "train"), 1, env.now)
	env.pl.gangs.BackOff(gangKey(ns, "train"), env.now)
	env.pl.short.Add(gangKey(ns, "train"), bqMember(ns, "m2", "train", 1).Obj())
	env.pl.onPodGroupDelete(cache.DeletedFinalStateUnknown{Key: ns + "/train", Obj: pg})
	if n := env.pl.short.Len(); n != 0 {
		t.Errorf("%d members remembered as short after their PodGroup was deleted", n)
	}
	env.pl.onPodDelete(m1)
	if n := env.pl.gangs.Len(); n != 0 {
		t.Errorf("tracker remembers %d gangs after the PodGroup was deleted", n)
	}
	if n := env.pl.blocked.Len(); n != 0 {
		t.Errorf("%d blocked pods remembered after they were deleted", n)
	}
	if gangs := env.pl.cache.Gangs(); len(gangs) != 0 {
		t.Errorf("cache keeps gangs %v", gangs)
	}
}

// PodGroup status is written only for gangs whose members use this
// scheduler's profile, not every PodGroup of the cluster.
func TestPodGroupStatusOnlyForItsProfile(t *testing.T) {
	pl := &BatchQuota{profile: "locus-scheduler"}
	ours := bqMember("a", "p", "g", 1).SchedulerName("locus-scheduler").Obj()
	theirs := bqMember("a", "q", "g", 1).SchedulerName("default-scheduler").Obj()
	if !pl.ours([]*v1.Pod{theirs, ours}) {
		t.Error("a gang with a locus member is not ours")
	}
	if pl.ours([]*v1.Pod{theirs}) || pl.ours(nil) {
		t.Error("a gang without locus members is ours")
	}
}

// Unreserve after the informer saw the pod bound (the bind call timed out
// but went through) leaves the running pod counted.
func TestUnreserveAfterBoundKeepsThePod(t *testing.T) {
	const ns = "team-a"
	env := newBQ(t, bqSetup{quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")}})
	p := bqPod(ns, "p", 2).Obj()
	state := env.preFiltered(t, p)
	if st := env.pl.Reserve(env.ctx, state, p, "n1"); !st.IsSuccess() {
		t.Fatal(st)
	}
	bound := p.DeepCopy()
	bound.Spec.NodeName = "n1"
	env.pl.onPod(bound)
	env.pl.Unreserve(env.ctx, state, p, "n1")
	if used := env.pl.cache.Used(ns); !used.Equal(quota.Resources{v1.ResourceCPU: 2000}) {
		t.Errorf("used %v after Unreserve of a bound pod, want cpu=2", used)
	}
}

// A lowered minMember completes a gang whose members wait at Permit.
func TestLoweredMinMemberLetsWaitingMembersThrough(t *testing.T) {
	const ns = "team-a"
	pg := bqGroup(ns, "train", 3, nil)
	m1, m2 := bqMember(ns, "m1", "train", 1).Obj(), bqMember(ns, "m2", "train", 1).Obj()
	env := newBQ(t, bqSetup{groups: []*schedv1alpha1.PodGroup{pg},
		pods: []*v1.Pod{m1, m2, bqMember(ns, "m3", "train", 1).Obj()}})
	for _, m := range []*v1.Pod{m1, m2} {
		state := env.preFiltered(t, m)
		env.pl.Reserve(env.ctx, state, m, "n1")
		if st := env.fw.RunPermitPlugins(env.ctx, state, m, "n1"); st.Code() != fwk.Wait {
			t.Fatalf("Permit(%s) = %v, want Wait", m.Name, st)
		}
	}
	lowered := pg.DeepCopy()
	lowered.Spec.MinMember = 2
	env.pl.onPodGroup(lowered)
	for _, m := range []*v1.Pod{m1, m2} {
		if st := env.fw.WaitOnPermit(env.ctx, m); !st.IsSuccess() {
			t.Errorf("%s at Permit after minMember dropped to 2: %v", m.Name, st)
		}
	}
}

// A PodGroup deleted and created again under the same name is a new gang:
// pods of the earlier run that are still bound do not complete it, so the
// new run's members still wait at Permit for each other.
func TestReusedPodGroupNameKeepsAllOrNothing(t *testing.T) {
	const ns = "team-a"
	pg := bqGroup(ns, "train", 2, nil) // created an hour before bqNow
	pg.UID = "second-run"
	earlier := metav1.NewTime(bqNow.Add(-2 * time.Hour))
	old1 := bqMember(ns, "old-1", "train", 1).Node("n1").CreationTimestamp(earlier).Obj()
	old2 := bqMember(ns, "old-2", "train", 1).Node("n1").CreationTimestamp(earlier).Obj()
	n1, n2 := bqMember(ns, "new-1", "train", 1).Obj(), bqMember(ns, "new-2", "train", 1).Obj()
	env := newBQ(t, bqSetup{groups: []*schedv1alpha1.PodGroup{pg}, pods: []*v1.Pod{old1, old2, n1, n2}})
	if used := env.pl.cache.Used(ns); !used.Equal(quota.Resources{v1.ResourceCPU: 2000}) {
		t.Fatalf("the earlier run's pods are not counted: used %v", used)
	}
	state := env.preFiltered(t, n1)
	env.pl.Reserve(env.ctx, state, n1, "n1")
	if st := env.fw.RunPermitPlugins(env.ctx, state, n1, "n1"); st.Code() != fwk.Wait {
		t.Errorf("Permit(new-1) = %v, want Wait: the earlier run's pods must not complete the new gang", st)
	}
	if n, complete := env.pl.cache.GangMembers(ns, "train"); n != 1 || complete {
		t.Errorf("gang train: %d members, complete %v; want 1, not complete", n, complete)
	}
}

// Before the counts are rebuilt, PreFilter turns pods away without side
// effects; PostFilter remembers them so that they come back once synced.
func TestPodsTurnedAwayBeforeSyncAreRemembered(t *testing.T) {
	env := newBQ(t, bqSetup{notSynced: true})
	p := bqPod("team-a", "p", 1).Obj()
	state := framework.NewCycleState()
	if _, st := env.pl.PreFilter(env.ctx, state, p, nil); st.Message() != ErrReasonNotSynced {
		t.Fatalf("PreFilter = %v, want %q", st, ErrReasonNotSynced)
	}
	if n := len(env.pl.early.Take()); n != 0 {
		t.Fatalf("PreFilter remembered %d pods; it must only compute", n)
	}
	env.pl.PostFilter(env.ctx, state, p, nil)
	if got := env.pl.early.Take(); got["team-a/p"] == nil {
		t.Errorf("PostFilter did not remember the pod: %v", got)
	}
}

// The informer's store drops a deleted pod before any handler hears of it,
// and the scheduler's handler may requeue a waiting pod before this
// plugin's handler uncounts the deleted one. PreFilter catches up rather
// than judge on the stale count (which made a priority preemption pick a
// second victim for room the first had freed).
func TestPreFilterCatchesUpWithDeletions(t *testing.T) {
	const ns = "team-a"
	env := newBQ(t, bqSetup{quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")}})
	// Counted, but gone from the informer: its delete is not handled yet.
	env.pl.cache.AddBoundPod("team-a/deleted", ns, quota.Resources{v1.ResourceCPU: 3000}, nil)
	kept := bqPod(ns, "kept", 1).Node("n1").Obj()
	env.create(t, kept)
	if st := env.attempt(bqPod(ns, "p", 2).Obj()); !st.IsSuccess() {
		t.Fatalf("PreFilter = %v, want the deleted pod's quota free", st)
	}
	if env.pl.cache.HasPod("team-a/deleted") || !env.pl.cache.HasPod(kept.UID) {
		t.Error("PreFilter should uncount the deleted pod and keep the existing one")
	}
}

// A member turned away because its gang had too few pods comes back when a
// new member brings the gang to minMember, even when the gang's first
// member was reserved before (its Reserve brought the siblings back once,
// and no queueing hint runs for an unscheduled pod's creation). Seen with a
// member replaced while its siblings waited at Permit: the member tried in
// between found the gang short and waited until the gang timed out. A
// scheduling-gated member does not count until its gates are removed.
func TestNewMemberBringsBackMembersTurnedAwayShort(t *testing.T) {
	const ns = "team-a"
	m := make([]*v1.Pod, 4)
	for i := range m {
		m[i] = bqMember(ns, fmt.Sprintf("m%d", i), "job", 1).Obj()
	}
	env := newBQ(t, bqSetup{groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "job", 4, nil)}, pods: m})
	for _, p := range m[:2] {
		state := env.preFiltered(t, p)
		env.pl.Reserve(env.ctx, state, p, "n1")
	}
	// m3 is lost, to be replaced as a controller replaces a pod.
	if err := env.cs.CoreV1().Pods(ns).Delete(env.ctx, m[3].Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(env.ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := env.pl.pods.Pods(ns).Get(m[3].Name)
		return err != nil, nil
	}); err != nil {
		t.Fatalf("deleted m3 stays in the plugin's informer: %v", err)
	}
	if st := env.attempt(m[2]); st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != "gang job has 3 of its minMember 4 pods" {
		t.Fatalf("PreFilter(m2) with 3 pods of 4 = %v, want UnschedulableAndUnresolvable, too few pods", st)
	}
	env.activations()

	gated := bqMember(ns, "m4", "job", 1).SchedulingGates([]string{"example.com/hold"}).Obj()
	env.create(t, gated)
	// The plugin's handler hears of pods in order: once it has counted
	// this bound pod, it has seen the gated member.
	env.create(t, bqPod(ns, "marker", 1).Node("n2").Obj())
	if got := env.activations(); len(got) != 0 {
		t.Errorf("a scheduling-gated member activated %v; it does not count yet", got)
	}
	ungated := gated.DeepCopy()
	ungated.Spec.SchedulingGates = nil
	if _, err := env.cs.CoreV1().Pods(ns).Update(env.ctx, ungated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := wait.PollUntilContextTimeout(env.ctx, 5*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got = append(got, env.activations()...)
		return len(got) > 0, nil
	}); err != nil {
		t.Fatalf("the member that brought the gang to minMember activated nothing: %v", err)
	}
	if want := []string{ns + "/m2"}; !slices.Equal(got, want) {
		t.Errorf("activated %v, want %v", got, want)
	}
	if n := env.pl.short.Len(); n != 0 {
		t.Errorf("%d members still remembered as short after their activation", n)
	}
	if st := env.attempt(m[2]); !st.IsSuccess() && !st.IsSkip() {
		t.Errorf("PreFilter(m2) with 4 pods of 4 = %v", st)
	}
}
