package batchquota

import (
	"slices"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// A PodGroup deleted and created again within the second that its earlier
// run's pods were created in (creationTimestamp has a resolution of one
// second, so those pods do not look older than the new PodGroup) is still a
// new gang: the earlier run's bound pods, placed as members of the deleted
// PodGroup, do not complete it, and the new run's members wait at Permit
// for each other. Before the fix, the new PodGroup's handler counted them
// as its members, the gang was complete at once, and a new run whose last
// member could not be placed had its other members bound.
func TestPodGroupRecreatedInTheSameSecond(t *testing.T) {
	const ns = "team-a"
	second := metav1.NewTime(bqNow.Add(-time.Minute))
	pg := bqGroup(ns, "train", 2, nil)
	pg.CreationTimestamp = second
	old1 := bqMember(ns, "old-1", "train", 1).Node("n1").CreationTimestamp(second).Obj()
	old2 := bqMember(ns, "old-2", "train", 1).Node("n1").CreationTimestamp(second).Obj()
	env := newBQ(t, bqSetup{groups: []*schedv1alpha1.PodGroup{pg}, pods: []*v1.Pod{old1, old2}})
	if n, complete := env.pl.cache.GangMembers(ns, "train"); n != 2 || !complete {
		t.Fatalf("earlier run: %d members, complete %v; want 2, complete", n, complete)
	}

	// Deleted and created again: the informer's store holds the new
	// object, and the plugin's handlers hear of both.
	store := env.fw.SharedInformerFactory().InformerFor(&schedv1alpha1.PodGroup{}, nil).GetStore()
	again := pg.DeepCopy()
	again.UID = "second-run"
	if err := store.Delete(pg); err != nil {
		t.Fatal(err)
	}
	env.pl.onPodGroupDelete(pg)
	if err := store.Add(again); err != nil {
		t.Fatal(err)
	}
	env.pl.onPodGroup(again)
	if n, complete := env.pl.cache.GangMembers(ns, "train"); n != 0 || complete {
		t.Errorf("new PodGroup: %d members, complete %v, before any of its pods was placed", n, complete)
	}

	n1 := bqMember(ns, "new-1", "train", 1).CreationTimestamp(second).Obj()
	n2 := bqMember(ns, "new-2", "train", 1).CreationTimestamp(second).Obj()
	env.create(t, n1)
	env.create(t, n2)
	state := env.preFiltered(t, n1)
	if st := env.pl.Reserve(env.ctx, state, n1, "n1"); !st.IsSuccess() {
		t.Fatal(st)
	}
	if st := env.fw.RunPermitPlugins(env.ctx, state, n1, "n1"); st.Code() != fwk.Wait {
		t.Errorf("Permit(new-1) = %v, want Wait: the earlier run's pods must not complete the new PodGroup's gang", st)
	}
	if n, complete := env.pl.cache.GangMembers(ns, "train"); n != 1 || complete {
		t.Errorf("new PodGroup: %d members, complete %v; want 1, not complete", n, complete)
	}
}

// Members waiting at Permit when their PodGroup is deleted are sent back at
// once, naming the deletion: they neither hold their nodes for the schedule
// timeout nor, timing out, release the members of a PodGroup created in its
// place. Before, they waited out the timeout.
func TestDeletedPodGroupReleasesItsWaitingMembers(t *testing.T) {
	const ns = "team-a"
	pg := bqGroup(ns, "train", 3, ptr.To[int32](2))
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
	start := time.Now()
	env.pl.onPodGroupDelete(pg)
	for _, m := range []*v1.Pod{m1, m2} {
		st := env.fw.WaitOnPermit(env.ctx, m)
		if st.IsSuccess() || !strings.Contains(st.Message(), "was deleted") {
			t.Errorf("%s at Permit after its PodGroup was deleted: %v, want rejected naming the deletion", m.Name, st)
		}
	}
	if waited := time.Since(start); waited > time.Second {
		t.Errorf("the waiting members were released after %v, not at the deletion", waited)
	}
}

// A PodGroup created while its members wait for it brings them back to the
// active queue, from BatchQuota's own informer: the scheduler's PodGroup
// event comes through another informer, and a member tried again on it
// could still miss the PodGroup in the lister PreFilter reads; the
// PodGroup's status updates never requeue it. (Found by
// TestRecreateUnderLoad: run 3's members waited for the 5-minute flush.)
func TestPodGroupCreatedAfterItsMembersActivatesThem(t *testing.T) {
	const ns = "team-a"
	m1, m2 := bqMember(ns, "m1", "train", 1).Obj(), bqMember(ns, "m2", "train", 1).Obj()
	env := newBQ(t, bqSetup{pods: []*v1.Pod{m1, m2, bqMember(ns, "done", "train", 1).Node("n1").Obj(), bqPod(ns, "other", 1).Obj()}})
	if st := env.attempt(m1); st.Code() != fwk.UnschedulableAndUnresolvable {
		t.Fatalf("PreFilter(m1) without its PodGroup = %v, want UnschedulableAndUnresolvable", st)
	}
	env.activations()
	pg := bqGroup(ns, "train", 2, nil)
	if err := env.fw.SharedInformerFactory().InformerFor(&schedv1alpha1.PodGroup{}, nil).GetStore().Add(pg); err != nil {
		t.Fatal(err)
	}
	env.pl.onPodGroupAdd(pg)
	if got, want := env.activations(), []string{"team-a/m1", "team-a/m2"}; !slices.Equal(got, want) {
		t.Errorf("activated %v, want the pending members %v", got, want)
	}
	// A PodGroup's updates (its status, written every second) activate nothing.
	env.pl.onPodGroup(pg)
	if got := env.activations(); len(got) != 0 {
		t.Errorf("an update activated %v", got)
	}
}
