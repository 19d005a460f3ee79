package batchquota

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"locus.dev/locus/pkg/batchquota/gang"
	"locus.dev/locus/pkg/batchquota/quota"
)

// bqUnstructured is a scheduling.x-k8s.io object as the scheduler's dynamic
// informers deliver it; a nil spec or status is left out.
func bqUnstructured(kind, ns, name, resourceVersion string, spec, status map[string]interface{}) *unstructured.Unstructured {
	obj := map[string]interface{}{
		"apiVersion": "scheduling.x-k8s.io/v1alpha1",
		"kind":       kind,
		"metadata": map[string]interface{}{
			"namespace": ns, "name": name, "resourceVersion": resourceVersion,
		},
	}
	if spec != nil {
		obj["spec"] = spec
	}
	if status != nil {
		obj["status"] = status
	}
	return &unstructured.Unstructured{Object: obj}
}

func bqUnstructuredPG(ns, name, resourceVersion string, minMember int64, phase string) *unstructured.Unstructured {
	return bqUnstructured("PodGroup", ns, name, resourceVersion,
		map[string]interface{}{"minMember": minMember, "scheduleTimeoutSeconds": int64(60)},
		map[string]interface{}{"phase": phase})
}

func TestEventsToRegister(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pl := &BatchQuota{}
	got, err := pl.EventsToRegister(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var events []fwk.ClusterEvent
	for _, e := range got {
		if e.QueueingHintFn == nil {
			t.Errorf("event %v has no queueing hint", e.Event)
		}
		events = append(events, e.Event)
	}
	want := []fwk.ClusterEvent{
		{Resource: fwk.Pod, ActionType: fwk.Delete},
		{Resource: fwk.Pod, ActionType: fwk.Add | fwk.UpdatePodSchedulingGatesEliminated},
		{Resource: "elasticquotas.v1alpha1.scheduling.x-k8s.io", ActionType: fwk.Add | fwk.Update | fwk.Delete},
		{Resource: "podgroups.v1alpha1.scheduling.x-k8s.io", ActionType: fwk.Add | fwk.Update},
	}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("events (-want,+got):\n%s", diff)
	}
}

// TestIsSchedulableAfterPodDeleted: a deletion requeues a pod that BatchQuota
// turned away only if it frees quota the pod can use, so that churn in other
// namespaces does not wake every waiting pod.
func TestIsSchedulableAfterPodDeleted(t *testing.T) {
	waiting := st.MakePod().Namespace("team-a").Name("p").UID("p").Obj()
	forTotal := st.MakePod().Namespace("team-a").Name("t").UID("t").Obj()
	own := st.MakePod().Namespace("team-a").Name("gone").Node("n1").Obj()
	otherQuota := st.MakePod().Namespace("team-b").Name("gone").Node("n1").Obj()
	noQuota := st.MakePod().Namespace("free").Name("gone").Node("n1").Obj()
	tests := []struct {
		name    string
		pod     *v1.Pod
		oldObj  interface{}
		want    fwk.QueueingHint
		wantErr bool
	}{
		{name: "a bound pod of its namespace frees quota", pod: waiting, oldObj: own, want: fwk.Queue},
		{name: "a missed deletion of its namespace frees quota", pod: waiting, oldObj: cache.DeletedFinalStateUnknown{Key: "team-a/gone", Obj: own}, want: fwk.Queue},
		{name: "another quota's pod: nothing for a pod over its own max", pod: waiting, oldObj: otherQuota, want: fwk.QueueSkip},
		{name: "another quota's pod: room in the guaranteed total", pod: forTotal, oldObj: otherQuota, want: fwk.Queue},
		{name: "a namespace without quota frees nothing", pod: forTotal, oldObj: noQuota, want: fwk.QueueSkip},
		{name: "an unbound pod held no quota", pod: waiting, oldObj: st.MakePod().Namespace("team-a").Name("pending").Obj(), want: fwk.QueueSkip},
		{name: "not a pod", pod: waiting, oldObj: st.MakeNode().Name("n1").Obj(), want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			pl := &BatchQuota{cache: quota.NewCache(), blocked: gang.NewBlocked()}
			pl.cache.SetQuota(&quota.Quota{Namespace: "team-a", Name: "q", Max: quota.Resources{v1.ResourceCPU: 1000}})
			pl.cache.SetQuota(&quota.Quota{Namespace: "team-b", Name: "q", Max: quota.Resources{v1.ResourceCPU: 1000}})
			pl.blocked.Changed(waiting, "over max", false)
			pl.blocked.Changed(forTotal, "guaranteed total", true)
			got, err := pl.isSchedulableAfterPodDeleted(logger, tt.pod, tt.oldObj, nil)
			if (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want an error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsSchedulableAfterPodAdded(t *testing.T) {
	member := bqMember("team-a", "m1", "train", 1).Obj()
	tests := []struct {
		name    string
		pod     *v1.Pod
		newObj  interface{}
		want    fwk.QueueingHint
		wantErr bool
	}{
		{
			name:   "a sibling of the same gang",
			pod:    member,
			newObj: bqMember("team-a", "m2", "train", 1).Obj(),
			want:   fwk.Queue,
		},
		{
			name:   "a pod of another gang",
			pod:    member,
			newObj: bqMember("team-a", "x", "other", 1).Obj(),
			want:   fwk.QueueSkip,
		},
		{
			name:   "a gang of the same name in another namespace",
			pod:    member,
			newObj: bqMember("team-b", "m2", "train", 1).Obj(),
			want:   fwk.QueueSkip,
		},
		{
			name:   "a pod of no gang",
			pod:    member,
			newObj: bqPod("team-a", "x", 1).Obj(),
			want:   fwk.QueueSkip,
		},
		{
			name:   "the waiting pod is in no gang",
			pod:    bqPod("team-a", "p", 1).Obj(),
			newObj: bqPod("team-a", "x", 1).Obj(),
			want:   fwk.QueueSkip,
		},
		{
			name:    "not a pod",
			pod:     member,
			newObj:  st.MakeNode().Name("n1").Obj(),
			want:    fwk.Queue,
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			pl := &BatchQuota{}
			got, err := pl.isSchedulableAfterPodAdded(logger, tt.pod, nil, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want an error: %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsSchedulableAfterPodGroupChange(t *testing.T) {
	member := bqMember("team-a", "m1", "train", 1).Obj()
	typed := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "train"},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: 2},
	}
	tests := []struct {
		name           string
		pod            *v1.Pod
		oldObj, newObj interface{}
		want           fwk.QueueingHint
	}{
		{
			name:   "its PodGroup is created",
			pod:    member,
			newObj: bqUnstructuredPG("team-a", "train", "1", 3, ""),
			want:   fwk.Queue,
		},
		{
			name:   "its PodGroup is created (typed object)",
			pod:    member,
			newObj: typed,
			want:   fwk.Queue,
		},
		{
			name:   "its PodGroup's minMember changes",
			pod:    member,
			oldObj: bqUnstructuredPG("team-a", "train", "1", 3, "Pending"),
			newObj: bqUnstructuredPG("team-a", "train", "2", 2, "Pending"),
			want:   fwk.Queue,
		},
		{
			name:   "only its PodGroup's status changes",
			pod:    member,
			oldObj: bqUnstructuredPG("team-a", "train", "1", 3, "Pending"),
			newObj: bqUnstructuredPG("team-a", "train", "2", 3, "Scheduling"),
			want:   fwk.QueueSkip,
		},
		{
			name:   "another PodGroup is created",
			pod:    member,
			newObj: bqUnstructuredPG("team-a", "other", "1", 3, ""),
			want:   fwk.QueueSkip,
		},
		{
			name:   "another PodGroup's spec changes",
			pod:    member,
			oldObj: bqUnstructuredPG("team-a", "other", "1", 3, ""),
			newObj: bqUnstructuredPG("team-a", "other", "2", 1, ""),
			want:   fwk.QueueSkip,
		},
		{
			name:   "a PodGroup of the same name in another namespace",
			pod:    member,
			newObj: bqUnstructuredPG("team-b", "train", "1", 3, ""),
			want:   fwk.QueueSkip,
		},
		{
			name:   "the waiting pod is in no gang",
			pod:    bqPod("team-a", "p", 1).Obj(),
			newObj: bqUnstructuredPG("team-a", "train", "1", 3, ""),
			want:   fwk.QueueSkip,
		},
		{
			name:   "an object the hint does not know: queue rather than lose the pod",
			pod:    member,
			newObj: st.MakeNode().Name("n1").Obj(),
			want:   fwk.Queue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			pl := &BatchQuota{}
			got, err := pl.isSchedulableAfterPodGroupChange(logger, tt.pod, tt.oldObj, tt.newObj)
			if err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsSpecChange(t *testing.T) {
	eq := func(rv, max string, used string) *unstructured.Unstructured {
		var status map[string]interface{}
		if used != "" {
			status = map[string]interface{}{"used": map[string]interface{}{"cpu": used}}
		}
		return bqUnstructured("ElasticQuota", "team-a", "q", rv,
			map[string]interface{}{"min": map[string]interface{}{"cpu": "2"}, "max": map[string]interface{}{"cpu": max}}, status)
	}
	pod := bqPod("team-a", "p", 1).Obj()
	tests := []struct {
		name           string
		oldObj, newObj interface{}
		want           fwk.QueueingHint
	}{
		{
			name:   "add",
			newObj: eq("1", "4", ""),
			want:   fwk.Queue,
		},
		{
			name:   "delete",
			oldObj: eq("1", "4", ""),
			want:   fwk.Queue,
		},
		{
			name:   "status written back",
			oldObj: eq("1", "4", ""),
			newObj: eq("2", "4", "3"),
			want:   fwk.QueueSkip,
		},
		{
			name:   "status changes again",
			oldObj: eq("2", "4", "3"),
			newObj: eq("3", "4", "1"),
			want:   fwk.QueueSkip,
		},
		{
			name:   "max raised",
			oldObj: eq("1", "4", "3"),
			newObj: eq("2", "8", "3"),
			want:   fwk.Queue,
		},
		{
			name:   "spec added",
			oldObj: bqUnstructured("ElasticQuota", "team-a", "q", "1", nil, nil),
			newObj: eq("2", "4", ""),
			want:   fwk.Queue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, _ := ktesting.NewTestContext(t)
			got, err := isSpecChange(logger, pod, tt.oldObj, tt.newObj)
			if err != nil {
				t.Errorf("unexpected error: %v", err)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

// A quota created or changed after pods were turned away brings back, from
// BatchQuota's own informer, the pods it can help: the scheduler's event for
// the quota comes through another informer and can requeue them before this
// cache holds the quota, leaving them to the 5-minute flush. (Found by
// TestLeaderKilledMidReclaim: a borrower's pod judged before the lender's
// quota arrived never came back.) Status updates activate nothing.
func TestQuotaCreatedAfterPodsActivatesThem(t *testing.T) {
	borrower, other := bqPod("borrower", "b-0", 1).Obj(), bqPod("other", "o-0", 1).Obj()
	env := newBQ(t, bqSetup{quotas: []*schedv1alpha1.ElasticQuota{bqEQ("borrower", "0", "4"), bqEQ("other", "1", "1")},
		pods: []*v1.Pod{borrower, other, bqPod("other", "o-1", 1).Node("n1").Obj()}})
	if st := env.attempt(borrower); st.Code() != fwk.Unschedulable {
		t.Fatalf("PreFilter(b-0) with no guaranteed quota to borrow = %v, want Unschedulable", st)
	}
	if st := env.attempt(other); st.Code() != fwk.Unschedulable {
		t.Fatalf("PreFilter(o-0) over its max = %v, want Unschedulable", st)
	}
	env.activations()

	lender := bqEQ("lender", "4", "4")
	env.pl.onQuota(lender)
	if got, want := env.activations(), []string{"borrower/b-0"}; !slices.Equal(got, want) {
		t.Errorf("a new quota with a min activated %v, want the pod waiting to borrow %v (not the one over its own max)", got, want)
	}
	if st := env.attempt(borrower); !st.IsSuccess() {
		t.Errorf("PreFilter(b-0) once the lender's quota is known = %v, want Success", st)
	}
	bound := borrower.DeepCopy()
	bound.Spec.NodeName = "n1"
	env.pl.onPod(bound)

	env.pl.onQuota(lender.DeepCopy()) // a status update: same spec
	if got := env.activations(); len(got) != 0 {
		t.Errorf("an update with the same spec activated %v", got)
	}
	raised := bqEQ("other", "1", "2")
	env.pl.onQuota(raised)
	if got, want := env.activations(), []string{"other/o-0"}; !slices.Equal(got, want) {
		t.Errorf("raising other's max activated %v, want %v", got, want)
	}
}
