package batchquota

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	policy "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	internalqueue "k8s.io/kubernetes/pkg/scheduler/backend/queue"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/feature"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/noderesources"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"

	"locus.dev/locus/pkg/batchquota/gang"
	"locus.dev/locus/pkg/batchquota/quota"
)

// reclaimPod is a bound (or, with node "", pending) pod of cpu cores whose
// priority is part of its name in the tests ("b-300" has priority 300).
func reclaimPod(ns, name, node string, prio int32, cores int) *st.PodWrapper {
	w := st.MakePod().Namespace(ns).Name(name).UID(ns + "/" + name).Priority(prio).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: fmt.Sprint(cores)})
	if node != "" {
		w = w.Node(node)
	}
	return w
}

func reclaimQuota(ns string, min, max int64) *quota.Quota {
	return &quota.Quota{Namespace: ns, Name: "q", Min: quota.Resources{v1.ResourceCPU: min * 1000}, Max: quota.Resources{v1.ResourceCPU: max * 1000}}
}

// reclaimCluster fills nodes n1 and n2 (4 cpu each) with the given 1-cpu
// pods; "ns/name" names a pod, its priority is the number after the last "-".
func reclaimCluster(n1, n2 []string) []*v1.Pod {
	var pods []*v1.Pod
	for node, names := range map[string][]string{"n1": n1, "n2": n2} {
		for _, nn := range names {
			ns, name, _ := strings.Cut(nn, "/")
			var prio int32
			fmt.Sscanf(name[strings.LastIndex(name, "-")+1:], "%d", &prio)
			pods = append(pods, reclaimPod(ns, name, node, prio, 1).Obj())
		}
	}
	return pods
}

type reclaimOutcome struct {
	Code      fwk.Code
	Nominated string
	NilResult bool
	Deleted   []string
}

func TestReclaim(t *testing.T) {
	// team-b runs 8 pods against min 4: it borrows 4 while team-a is idle.
	borrowed := reclaimCluster(
		[]string{"team-b/b-100", "team-b/b-300", "team-b/b-500", "team-b/b-700"},
		[]string{"team-b/b-200", "team-b/b-400", "team-b/b-600", "team-b/b-800"})
	twoQuotas := []*quota.Quota{reclaimQuota("team-a", 4, 8), reclaimQuota("team-b", 4, 8), reclaimQuota("team-c", 2, 8)}
	protected := func(pods []*v1.Pod) []*v1.Pod {
		for _, p := range pods {
			if p.Name == "b-100" {
				p.Labels = map[string]string{"app": "protected"}
			}
		}
		return pods
	}

	tests := []struct {
		name        string
		quotas      []*quota.Quota
		pods        []*v1.Pod
		nominated   []*v1.Pod
		reclaimed   []string
		pdbs        []*policy.PodDisruptionBudget
		pod         *v1.Pod
		want        reclaimOutcome
		wantMessage string
	}{
		{
			name:   "the lowest-priority pod of a borrowing quota, on the node where that is cheapest",
			quotas: twoQuotas, pods: borrowed,
			pod:  reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n1", Deleted: []string{"team-b/b-100"}},
		},
		{
			name:   "as many as the pod needs, lowest priority first, reprieving the rest",
			quotas: twoQuotas, pods: borrowed,
			pod:  reclaimPod("team-a", "a", "", 0, 2).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n1", Deleted: []string{"team-b/b-100", "team-b/b-300"}},
		},
		{
			name:   "a PodDisruptionBudget steers reclaim to a pod it does not protect",
			quotas: twoQuotas, pods: protected(reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-300", "team-b/b-500", "team-b/b-700"},
				[]string{"team-b/b-200", "team-b/b-400", "team-b/b-600", "team-b/b-800"})),
			pdbs: []*policy.PodDisruptionBudget{{
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "protected"},
				Spec: policy.PodDisruptionBudgetSpec{
					Selector:     &metav1.LabelSelector{MatchLabels: map[string]string{"app": "protected"}},
					MinAvailable: &intstr.IntOrString{Type: intstr.Int, IntVal: 1},
				},
				Status: policy.PodDisruptionBudgetStatus{DisruptionsAllowed: 0},
			}},
			pod:  reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n2", Deleted: []string{"team-b/b-200"}},
		},
		{
			name:   "never takes a quota below its min: team-b borrows one cpu, the pod needs two",
			quotas: twoQuotas,
			pods: reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-300", "team-b/b-500", "team-b/b-700"},
				[]string{"team-b/b-200", "team-c/c-10", "team-c/c-20", "free/f-1"}),
			pod:         reclaimPod("team-a", "a", "", 0, 2).Obj(),
			want:        reclaimOutcome{Code: fwk.Unschedulable},
			wantMessage: "below its min 4",
		},
		{
			name:   "the same cluster gives one cpu: team-b's lowest-priority pod",
			quotas: twoQuotas,
			pods: reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-300", "team-b/b-500", "team-b/b-700"},
				[]string{"team-b/b-200", "team-c/c-10", "team-c/c-20", "free/f-1"}),
			pod:  reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n1", Deleted: []string{"team-b/b-100"}},
		},
		{
			name:   "two quotas that each borrow one cpu give one each",
			quotas: twoQuotas,
			pods: reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-200", "team-c/c-300", "team-c/c-900"},
				[]string{"team-b/b-500", "team-b/b-600", "team-b/b-700", "team-c/c-800"}),
			pod:  reclaimPod("team-a", "a", "", 0, 2).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n1", Deleted: []string{"team-b/b-100", "team-c/c-300"}},
		},
		{
			name:   "of the same priority: never its own namespace, a quota under its min, or a namespace without a quota",
			quotas: []*quota.Quota{reclaimQuota("team-a", 4, 8), reclaimQuota("team-c", 4, 8)},
			pods: reclaimCluster(
				[]string{"team-a/a-own-1", "team-c/c-10", "free/f-5", "free/f-6"},
				[]string{"team-c/c-20", "free/f-7", "free/f-8", "free/f-9"}),
			pod:         reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want:        reclaimOutcome{Code: fwk.Unschedulable},
			wantMessage: ErrReasonNoBorrowers,
		},
		{
			name:   "priority preemption in its own namespace and of namespaces without a quota, never of a quota under its min",
			quotas: []*quota.Quota{reclaimQuota("team-a", 4, 8), reclaimQuota("team-c", 4, 8)},
			pods: reclaimCluster(
				[]string{"team-a/a-own-1", "team-c/c-10", "team-c/c-11", "team-c/c-12"},
				[]string{"team-c/c-20", "team-c/c-21", "team-c/c-22", "free/f-7"}),
			pod:  reclaimPod("team-a", "a", "", 1000, 1).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n1", Deleted: []string{"team-a/a-own-1"}},
		},
		{
			name:   "terminating pods of a borrowing quota already count as gone",
			quotas: twoQuotas,
			pods: append(reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-200", "team-b/b-300", "team-b/b-400"},
				[]string{"team-b/b-600", "team-c/c-10", "team-c/c-20"}),
				reclaimPod("team-b", "b-500", "n2", 500, 1).Terminating().Obj()),
			// Counted as used, team-b would give b-100 and b-200 on n1
			// (down to 3 in truth); gone, it gives only b-600 on n2, which
			// frees enough there with b-500's room.
			pod:  reclaimPod("team-a", "a", "", 0, 2).Obj(),
			want: reclaimOutcome{Code: fwk.Success, Nominated: "n2", Deleted: []string{"team-b/b-600"}},
		},
		{
			name:   "pods reclaimed a moment ago count as gone before the informer shows them terminating",
			quotas: twoQuotas,
			pods: reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-200", "team-b/b-300", "team-b/b-400"},
				[]string{"team-b/b-500", "team-b/b-600", "team-c/c-10", "team-c/c-20"}),
			reclaimed: []string{"team-b/b-500"},
			pod:       reclaimPod("team-a", "a", "", 0, 2).Obj(),
			want:      reclaimOutcome{Code: fwk.Success, Nominated: "n2", Deleted: []string{"team-b/b-600"}},
		},
		{
			name:   "the room of a reclaimed pod goes to the pod nominated there; it is not taken twice",
			quotas: []*quota.Quota{reclaimQuota("team-a", 4, 8), reclaimQuota("team-b", 2, 8), reclaimQuota("team-c", 4, 8)},
			pods: reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-300", "team-b/b-500", "team-b/b-700"},
				[]string{"team-c/c-10", "team-c/c-20", "free/f-1", "free/f-2"}),
			reclaimed: []string{"team-b/b-100"},
			nominated: []*v1.Pod{reclaimPod("team-a", "a-first", "", 0, 1).NominatedNodeName("n1").Obj()},
			pod:       reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want:      reclaimOutcome{Code: fwk.Success, Nominated: "n1", Deleted: []string{"team-b/b-300"}},
		},
		{
			name:   "nobody nominated there: the pod waits for the reclaimed pod's room",
			quotas: []*quota.Quota{reclaimQuota("team-a", 4, 8), reclaimQuota("team-b", 2, 8), reclaimQuota("team-c", 4, 8)},
			pods: reclaimCluster(
				[]string{"team-b/b-100", "team-b/b-300", "team-b/b-500", "team-b/b-700"},
				[]string{"team-c/c-10", "team-c/c-20", "free/f-1", "free/f-2"}),
			reclaimed:   []string{"team-b/b-100"},
			pod:         reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want:        reclaimOutcome{Code: fwk.Unschedulable},
			wantMessage: ErrReasonFitsWithoutVictims,
		},
		{
			name:        "a quota that would go beyond its min with the pod does not reclaim",
			quotas:      []*quota.Quota{reclaimQuota("team-a", 4, 8), reclaimQuota("team-b", 2, 8)},
			pods:        reclaimCluster([]string{"team-a/a-1", "team-a/a-2", "team-a/a-3", "team-a/a-4"}, []string{"team-b/b-1", "team-b/b-2", "team-b/b-3", "team-b/b-4"}),
			pod:         reclaimPod("team-a", "a", "", 0, 1).Obj(),
			want:        reclaimOutcome{Code: fwk.Unschedulable},
			wantMessage: fmt.Sprintf(ErrReasonNotUnderMinFmt, "team-a/q"),
		},
		{
			name:   "nominated pods of the namespace hold part of its min",
			quotas: twoQuotas, pods: borrowed,
			nominated: []*v1.Pod{
				reclaimPod("team-a", "a-n1", "", 0, 1).NominatedNodeName("n1").Obj(),
				reclaimPod("team-a", "a-n2", "", 0, 1).NominatedNodeName("n2").Obj(),
				reclaimPod("team-a", "a-n3", "", 0, 1).NominatedNodeName("n2").Obj(),
			},
			pod:         reclaimPod("team-a", "a", "", 0, 2).Obj(),
			want:        reclaimOutcome{Code: fwk.Unschedulable},
			wantMessage: fmt.Sprintf(ErrReasonNotUnderMinFmt, "team-a/q"),
		},
		{
			name:   "a pod without a quota is left to DefaultPreemption",
			quotas: twoQuotas, pods: borrowed,
			pod:  reclaimPod("free", "f", "", 1000, 1).Obj(),
			want: reclaimOutcome{Code: fwk.Unschedulable, NilResult: true},
		},
		{
			name:   "preemptionPolicy Never",
			quotas: twoQuotas, pods: borrowed,
			pod:         reclaimPod("team-a", "a", "", 0, 1).PreemptionPolicy(v1.PreemptNever).Obj(),
			want:        reclaimOutcome{Code: fwk.Unschedulable, NilResult: true},
			wantMessage: "preemptionPolicy=Never",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, msg := runReclaim(t, tt.quotas, tt.pods, tt.nominated, tt.reclaimed, tt.pdbs, tt.pod)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("reclaim (-want,+got):\n%s\nmessage: %s", diff, msg)
			}
			if !strings.Contains(msg, tt.wantMessage) {
				t.Errorf("message %q does not contain %q", msg, tt.wantMessage)
			}
		})
	}
}

// runReclaim runs PreFilter (NodeResourcesFit and BatchQuota) and then
// BatchQuota's PostFilter for pod, on a framework whose Filter is
// NodeResourcesFit, and reports what was preempted.
func runReclaim(t *testing.T, quotas []*quota.Quota, pods, nominated []*v1.Pod, reclaimed []string, pdbs []*policy.PodDisruptionBudget, pod *v1.Pod) (reclaimOutcome, string) {
	t.Helper()
	schedmetrics.Register() // the scheduling queue and the evaluator record metrics
	logger, ctx := ktesting.NewTestContext(t)
	var objs []runtime.Object
	for _, p := range append(append([]*v1.Pod{pod}, pods...), nominated...) {
		objs = append(objs, p)
	}
	cs := clientsetfake.NewClientset(objs...)
	factory := informers.NewSharedInformerFactory(cs, 0)
	podInformer := factory.Core().V1().Pods().Informer()
	for _, o := range objs {
		if err := podInformer.GetStore().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	pdbInformer := factory.Policy().V1().PodDisruptionBudgets().Informer()
	for _, pdb := range pdbs {
		if err := pdbInformer.GetStore().Add(pdb); err != nil {
			t.Fatal(err)
		}
	}
	byName := func(a, b fwk.QueuedPodInfo) bool { return a.GetPodInfo().GetPod().Name < b.GetPodInfo().GetPod().Name }
	nominator := internalqueue.NewSchedulingQueue(byName, factory)
	for _, p := range nominated {
		// Queued, as pods waiting for their victims are: the nominator only
		// keeps references and reads the pods back from the queue.
		nominator.Add(logger, p)
	}
	nodes := []*v1.Node{
		st.MakeNode().Name("n1").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "4"}).Obj(),
		st.MakeNode().Name("n2").Capacity(map[v1.ResourceName]string{v1.ResourceCPU: "4"}).Obj(),
	}
	f, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		tf.RegisterPluginAsExtensions(noderesources.Name, frameworkruntime.FactoryAdapter(feature.Features{}, noderesources.NewFit), "Filter", "PreFilter"),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, "",
		frameworkruntime.WithClientSet(cs),
		frameworkruntime.WithEventRecorder(&events.FakeRecorder{}),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithPodNominator(nominator),
		frameworkruntime.WithSnapshotSharedLister(internalcache.NewSnapshot(pods, nodes)),
		frameworkruntime.WithLogger(logger),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
	)
	if err != nil {
		t.Fatal(err)
	}
	pl := &BatchQuota{
		logger:  logger,
		handle:  f,
		cache:   quota.NewCache(),
		pods:    factory.Core().V1().Pods().Lister(),
		blocked: gang.NewBlocked(),
		gangs:   gang.NewTracker(),
		early:   gang.NewEarly(),
		warned:  gang.NewSet(),

		reclaimedPods: quota.NewReclaimed(time.Minute),
	}
	for _, q := range quotas {
		pl.cache.SetQuota(q)
	}
	for _, p := range pods {
		pl.cache.AddPod(p.UID, p.Namespace, podRequests(p), nil)
	}
	for _, uid := range reclaimed {
		pl.reclaimed().Add(types.UID(uid), time.Now())
	}

	// As the framework does: every PreFilter runs when one says Unschedulable.
	state := framework.NewCycleState()
	f.RunPreFilterPlugins(ctx, state, pod)
	pl.PreFilter(ctx, state, pod, nil)
	m := framework.NewDefaultNodeToStatus()
	for _, n := range nodes {
		m.Set(n.Name, fwk.NewStatus(fwk.Unschedulable, "Insufficient cpu"))
	}
	result, status := pl.PostFilter(ctx, state, pod, m)

	out := reclaimOutcome{Code: status.Code(), NilResult: result == nil}
	if result != nil && result.NominatingInfo != nil {
		out.Nominated = result.NominatingInfo.NominatedNodeName
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() == "delete" && a.GetResource().Resource == "pods" {
			d := a.(interface{ GetName() string })
			out.Deleted = append(out.Deleted, a.GetNamespace()+"/"+d.GetName())
		}
	}
	sort.Strings(out.Deleted)
	return out, status.Message()
}
