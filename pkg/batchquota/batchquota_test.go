package batchquota

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	clientsetfake "k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/defaultbinder"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/queuesort"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	tf "k8s.io/kubernetes/pkg/scheduler/testing/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"

	"locus.dev/locus/apis/config"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/leader"
)

// Helpers of the adapter tests are prefixed bq: reclaim_test.go shares the package.

// bqNow is the plugin's clock in the adapter tests.
var bqNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// bqDefaultTimeout is args.DefaultScheduleTimeoutSeconds in the adapter tests.
const bqDefaultTimeout = 60

// bqSetup is the cluster a test plugin starts with.
type bqSetup struct {
	pods   []*v1.Pod // in the pod lister; bound, non-terminal ones are counted as onPod does
	groups []*schedv1alpha1.PodGroup
	quotas []*schedv1alpha1.ElasticQuota // tracked as onQuota does
	// notSynced makes the plugin's informers report that they have not synced.
	notSynced bool
}

// bqEnv is a BatchQuota built without an API server, on fake clientsets.
type bqEnv struct {
	ctx      context.Context
	cs       *clientsetfake.Clientset
	pl       *BatchQuota
	fw       framework.Framework
	recorder *events.FakeRecorder
	now      time.Time // the plugin's clock
	// activated receives what the plugin asks the framework to activate.
	activated chan map[string]*v1.Pod
}

// Activate makes bqEnv the framework's PodActivator.
func (e *bqEnv) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	select {
	case e.activated <- pods:
	default:
	}
}

// activations drains the keys of the pods activated so far.
func (e *bqEnv) activations() []string {
	var out []string
	for {
		select {
		case pods := <-e.activated:
			for k := range pods {
				out = append(out, k)
			}
		default:
			sort.Strings(out)
			return out
		}
	}
}

// events drains the events recorded so far.
func (e *bqEnv) events() []string {
	var out []string
	for {
		select {
		case ev := <-e.recorder.Events:
			out = append(out, ev)
		default:
			return out
		}
	}
}

// newBQ builds the plugin as New does, but on fake clientsets. The plugin is
// the framework's Permit plugin, so that pods can wait in Permit.
func newBQ(t testing.TB, s bqSetup) *bqEnv {
	t.Helper()
	schedmetrics.Register() // the framework's Permit records metrics
	logger, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)

	var podObjs []runtime.Object
	for _, p := range s.pods {
		// The scheduler's pod informer leaves terminal pods out.
		if p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			podObjs = append(podObjs, p)
		}
	}
	cs := clientsetfake.NewClientset(podObjs...)
	factory := informers.NewSharedInformerFactory(cs, 0)
	var schedObjs []runtime.Object
	for _, pg := range s.groups {
		schedObjs = append(schedObjs, pg)
	}
	for _, eq := range s.quotas {
		schedObjs = append(schedObjs, eq)
	}
	scs := schedfake.NewClientset(schedObjs...)

	env := &bqEnv{
		ctx:       ctx,
		recorder:  events.NewFakeRecorder(100),
		now:       bqNow,
		activated: make(chan map[string]*v1.Pod, 10),
	}
	args := config.BatchQuotaArgs{DefaultScheduleTimeoutSeconds: bqDefaultTimeout, StatusUpdateInterval: metav1.Duration{Duration: time.Hour}}
	var pl *BatchQuota
	fw, err := tf.NewFramework(ctx, []tf.RegisterPluginFunc{
		tf.RegisterQueueSortPlugin(queuesort.Name, queuesort.New),
		// The plugin as New builds it, on the fake clients.
		tf.RegisterPermitPlugin(Name, func(ctx context.Context, _ runtime.Object, h framework.Handle) (framework.Plugin, error) {
			var err error
			pl, err = newPlugin(ctx, args, h, scs, leader.Always(), func() time.Time { return env.now })
			return pl, err
		}),
		tf.RegisterBindPlugin(defaultbinder.Name, defaultbinder.New),
	}, "",
		frameworkruntime.WithClientSet(cs),
		frameworkruntime.WithEventRecorder(env.recorder),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		frameworkruntime.WithPodActivator(env),
		frameworkruntime.WithLogger(logger),
	)
	if err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		factory.Shutdown()
	})
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	if !cache.WaitForCacheSync(ctx.Done(), pl.HasSynced) {
		t.Fatal("the plugin's handlers did not sync")
	}
	if s.notSynced {
		pl.synced = append(pl.synced, func() bool { return false })
	}
	env.pl, env.fw, env.cs = pl, fw, cs
	return env
}

// gangOf is the pod's gang as PreFilter finds it.
func (e *bqEnv) gangOf(p *v1.Pod) *quota.Gang {
	g, _ := e.pl.gangOf(p)
	if g == nil {
		return nil
	}
	pg, _ := e.pl.groups.PodGroups(p.Namespace).Get(g.Name)
	return e.pl.gangFor(pg, e.pl.gangPods(p.Namespace, pg))
}

// create adds a pod to the cluster and waits until the plugin's informer
// holds it (and, if bound, has counted it).
func (e *bqEnv) create(t *testing.T, p *v1.Pod) {
	t.Helper()
	if _, err := e.cs.CoreV1().Pods(p.Namespace).Create(e.ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(e.ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, err := e.pl.pods.Pods(p.Namespace).Get(p.Name)
		return err == nil && (p.Spec.NodeName == "" || e.pl.cache.HasPod(p.UID)), nil
	}); err != nil {
		t.Fatalf("pod %s/%s never reached the plugin: %v", p.Namespace, p.Name, err)
	}
}

// remove deletes a pod from the cluster and waits until the plugin uncounted it.
func (e *bqEnv) remove(t *testing.T, p *v1.Pod) {
	t.Helper()
	if err := e.cs.CoreV1().Pods(p.Namespace).Delete(e.ctx, p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(e.ctx, time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return !e.pl.cache.HasPod(p.UID), nil
	}); err != nil {
		t.Fatalf("pod %s/%s still counted: %v", p.Namespace, p.Name, err)
	}
}

// attempt runs PreFilter and, for a rejected pod, what PostFilter records
// of it, as a scheduling cycle does.
func (e *bqEnv) attempt(pod *v1.Pod) *fwk.Status {
	state := framework.NewCycleState()
	_, st := e.pl.PreFilter(e.ctx, state, pod, nil)
	if s, err := getState(state); err == nil && st.IsRejected() {
		e.pl.recordWaiting(pod, s)
	}
	return st
}

// preFiltered runs PreFilter for a pod that must pass it (Success, or Skip
// where no quota applies) and returns the cycle state.
func (e *bqEnv) preFiltered(t *testing.T, pod *v1.Pod) *framework.CycleState {
	t.Helper()
	state := framework.NewCycleState()
	if _, s := e.pl.PreFilter(e.ctx, state, pod, nil); !s.IsSuccess() && !s.IsSkip() {
		t.Fatalf("PreFilter(%s): %v", pod.Name, s)
	}
	return state
}

// bqPod is a pod requesting cores cpu; its UID is ns/name.
func bqPod(ns, name string, cores int64) *st.PodWrapper {
	return st.MakePod().Namespace(ns).Name(name).UID(ns + "/" + name).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: resource.NewQuantity(cores, resource.DecimalSI).String()})
}

// bqMember is a pod of gang.
func bqMember(ns, name, gang string, cores int64) *st.PodWrapper {
	return bqPod(ns, name, cores).Label(schedv1alpha1.PodGroupLabel, gang)
}

// bqGroup is a PodGroup created an hour before bqNow.
func bqGroup(ns, name string, minMember int32, timeoutSeconds *int32) *schedv1alpha1.PodGroup {
	return &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("pg-" + ns + "/" + name),
			CreationTimestamp: metav1.NewTime(bqNow.Add(-time.Hour))},
		Spec: schedv1alpha1.PodGroupSpec{MinMember: minMember, ScheduleTimeoutSeconds: timeoutSeconds},
	}
}

// bqEQ is an ElasticQuota "q" on cpu; an empty min or max is left out.
func bqEQ(ns, min, max string) *schedv1alpha1.ElasticQuota {
	eq := &schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "q"}}
	if min != "" {
		eq.Spec.Min = v1.ResourceList{v1.ResourceCPU: resource.MustParse(min)}
	}
	if max != "" {
		eq.Spec.Max = v1.ResourceList{v1.ResourceCPU: resource.MustParse(max)}
	}
	return eq
}

func int32Ptr(i int32) *int32 { return &i }

func TestPreFilter(t *testing.T) {
	const ns, other = "team-a", "team-b"
	tests := []struct {
		name    string
		setup   bqSetup
		counted []*v1.Pod            // reserved in the cache before PreFilter
		before  []*v1.Pod            // pass PreFilter and Reserve first; their activations and events are dropped
		backoff map[string]time.Time // gang key -> until
		pod     *v1.Pod
		// toActivate: a PodsToActivate is in the cycle state, as the framework puts it.
		toActivate    bool
		want          *fwk.Status
		wantActivated []string
		wantEvents    []string
	}{
		{
			name:  "informers not synced: wait",
			setup: bqSetup{notSynced: true, pods: []*v1.Pod{bqPod(ns, "p", 1).Obj()}},
			pod:   bqPod(ns, "p", 1).Obj(),
			want:  fwk.NewStatus(fwk.Unschedulable, ErrReasonNotSynced),
		},
		{
			name:  "namespace without quota is not limited: nothing for Filter to check",
			setup: bqSetup{quotas: []*schedv1alpha1.ElasticQuota{bqEQ(other, "1", "1")}},
			pod:   bqPod(ns, "p", 100).Obj(),
			want:  fwk.NewStatus(fwk.Skip),
		},
		{
			name: "within min",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "8")},
				pods:   []*v1.Pod{bqPod(ns, "bound", 2).Node("n1").Obj()},
			},
			pod: bqPod(ns, "p", 2).Obj(),
		},
		{
			name: "over max: the message names the quota and the numbers",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4"), bqEQ(other, "10", "10")},
				pods:   []*v1.Pod{bqPod(ns, "bound", 3).Node("n1").Obj()},
			},
			pod:        bqPod(ns, "p", 2).Obj(),
			want:       fwk.NewStatus(fwk.Unschedulable, "quota team-a/q: cpu would be 5 (used 3 + request 2), over max 4"),
			wantEvents: []string{"Warning QuotaExceeded quota team-a/q: cpu would be 5 (used 3 + request 2), over max 4"},
		},
		{
			name: "pods of another scheduler and reserved pods both count",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")},
				pods:   []*v1.Pod{bqPod(ns, "bound", 1).Node("n1").Obj()},
			},
			counted:    []*v1.Pod{bqPod(ns, "reserved", 2).Obj()},
			pod:        bqPod(ns, "p", 2).Obj(),
			want:       fwk.NewStatus(fwk.Unschedulable, "quota team-a/q: cpu would be 5 (used 3 + request 2), over max 4"),
			wantEvents: []string{"Warning QuotaExceeded quota team-a/q: cpu would be 5 (used 3 + request 2), over max 4"},
		},
		{
			name: "beyond min, borrowing the unused min of another quota",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "2", "8"), bqEQ(other, "4", "8")},
				pods:   []*v1.Pod{bqPod(ns, "bound", 2).Node("n1").Obj()},
			},
			pod: bqPod(ns, "p", 2).Obj(),
		},
		{
			name: "beyond min with too little left to borrow",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "2", "8"), bqEQ(other, "4", "8")},
				pods:   []*v1.Pod{bqPod(ns, "bound", 2).Node("n1").Obj(), bqPod(other, "bound", 3).Node("n1").Obj()},
			},
			pod:        bqPod(ns, "p", 2).Obj(),
			want:       fwk.NewStatus(fwk.Unschedulable, "quota team-a/q: cpu would be 4 (used 2 + request 2), over min 2, and the cluster's unused guaranteed cpu is 1"),
			wantEvents: []string{"Warning QuotaExceeded quota team-a/q: cpu would be 4 (used 2 + request 2), over min 2, and the cluster's unused guaranteed cpu is 1"},
		},
		{
			name:  "a resource the quota does not name is not limited",
			setup: bqSetup{quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")}},
			pod: st.MakePod().Namespace(ns).Name("p").UID("p").
				Req(map[v1.ResourceName]string{v1.ResourceCPU: "1", v1.ResourceMemory: "100Gi"}).Obj(),
		},
		{
			name: "gang with fewer pods than minMember",
			setup: bqSetup{
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, nil)},
				pods:   []*v1.Pod{bqMember(ns, "m1", "train", 1).Obj(), bqMember(ns, "m2", "train", 1).Obj()},
			},
			pod:  bqMember(ns, "m1", "train", 1).Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gang train has 2 of its minMember 3 pods"),
		},
		{
			name: "gang: finished, deleting, scheduling-gated and other namespaces' pods are not members",
			setup: bqSetup{
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, nil), bqGroup(other, "train", 3, nil)},
				pods: []*v1.Pod{
					bqMember(ns, "m1", "train", 1).Obj(),
					bqMember(ns, "m2", "train", 1).Obj(),
					bqMember(ns, "gated", "train", 1).SchedulingGates([]string{"example.com/wait"}).Obj(),
					bqMember(ns, "done", "train", 1).Node("n1").Phase(v1.PodSucceeded).Obj(),
					bqMember(ns, "failed", "train", 1).Node("n1").Phase(v1.PodFailed).Obj(),
					bqMember(ns, "deleting", "train", 1).Terminating().Obj(),
					bqMember(other, "m3", "train", 1).Obj(),
					bqPod(ns, "unlabelled", 1).Obj(),
				},
			},
			pod:  bqMember(ns, "m1", "train", 1).Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gang train has 2 of its minMember 3 pods"),
		},
		{
			name: "complete gang that fits: the first member activates its unplaced siblings",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "6", "6")},
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, nil)},
				pods: []*v1.Pod{
					bqMember(ns, "m1", "train", 2).Obj(),
					bqMember(ns, "m2", "train", 2).Obj(),
					bqMember(ns, "m3", "train", 2).Obj(),
					bqMember(ns, "m4", "train", 2).Node("n1").Phase(v1.PodSucceeded).Obj(),
					bqMember(other, "m5", "train", 2).Obj(),
				},
			},
			pod:           bqMember(ns, "m1", "train", 2).Obj(),
			toActivate:    true,
			wantActivated: []string{"team-a/m2", "team-a/m3"},
		},
		{
			name: "gang that is already assembling activates nobody",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "6", "6")},
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, nil)},
				pods: []*v1.Pod{
					bqMember(ns, "m1", "train", 2).Obj(),
					bqMember(ns, "m2", "train", 2).Obj(),
					bqMember(ns, "m3", "train", 2).Obj(),
				},
			},
			before:     []*v1.Pod{bqMember(ns, "m2", "train", 2).Obj()},
			pod:        bqMember(ns, "m1", "train", 2).Obj(),
			toActivate: true,
		},
		{
			name: "the first member needs room for the whole gang",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "5", "5")},
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, nil)},
				pods: []*v1.Pod{
					bqMember(ns, "m1", "train", 2).Obj(),
					bqMember(ns, "m2", "train", 2).Obj(),
					bqMember(ns, "m3", "train", 2).Obj(),
				},
			},
			pod: bqMember(ns, "m1", "train", 2).Obj(),
			// PreFilter activates nothing (a sibling's creation requeues the
			// others through the Pod/Add hint).
			toActivate: true,
			want:       fwk.NewStatus(fwk.Unschedulable, "quota team-a/q: cpu would be 6 (used 0 + gang train needs 6), over max 5"),
			wantEvents: []string{"Warning QuotaExceeded quota team-a/q: cpu would be 6 (used 0 + gang train needs 6), over max 5"},
		},
		{
			name: "gang in backoff after a release",
			setup: bqSetup{
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 1, nil)},
				pods:   []*v1.Pod{bqMember(ns, "m1", "train", 1).Obj()},
			},
			backoff: map[string]time.Time{"team-a/train": bqNow.Add(30 * time.Second)},
			pod:     bqMember(ns, "m1", "train", 1).Obj(),
			want:    fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "gang train did not assemble in time; it tries again after 2025-03-01T12:00:30Z"),
		},
		{
			name: "gang whose backoff has ended",
			setup: bqSetup{
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 1, nil)},
				pods:   []*v1.Pod{bqMember(ns, "m1", "train", 1).Obj()},
			},
			backoff: map[string]time.Time{"team-a/train": bqNow},
			pod:     bqMember(ns, "m1", "train", 1).Obj(),
			want:    fwk.NewStatus(fwk.Skip),
		},
		{
			name: "backoff of a gang of the same name in another namespace does not apply",
			setup: bqSetup{
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 1, nil)},
				pods:   []*v1.Pod{bqMember(ns, "m1", "train", 1).Obj()},
			},
			backoff: map[string]time.Time{"team-b/train": bqNow.Add(time.Minute)},
			pod:     bqMember(ns, "m1", "train", 1).Obj(),
			want:    fwk.NewStatus(fwk.Skip),
		},
		{
			// Members bind only once minMember are reserved, so a bound member
			// belongs to a gang that was complete; its finished siblings have
			// left the scheduler's pod informer. Nothing is held for them.
			name: "rebuilt from the pods: a gang with finished members holds no quota for them",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")},
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 3, nil)},
				pods:   []*v1.Pod{bqMember(ns, "m1", "train", 1).Node("n1").Phase(v1.PodRunning).Obj()},
			},
			pod: bqPod(ns, "p", 3).Obj(),
		},
		{
			name: "label naming a PodGroup that does not exist: the pod waits and is reported, not placed alone",
			setup: bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")},
				pods:   []*v1.Pod{bqMember(ns, "m1", "missing", 3).Obj()},
			},
			pod:        bqMember(ns, "m1", "missing", 3).Obj(),
			want:       fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "PodGroup team-a/missing not found: the pod waits for it rather than being placed without its gang"),
			wantEvents: []string{"Warning PodGroupNotFound PodGroup team-a/missing not found: the pod waits for it rather than being placed without its gang"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newBQ(t, tt.setup)
			for _, p := range tt.counted {
				env.create(t, p) // reserved pods exist, pending
				env.pl.cache.AddPod(p.UID, p.Namespace, podRequests(p), env.gangOf(p))
			}
			for _, p := range tt.before {
				if s := env.pl.Reserve(env.ctx, env.preFiltered(t, p), p, "n1"); !s.IsSuccess() {
					t.Fatalf("Reserve(%s): %v", p.Name, s)
				}
				env.activations()
				env.events()
			}
			for key, until := range tt.backoff {
				env.pl.gangs.BackOff(key, until)
			}
			state := framework.NewCycleState()
			var toActivate *framework.PodsToActivate
			if tt.toActivate {
				toActivate = framework.NewPodsToActivate()
				state.Write(framework.PodsToActivateKey, toActivate)
			}
			result, got := env.pl.PreFilter(env.ctx, state, tt.pod, nil)
			if result != nil {
				t.Errorf("PreFilter returned result %+v, want nil", result)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PreFilter status (-want,+got):\n%s", diff)
			}
			// As the framework goes on: PostFilter records why a rejected
			// pod waits; an admitted one is reserved.
			if s, err := getState(state); err == nil && got.IsRejected() {
				env.pl.recordWaiting(tt.pod, s)
			} else if got.IsSuccess() {
				env.pl.Reserve(env.ctx, state, tt.pod, "n1")
			}
			if toActivate != nil {
				// Either route brings the siblings back: PodsToActivate
				// (when the cycle succeeds) or the framework's Activate.
				activated := env.activations()
				for k := range toActivate.Map {
					activated = append(activated, k)
				}
				activated = sets.List(sets.New(activated...))
				if diff := cmp.Diff(tt.wantActivated, activated, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("pods to activate (-want,+got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(tt.wantEvents, env.events()); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestPreFilterState checks what PreFilter leaves for Reserve and Permit.
func TestPreFilterState(t *testing.T) {
	const ns = "team-a"
	tests := []struct {
		name string
		pod  *v1.Pod
		want stateData
	}{
		{
			name: "pod on its own",
			pod:  bqPod(ns, "p", 2).Obj(),
			want: stateData{req: quota.Resources{v1.ResourceCPU: 2000}},
		},
		{
			name: "gang member",
			pod:  bqMember(ns, "m1", "train", 1).Obj(),
			want: stateData{req: quota.Resources{v1.ResourceCPU: 1000}, gang: &quota.Gang{Name: "train", MinMember: 1, UID: "pg-team-a/train", Need: quota.Resources{v1.ResourceCPU: 1000}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newBQ(t, bqSetup{
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 1, nil)},
				pods:   []*v1.Pod{tt.pod},
			})
			state := env.preFiltered(t, tt.pod)
			got, err := getState(state)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *got, cmp.AllowUnexported(stateData{})); diff != "" {
				t.Errorf("state (-want,+got):\n%s", diff)
			}
		})
	}
}

// bqAttempt is a PreFilter attempt by pod; before it, when extra > 0, a pod
// "extra" of that many cores is bound in the namespace.
type bqAttempt struct {
	pod   string
	extra int64
}

// TestPreFilterRecordsQuotaExceededOnce: an event is recorded when a pod's
// reason changes, not on every attempt.
func TestPreFilterRecordsQuotaExceededOnce(t *testing.T) {
	const ns = "team-a"
	msg4 := "quota team-a/q: cpu would be 5 (used 3 + request 2), over max 4"
	msg5 := "quota team-a/q: cpu would be 6 (used 4 + request 2), over max 4"
	tests := []struct {
		name     string
		attempts []bqAttempt
		want     []string
	}{
		{
			name:     "two identical attempts",
			attempts: []bqAttempt{{"p", 0}, {"p", 0}},
			want:     []string{"Warning QuotaExceeded " + msg4},
		},
		{
			name:     "the reason changes between attempts",
			attempts: []bqAttempt{{"p", 0}, {"p", 1}, {"p", 0}},
			want:     []string{"Warning QuotaExceeded " + msg4, "Warning QuotaExceeded " + msg5},
		},
		{
			name:     "two pods with the same reason each get one",
			attempts: []bqAttempt{{"p", 0}, {"q", 0}, {"p", 0}, {"q", 0}},
			want:     []string{"Warning QuotaExceeded " + msg4, "Warning QuotaExceeded " + msg4},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newBQ(t, bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")},
				pods:   []*v1.Pod{bqPod(ns, "bound", 3).Node("n1").Obj()},
			})
			for i, a := range tt.attempts {
				if a.extra > 0 {
					env.create(t, bqPod(ns, fmt.Sprintf("extra-%d", i), a.extra).Node("n1").Obj())
				}
				pod := bqPod(ns, a.pod, 2).Obj()
				if s := env.attempt(pod); s.Code() != fwk.Unschedulable {
					t.Fatalf("attempt %d: PreFilter = %v, want Unschedulable", i, s)
				}
			}
			if diff := cmp.Diff(tt.want, env.events()); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestReserveUnreserve(t *testing.T) {
	const ns = "team-a"
	p := bqPod(ns, "p", 2).Obj()
	m1 := bqMember(ns, "m1", "train", 1).Obj()
	m2 := bqMember(ns, "m2", "train", 1).Obj()
	type op struct {
		unreserve bool
		pod       *v1.Pod
	}
	tests := []struct {
		name        string
		ops         []op
		wantUsed    quota.Resources // with 1 cpu bound before
		wantHeld    quota.Resources
		wantCounted []string // pods counted in the cache
		wantMembers int      // of gang train
		wantDone    bool     // gang train complete
	}{
		{
			name:        "reserve counts the pod",
			ops:         []op{{pod: p}},
			wantUsed:    quota.Resources{v1.ResourceCPU: 3000},
			wantCounted: []string{"p"},
		},
		{
			name:        "reserve twice counts once",
			ops:         []op{{pod: p}, {pod: p}},
			wantUsed:    quota.Resources{v1.ResourceCPU: 3000},
			wantCounted: []string{"p"},
		},
		{
			name:     "unreserve undoes reserve",
			ops:      []op{{pod: p}, {unreserve: true, pod: p}},
			wantUsed: quota.Resources{v1.ResourceCPU: 1000},
		},
		{
			name:     "unreserve twice subtracts once",
			ops:      []op{{pod: p}, {unreserve: true, pod: p}, {unreserve: true, pod: p}},
			wantUsed: quota.Resources{v1.ResourceCPU: 1000},
		},
		{
			name:     "unreserve of a pod never reserved changes nothing",
			ops:      []op{{unreserve: true, pod: p}},
			wantUsed: quota.Resources{v1.ResourceCPU: 1000},
		},
		{
			name:        "a gang member reserved twice counts once; the gang holds its sibling's share",
			ops:         []op{{pod: m1}, {pod: m1}},
			wantUsed:    quota.Resources{v1.ResourceCPU: 2000},
			wantHeld:    quota.Resources{v1.ResourceCPU: 1000},
			wantCounted: []string{"m1"},
			wantMembers: 1,
		},
		{
			name:        "gang complete",
			ops:         []op{{pod: m1}, {pod: m2}, {pod: m2}},
			wantUsed:    quota.Resources{v1.ResourceCPU: 3000},
			wantCounted: []string{"m1", "m2"},
			wantMembers: 2,
			wantDone:    true,
		},
		{
			name:     "gang released: its hold goes too",
			ops:      []op{{pod: m1}, {unreserve: true, pod: m1}, {unreserve: true, pod: m1}},
			wantUsed: quota.Resources{v1.ResourceCPU: 1000},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newBQ(t, bqSetup{
				quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "10", "10")},
				groups: []*schedv1alpha1.PodGroup{bqGroup(ns, "train", 2, nil)},
				pods:   []*v1.Pod{bqPod(ns, "bound", 1).Node("n1").Obj(), p, m1, m2},
			})
			states := map[string]*framework.CycleState{}
			for _, o := range tt.ops {
				state := states[o.pod.Name]
				if state == nil {
					state = env.preFiltered(t, o.pod)
					states[o.pod.Name] = state
				}
				if o.unreserve {
					env.pl.Unreserve(env.ctx, state, o.pod, "n1")
				} else if s := env.pl.Reserve(env.ctx, state, o.pod, "n1"); !s.IsSuccess() {
					t.Fatalf("Reserve(%s) = %v", o.pod.Name, s)
				}
			}
			got, _ := env.pl.cache.Get(ns)
			if diff := cmp.Diff(tt.wantUsed, got.Used, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("used (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantHeld, got.Held, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("held (-want,+got):\n%s", diff)
			}
			var counted []string
			for _, pod := range []*v1.Pod{p, m1, m2} {
				if env.pl.cache.HasPod(pod.UID) {
					counted = append(counted, pod.Name)
				}
			}
			if diff := cmp.Diff(tt.wantCounted, counted); diff != "" {
				t.Errorf("counted pods (-want,+got):\n%s", diff)
			}
			members, done := env.pl.cache.GangMembers(ns, "train")
			if members != tt.wantMembers || done != tt.wantDone {
				t.Errorf("GangMembers = %d, %v; want %d, %v", members, done, tt.wantMembers, tt.wantDone)
			}
		})
	}
}

func TestReserveWithoutPreFilterState(t *testing.T) {
	env := newBQ(t, bqSetup{})
	pod := bqPod("team-a", "p", 1).Obj()
	if got := env.pl.Reserve(env.ctx, framework.NewCycleState(), pod, "n1"); got.Code() != fwk.Error {
		t.Errorf("Reserve without PreFilter state = %v, want an Error status", got)
	}
	if env.pl.cache.HasPod(pod.UID) {
		t.Errorf("Reserve without PreFilter state counted the pod")
	}
}

// TestReserveForgetsQuotaReason: once a pod is reserved, the next rejection
// of it is news again.
func TestReserveForgetsQuotaReason(t *testing.T) {
	const ns = "team-a"
	env := newBQ(t, bqSetup{quotas: []*schedv1alpha1.ElasticQuota{bqEQ(ns, "4", "4")}})
	pod := bqPod(ns, "p", 2).Obj()
	blocker := bqPod(ns, "blocker", 3).Node("n1").Obj()
	env.create(t, blocker)
	if s := env.attempt(pod); s.Code() != fwk.Unschedulable {
		t.Fatalf("PreFilter = %v, want Unschedulable", s)
	}
	env.remove(t, blocker)
	env.pl.Reserve(env.ctx, env.preFiltered(t, pod), pod, "n1")
	env.pl.Unreserve(env.ctx, env.preFiltered(t, pod), pod, "n1")
	env.create(t, bqPod(ns, "blocker", 3).Node("n1").Obj())
	if s := env.attempt(pod); s.Code() != fwk.Unschedulable {
		t.Fatalf("PreFilter = %v, want Unschedulable", s)
	}
	msg := "Warning QuotaExceeded quota team-a/q: cpu would be 5 (used 3 + request 2), over max 4"
	if diff := cmp.Diff([]string{msg, msg}, env.events()); diff != "" {
		t.Errorf("events (-want,+got):\n%s", diff)
	}
}

func TestInvalidQuota(t *testing.T) {
	tests := []struct {
		name     string
		min, max v1.ResourceList
		want     string
	}{
		{
			name: "valid",
			min:  v1.ResourceList{v1.ResourceCPU: resource.MustParse("2"), v1.ResourceMemory: resource.MustParse("1Gi")},
			max:  v1.ResourceList{v1.ResourceCPU: resource.MustParse("4"), v1.ResourceMemory: resource.MustParse("1Gi")},
		},
		{
			name: "min without max and max without min",
			min:  v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
			max:  v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")},
		},
		{
			name: "empty",
		},
		{
			name: "negative min",
			min:  v1.ResourceList{v1.ResourceCPU: resource.MustParse("-1")},
			want: "spec.min.cpu is negative (-1)",
		},
		{
			name: "max below min",
			min:  v1.ResourceList{v1.ResourceMemory: resource.MustParse("2Gi")},
			max:  v1.ResourceList{v1.ResourceMemory: resource.MustParse("1Gi")},
			want: "spec.max.memory (1Gi) is below spec.min.memory (2Gi)",
		},
		{
			name: "negative max",
			max:  v1.ResourceList{v1.ResourceCPU: resource.MustParse("-500m")},
			want: "spec.max.cpu is negative (-500m)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eq := &schedv1alpha1.ElasticQuota{
				ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "q"},
				Spec:       schedv1alpha1.ElasticQuotaSpec{Min: tt.min, Max: tt.max},
			}
			if diff := cmp.Diff(tt.want, invalidQuota(eq)); diff != "" {
				t.Errorf("invalidQuota (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestOnQuota: an invalid quota is reported and still tracked as written.
func TestOnQuota(t *testing.T) {
	tests := []struct {
		name       string
		eq         *schedv1alpha1.ElasticQuota
		wantMax    quota.Resources
		wantEvents []string
	}{
		{
			name:    "valid",
			eq:      bqEQ("team-a", "2", "4"),
			wantMax: quota.Resources{v1.ResourceCPU: 4000},
		},
		{
			name:       "max below min",
			eq:         bqEQ("team-a", "2", "1"),
			wantMax:    quota.Resources{v1.ResourceCPU: 1000},
			wantEvents: []string{"Warning InvalidQuota spec.max.cpu (1) is below spec.min.cpu (2)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newBQ(t, bqSetup{})
			env.pl.onQuota(tt.eq)
			got, ok := env.pl.cache.Get("team-a")
			if !ok {
				t.Fatal("quota not tracked")
			}
			if diff := cmp.Diff(tt.wantMax, got.Max); diff != "" {
				t.Errorf("max (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantEvents, env.events()); diff != "" {
				t.Errorf("events (-want,+got):\n%s", diff)
			}
		})
	}
}

// TestPodGroupStatusAfterMembersFinish: the scheduler's pod informer drops
// pods that finish, so a running gang whose members start to finish must not
// look as if it were being scheduled again.
func TestPodGroupStatusAfterMembersFinish(t *testing.T) {
	const ns = "team-a"
	started := metav1.NewTime(bqNow.Add(-time.Hour))
	pg := bqGroup(ns, "train", 3, nil)
	pg.Status = schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupRunning, Running: 3, ScheduleStartTime: started}
	m1 := bqMember(ns, "m1", "train", 1).Node("n1").Phase(v1.PodRunning).Obj()
	m2 := bqMember(ns, "m2", "train", 1).Node("n1").Phase(v1.PodRunning).Obj()
	m3 := bqMember(ns, "m3", "train", 1).Node("n1").Phase(v1.PodRunning).Obj()
	// m3 succeeded: the informer deletes it (the lister never had it here).
	env := newBQ(t, bqSetup{groups: []*schedv1alpha1.PodGroup{pg}, pods: []*v1.Pod{m1, m2}})
	env.pl.onPod(m3)
	env.pl.onPodDelete(m3)

	want := schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupRunning, Running: 2, ScheduleStartTime: started}
	if diff := cmp.Diff(want, env.pl.podGroupStatus(pg, env.pl.groupPods(pg.Namespace, pg.Name))); diff != "" {
		t.Errorf("podGroupStatus (-want,+got):\n%s", diff)
	}
}

func TestPodGroupStatus(t *testing.T) {
	const ns = "team-a"
	now := bqNow.Add(1500 * time.Millisecond)
	started := metav1.NewTime(bqNow.Add(-time.Minute))
	member := func(name string) *st.PodWrapper { return bqMember(ns, name, "train", 1) }
	tests := []struct {
		name    string
		status  schedv1alpha1.PodGroupStatus // before
		pods    []*v1.Pod
		counted []*v1.Pod // reserved, not bound
		want    schedv1alpha1.PodGroupStatus
	}{
		{
			name: "no pods: Pending",
			want: schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupPending},
		},
		{
			name: "pods not yet reserved: Pending",
			pods: []*v1.Pod{member("m1").Obj(), member("m2").Obj(), member("m3").Obj()},
			want: schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupPending},
		},
		{
			name:    "a member reserved: Scheduling, since now (to the second)",
			pods:    []*v1.Pod{member("m1").Obj(), member("m2").Obj(), member("m3").Obj()},
			counted: []*v1.Pod{member("m1").Obj()},
			want: schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupScheduling,
				ScheduleStartTime: metav1.NewTime(bqNow.Add(time.Second))},
		},
		{
			name:    "fewer than minMember bound: Scheduling, start time kept",
			status:  schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupScheduling, ScheduleStartTime: started, OccupiedBy: "job-uid"},
			pods:    []*v1.Pod{member("m1").Node("n1").Phase(v1.PodRunning).Obj(), member("m2").Node("n1").Obj(), member("m3").Obj()},
			counted: []*v1.Pod{member("m3").Obj()},
			want: schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupScheduling, Running: 1,
				ScheduleStartTime: started, OccupiedBy: "job-uid"},
		},
		{
			name: "minMember bound: Scheduled",
			pods: []*v1.Pod{member("m1").Node("n1").Phase(v1.PodRunning).Obj(), member("m2").Node("n1").Obj(), member("m3").Node("n2").Obj()},
			want: schedv1alpha1.PodGroupStatus{Phase: PodGroupScheduled, Running: 1,
				ScheduleStartTime: metav1.NewTime(bqNow.Add(time.Second))},
		},
		{
			name:   "minMember running: Running",
			status: schedv1alpha1.PodGroupStatus{Phase: PodGroupScheduled, ScheduleStartTime: started},
			pods: []*v1.Pod{
				member("m1").Node("n1").Phase(v1.PodRunning).Obj(),
				member("m2").Node("n1").Phase(v1.PodRunning).Obj(),
				member("m3").Node("n2").Phase(v1.PodRunning).Obj(),
				member("m4").Node("n2").Phase(v1.PodRunning).Obj(),
				bqMember("team-b", "other", "train", 1).Node("n2").Phase(v1.PodRunning).Obj(),
			},
			want: schedv1alpha1.PodGroupStatus{Phase: schedv1alpha1.PodGroupRunning, Running: 4, ScheduleStartTime: started},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pg := bqGroup(ns, "train", 3, nil)
			pg.Status = tt.status
			env := newBQ(t, bqSetup{groups: []*schedv1alpha1.PodGroup{pg}, pods: tt.pods})
			env.now = now
			for _, p := range tt.counted {
				env.pl.cache.AddPod(p.UID, p.Namespace, podRequests(p), env.gangOf(p))
			}
			if diff := cmp.Diff(tt.want, env.pl.podGroupStatus(pg, env.pl.groupPods(pg.Namespace, pg.Name))); diff != "" {
				t.Errorf("podGroupStatus (-want,+got):\n%s", diff)
			}
		})
	}
}
