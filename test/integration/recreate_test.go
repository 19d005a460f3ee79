package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// PodGroups, ElasticQuotas and Datasets deleted and created again under the
// same names while pods are created and scheduled all along (a pod every
// 150 ms in a namespace of its own, churned; the recreated quota's
// namespace churned too), under the invariant checker:
//
//   - ElasticQuota: deleted, its namespace is unlimited (by design), so the
//     pods waiting at it bind; created again with the same max, with a
//     larger one and with a smaller one, it is in force again: no bind over
//     it (checker and samples), the pods wait until the churn brings the
//     namespace under it, and the final quota's status.used equals the
//     bound pods' requests.
//   - PodGroup: a recreated PodGroup is a new gang: the earlier run's bound
//     pods do not complete it; pods of a deleted PodGroup wait rather than
//     bind alone and bind whole once it is back; a PodGroup deleted while
//     its members wait at Permit and created again still gets its gang
//     bound whole. Every run is sampled: never partly bound at rest.
//   - Dataset: deleting it releases the pods that wait for a node near its
//     data at once; created again with other locations, the new locations
//     are the ones pods are placed by.
//
// The steady pods all bind: the scheduler keeps placing pods throughout.
func TestRecreateUnderLoad(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 8, "16")
	// A one-CPU node that holds a Dataset and is full: readers that wait
	// for it wait until their Dataset says otherwise.
	if _, err := testenv.CreateNode(ctx, e.Client, testenv.NodeSpec{Name: "cache-0", CPU: "1", Memory: "4Gi",
		Labels: map[string]string{v1.LabelTopologyZone: "zone-0"}}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"load", "rq", "gangs", "data"} {
		if err := testenv.CreateNamespace(ctx, e.Client, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	filler := testenv.NewPod(testenv.PodSpec{Namespace: "data", Name: "filler", CPU: "1"})
	filler.Spec.NodeName = "cache-0"
	if _, err := e.Client.CoreV1().Pods("data").Create(ctx, filler, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	steady := startSteadyLoad(ctx, t, e.Client, "load", 150*time.Millisecond, 40)
	t.Run("ElasticQuota", func(t *testing.T) { recreateQuota(ctx, t, e, steady) })
	t.Run("PodGroup", func(t *testing.T) { recreatePodGroup(ctx, t, e, steady) })
	t.Run("Dataset", func(t *testing.T) { recreateDataset(ctx, t, e, steady) })
	created, bound := steady.finish(ctx, t)
	t.Logf("steady load: %d pods created, %d seen bound", created, bound)
	if created < 100 {
		t.Errorf("only %d steady pods were created: the load was not there", created)
	}
}

// recreateQuota deletes and recreates the ElasticQuota rq/quota (min = max)
// while the namespace's pods are churned: 1-CPU pods, kept at 8 (bound
// plus waiting), one bound pod deleted every 700 ms.
func recreateQuota(ctx context.Context, t *testing.T, e *quotaEnv, steady *steadyLoad) {
	const ns = "rq"
	e.quota(ctx, t, ns, "4", "4")
	rq := startQuotaChurn(ctx, t, e.Client, ns, 8, 700*time.Millisecond)
	defer rq.stop()
	settleAt := func(max int) {
		t.Helper()
		waitBound(ctx, t, e.Client, ns, "", max, 60*time.Second)
		s := sample(ctx, 20*time.Millisecond, func(ctx context.Context) (int, error) {
			pods, err := boundPods(ctx, e.Client, ns, "")
			return len(pods), err
		})
		time.Sleep(3 * time.Second) // the churn frees and refills a few times
		for i, v := range s.finish() {
			if v > max {
				t.Fatalf("sample %d: %d pods bound against max %d", i, v, max)
			}
		}
	}
	settleAt(4)

	for round, max := range []int{4, 6, 2} {
		progress := steady.bound()
		// Deleted: the namespace is unlimited, and the waiting pods bind.
		if err := e.sched.SchedulingV1alpha1().ElasticQuotas(ns).Delete(ctx, "quota", metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := waitBoundAtLeast(ctx, e.Client, ns, 5, 30*time.Second); err != nil {
			t.Fatalf("round %d: quota deleted, yet the waiting pods do not bind: %v", round, err)
		}
		// Created again. The namespace's own creations stop across the
		// moment it comes back, so that no bind the scheduler decided
		// without the quota reaches the checker after it sees the quota
		// (such a bind would be no fault of the scheduler's).
		rq.pause()
		if err := waitNonePending(ctx, e.Client, ns, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		bound, _ := boundPods(ctx, e.Client, ns, "")
		e.quota(ctx, t, ns, strconv.Itoa(max), strconv.Itoa(max))
		// BatchQuota counts the namespace against the new object: its
		// status shows everything bound, over max as it may be.
		if err := e.waitQuotaUsed(ctx, ns, "quota", fmt.Sprint(len(bound)), 15*time.Second); err != nil {
			t.Fatalf("round %d: recreated quota: %v", round, err)
		}
		rq.resume()
		settleAt(max)
		if err := steady.progressed(ctx, progress); err != nil {
			t.Errorf("round %d, quota deleted and recreated: %v", round, err)
		}
	}

	// The final quota (max 2): status.used is what the bound pods request
	// (once the last binds and the batched status write are done).
	rq.stop()
	var sum resource.Quantity
	var bound int
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := boundPods(ctx, e.Client, ns, "")
		if err != nil {
			return false, err
		}
		sum, bound = resource.Quantity{}, len(pods)
		for _, p := range pods {
			sum.Add(p.Spec.Containers[0].Resources.Requests[v1.ResourceCPU])
		}
		eq, err := e.sched.SchedulingV1alpha1().ElasticQuotas(ns).Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used := eq.Status.Used[v1.ResourceCPU]
		return used.Cmp(sum) == 0, nil
	})
	if err != nil {
		t.Errorf("final quota: status.used is not what the %d bound pods request (%s): %v", bound, sum.String(), err)
	}
	if bound > 2 {
		t.Errorf("%d pods bound against the final max 2", bound)
	}
}

// recreatePodGroup runs a 4-member gang "job" several times, deleting and
// recreating its PodGroup between and during the runs.
func recreatePodGroup(ctx context.Context, t *testing.T, e *quotaEnv, steady *steadyLoad) {
	const ns, gang, size = "gangs", "job", 4
	const timeout = 15 // scheduleTimeoutSeconds
	runs := sampleRuns(ctx, e.Client, ns)
	defer func() {
		for run, samples := range runs.finish() {
			checkRunAllOrNothing(t, run, size, samples)
		}
	}()
	members := func(run string, from, to int, mutate func(*v1.Pod)) {
		t.Helper()
		for i := from; i < to; i++ {
			p := testenv.NewPod(testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("%s-%d", run, i), SchedulerName: plugins.SchedulerName, CPU: "1",
				Labels: map[string]string{schedv1alpha1.PodGroupLabel: gang, "run": run}})
			if mutate != nil {
				mutate(p)
			}
			if _, err := e.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The scheduler's own PodGroup informer (BatchQuota's): pods are created
	// once it shows the PodGroup of the moment, so that what the test
	// checks is not a scheduler that has not heard of the change yet.
	pgInformer := e.Locus.Informers.InformerFor(&schedv1alpha1.PodGroup{}, nil)
	seenPG := func(uid types.UID) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
			obj, ok, _ := pgInformer.GetStore().GetByKey(ns + "/" + gang)
			if uid == "" {
				return !ok, nil
			}
			return ok && obj.(*schedv1alpha1.PodGroup).UID == uid, nil
		}); err != nil {
			t.Fatalf("the scheduler does not show PodGroup %s/%s (uid %q): %v", ns, gang, uid, err)
		}
	}
	createPG := func() *schedv1alpha1.PodGroup {
		t.Helper()
		pg, err := e.sched.SchedulingV1alpha1().PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gang},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: size, ScheduleTimeoutSeconds: ptr.To[int32](timeout)},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		seenPG(pg.UID)
		return pg
	}
	deletePG := func() {
		t.Helper()
		if err := e.sched.SchedulingV1alpha1().PodGroups(ns).Delete(ctx, gang, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		seenPG("")
	}
	runBound := func(run string) int {
		n, _ := countBound(ctx, e.Client, ns, "run="+run)
		return n
	}

	// Run 1: an ordinary gang, created at the start of a second.
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second)))
	createPG()
	members("run1", 0, size, nil)
	waitBound(ctx, t, e.Client, ns, gang, size, 30*time.Second)

	// Run 2: the PodGroup recreated while run 1's pods are bound, most
	// likely within the second run 1's pods were created in (the
	// creationTimestamps then do not tell the runs apart). Three new
	// members are not a gang, whatever run 1 left bound.
	deletePG()
	pg := createPG()
	run1, err := e.Client.CoreV1().Pods(ns).Get(ctx, "run1-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("run 1's pods created at %v, the recreated PodGroup at %v (same second: %v)",
		run1.CreationTimestamp.UTC(), pg.CreationTimestamp.UTC(), run1.CreationTimestamp.Equal(&pg.CreationTimestamp))
	members("run2", 0, size-1, nil)
	time.Sleep(3 * time.Second)
	if n := runBound("run2"); n != 0 {
		t.Fatalf("run 2: %d of 3 members bound, with run 1's pods completing the new PodGroup's gang", n)
	}
	members("run2", size-1, size, nil)
	waitRunBound(ctx, t, e.Client, ns, "run2", size, 30*time.Second)

	// Run 3: its pods are created while the PodGroup is gone; they wait
	// (never bound alone) and bind whole once it is back.
	deletePG()
	members("run3", 0, size, nil)
	time.Sleep(3 * time.Second)
	if n := runBound("run3"); n != 0 {
		t.Fatalf("run 3: %d members bound without their PodGroup", n)
	}
	for i := 0; i < size; i++ {
		if _, err := testenv.WaitForPodEvent(ctx, e.Client, ns, fmt.Sprintf("run3-%d", i), locusv1alpha1.EventReasonPodGroupNotFound, gang, 10*time.Second); err != nil {
			t.Error(err)
		}
	}
	createPG()
	waitRunBound(ctx, t, e.Client, ns, "run3", size, 30*time.Second)

	// Run 4: three members wait at Permit (the fourth fits no node) when
	// the PodGroup is deleted and created again; the fourth is replaced by
	// one that fits. The new PodGroup is a new gang: its members bind
	// whole, without waiting out the deleted one's schedule timeout. (The
	// earlier runs go first: with members of the PodGroup bound, the gang
	// would be complete, and later members pass Permit at once, as a
	// driver's executors do.) A member tried again between the unfit one's
	// deletion and its replacement finds the gang a pod short; the
	// replacement brings it back (once, a race here left it to wait out
	// the new gang's timeout, and the gang bound after 30 s).
	for _, run := range []string{"run1", "run2", "run3"} {
		runs.retire(run)
		for i := 0; i < size; i++ {
			forceDelete(ctx, t, e.Client, ns, fmt.Sprintf("%s-%d", run, i))
		}
	}
	waitBound(ctx, t, e.Client, ns, gang, 0, 30*time.Second)
	members("run4", size-1, size, func(p *v1.Pod) { p.Spec.NodeSelector = map[string]string{"no-such-label": "x"} })
	members("run4", 0, size-1, nil)
	if err := waitWaitingAtPermit(ctx, e, ns, "run4", size-1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	progress := steady.bound()
	deletePG()
	recreated := createPG()
	forceDelete(ctx, t, e.Client, ns, fmt.Sprintf("run4-%d", size-1))
	start := time.Now()
	members("run4", size, size+1, nil)
	waitRunBound(ctx, t, e.Client, ns, "run4", size, time.Duration(3*timeout+30)*time.Second)
	took := time.Since(start)
	t.Logf("run 4: the gang bound whole %v after its PodGroup was recreated", took.Round(100*time.Millisecond))
	if took > timeout*time.Second {
		t.Errorf("run 4 took %v to bind, more than the schedule timeout (%ds): the gang waited out a timeout", took.Round(100*time.Millisecond), timeout)
	}
	evs, err := e.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + locusv1alpha1.EventReasonGangTimeout})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs.Items {
		if ev.Regarding.UID == recreated.UID {
			t.Errorf("GangTimeout on the recreated PodGroup, which never timed out: %s", ev.Note)
		}
	}
	if err := steady.progressed(ctx, progress); err != nil {
		t.Errorf("PodGroup recreated: %v", err)
	}
}

// recreateDataset deletes and recreates the Dataset data/warehouse, which
// pods read with a locality wait of an hour: they may only go to a node
// that holds it while it exists.
func recreateDataset(ctx context.Context, t *testing.T, e *quotaEnv, steady *steadyLoad) {
	const ns, name = "data", "warehouse"
	lc := locusClient(t, e.Config)
	create := func(node string) types.UID {
		t.Helper()
		ds, err := lc.LocusV1alpha1().Datasets(ns).Create(ctx, &locusv1alpha1.Dataset{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       locusv1alpha1.DatasetSpec{URI: "s3://warehouse/", Locations: []locusv1alpha1.DatasetLocation{onNode(node, "500Gi")}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ds.UID
	}
	remove := func() {
		t.Helper()
		if err := lc.LocusV1alpha1().Datasets(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// seen waits until the scheduler's own Dataset informer holds uid (or,
	// for "", no Dataset of the name).
	seen := func(uid types.UID) {
		t.Helper()
		inf := e.Locus.Informers.InformerFor(&locusv1alpha1.Dataset{}, nil)
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 15*time.Second, true, func(context.Context) (bool, error) {
			obj, ok, _ := inf.GetStore().GetByKey(ns + "/" + name)
			if uid == "" {
				return !ok, nil
			}
			return ok && obj.(*locusv1alpha1.Dataset).UID == uid, nil
		}); err != nil {
			t.Fatalf("the scheduler's informer does not show Dataset %s/%s (uid %q): %v", ns, name, uid, err)
		}
	}
	readers := func(prefix string, n int) []string {
		t.Helper()
		var names []string
		for i := 0; i < n; i++ {
			pn := fmt.Sprintf("%s-%d", prefix, i)
			if _, err := testenv.CreatePod(ctx, e.Client, testenv.PodSpec{Namespace: ns, Name: pn, SchedulerName: plugins.SchedulerName, CPU: "100m",
				Annotations: map[string]string{locusv1alpha1.AnnotationDatasets: name, locusv1alpha1.AnnotationLocalityWait: "1h"}}); err != nil {
				t.Fatal(err)
			}
			names = append(names, pn)
		}
		return names
	}
	nodesOf := func(names []string, timeout time.Duration) []string {
		t.Helper()
		var nodes []string
		for _, n := range names {
			node, err := testenv.WaitForPodBound(ctx, e.Client, ns, n, timeout)
			if err != nil {
				t.Fatal(err)
			}
			nodes = append(nodes, node)
		}
		return nodes
	}

	// On the full cache node: the readers wait for it.
	seen(create("cache-0"))
	waiting := readers("wait", 3)
	for _, n := range waiting {
		if _, err := testenv.WaitForPodUnschedulable(ctx, e.Client, ns, n, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Deleted: nothing holds them back; they bind at once, anywhere.
	progress := steady.bound()
	remove()
	start := time.Now()
	nodesOf(waiting, 15*time.Second)
	t.Logf("readers waiting for the deleted Dataset bound within %v", time.Since(start).Round(100*time.Millisecond))

	// Recreated, twice, each time on another node (the second time after
	// readers were created while it was gone): pods go where the object of
	// the moment says.
	for round, node := range []string{"node-3", "node-5"} {
		if round > 0 {
			remove()
			// Readers created while it is gone bind somewhere.
			nodesOf(readers(fmt.Sprintf("gone%d", round), 2), 30*time.Second)
		}
		seen(create(node))
		for i, got := range nodesOf(readers(fmt.Sprintf("near%d", round), 3), 30*time.Second) {
			if got != node {
				t.Errorf("round %d: reader %d bound to %s, want %s where the recreated Dataset is", round, i, got, node)
			}
		}
	}
	if err := steady.progressed(ctx, progress); err != nil {
		t.Errorf("Dataset deleted and recreated: %v", err)
	}
	// A reader is told of a missing Dataset at most once.
	list, err := e.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range list.Items {
		evs, err := testenv.PodEvents(ctx, e.Client, ns, p.Name, locusv1alpha1.EventReasonDatasetNotFound)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) > 1 {
			t.Errorf("pod %s has %d DatasetNotFound events", p.Name, len(evs))
		}
	}
}

// steadyLoad creates a 100m pod every interval in its namespace, and
// deletes the oldest bound pods beyond keep: the scheduler always has work.
type steadyLoad struct {
	c      kubernetes.Interface
	ns     string
	stopCh chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	made   int
	seen   map[string]bool // pods seen bound
	err    error
}

func startSteadyLoad(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, interval time.Duration, keep int) *steadyLoad {
	l := &steadyLoad{c: c, ns: ns, stopCh: make(chan struct{}), done: make(chan struct{}), seen: map[string]bool{}}
	go func() {
		defer close(l.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-l.stopCh:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("steady-%05d", i), SchedulerName: plugins.SchedulerName, CPU: "100m"}); err != nil {
				l.fail(err)
				return
			}
			l.mu.Lock()
			l.made++
			l.mu.Unlock()
			bound, err := boundPods(ctx, c, ns, "")
			if err != nil {
				l.fail(err)
				return
			}
			sort.Slice(bound, func(i, j int) bool { return bound[i].Name < bound[j].Name })
			l.mu.Lock()
			for _, p := range bound {
				l.seen[p.Name] = true
			}
			l.mu.Unlock()
			for _, p := range bound[:max(0, len(bound)-keep)] {
				if err := c.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil && !apierrors.IsNotFound(err) {
					l.fail(err)
					return
				}
			}
		}
	}()
	return l
}

func (l *steadyLoad) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil && !strings.Contains(err.Error(), "context canceled") {
		l.err = err
	}
}

// bound is how many of its pods were seen bound so far.
func (l *steadyLoad) bound() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.seen)
}

// progressed waits (10 s at most) until more of its pods were seen bound
// than since: the scheduler keeps placing pods.
func (l *steadyLoad) progressed(ctx context.Context, since int) error {
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return l.bound() > since, nil
	})
	if err != nil {
		return fmt.Errorf("no steady pod bound since %d were: %w", since, err)
	}
	return nil
}

// finish stops the load and checks that every pod it left is bound.
func (l *steadyLoad) finish(ctx context.Context, t *testing.T) (created, bound int) {
	t.Helper()
	close(l.stopCh)
	<-l.done
	if l.err != nil {
		t.Errorf("steady load: %v", l.err)
	}
	if err := waitNonePending(ctx, l.c, l.ns, 30*time.Second); err != nil {
		t.Errorf("steady load: %v", err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.made, len(l.seen)
}

// quotaChurn keeps a namespace at target pods of 1 CPU (bound or waiting)
// and deletes one bound pod every interval; it can pause.
type quotaChurn struct {
	mu     sync.Mutex
	paused bool
	stopCh chan struct{}
	done   chan struct{}
	once   sync.Once
}

func startQuotaChurn(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, target int, interval time.Duration) *quotaChurn {
	q := &quotaChurn{stopCh: make(chan struct{}), done: make(chan struct{})}
	rng := rand.New(rand.NewPCG(7, 7))
	go func() {
		defer close(q.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		seq := 0
		for {
			q.mu.Lock()
			paused := q.paused
			q.mu.Unlock()
			if !paused {
				list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
				if err != nil {
					return
				}
				var bound []string
				alive := 0
				for _, p := range list.Items {
					if p.DeletionTimestamp != nil {
						continue
					}
					alive++
					if p.Spec.NodeName != "" {
						bound = append(bound, p.Name)
					}
				}
				if len(bound) > 0 {
					victim := bound[rng.IntN(len(bound))]
					if err := c.CoreV1().Pods(ns).Delete(ctx, victim, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err == nil {
						alive--
					}
				}
				for ; alive < target; alive++ {
					seq++
					if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("q-%04d", seq), SchedulerName: plugins.SchedulerName, CPU: "1"}); err != nil {
						return
					}
				}
			}
			select {
			case <-q.stopCh:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return q
}

func (q *quotaChurn) pause()  { q.mu.Lock(); q.paused = true; q.mu.Unlock() }
func (q *quotaChurn) resume() { q.mu.Lock(); q.paused = false; q.mu.Unlock() }

// stop ends the churn and waits for its last call.
func (q *quotaChurn) stop() {
	q.once.Do(func() { close(q.stopCh) })
	<-q.done
}

// waitBoundAtLeast waits until at least n of the namespace's pods are bound.
func waitBoundAtLeast(ctx context.Context, c kubernetes.Interface, ns string, n int, timeout time.Duration) error {
	var got int
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := boundPods(ctx, c, ns, "")
		got = len(pods)
		return got >= n, err
	})
	if err != nil {
		return fmt.Errorf("namespace %s: %d pods bound, want at least %d: %w", ns, got, n, err)
	}
	return nil
}

// waitNonePending waits until every pod of the namespace is bound.
func waitNonePending(ctx context.Context, c kubernetes.Interface, ns string, timeout time.Duration) error {
	var pending []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		pending = pending[:0]
		for _, p := range list.Items {
			if p.Spec.NodeName == "" && p.DeletionTimestamp == nil {
				pending = append(pending, p.Name)
			}
		}
		return len(pending) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s: still pending after %v: %v: %w", ns, timeout, pending, err)
	}
	return nil
}

// countBound counts the bound pods matching a label selector.
func countBound(ctx context.Context, c kubernetes.Interface, ns, selector string) (int, error) {
	list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range list.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			n++
		}
	}
	return n, nil
}

func waitRunBound(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, run string, want int, timeout time.Duration) {
	t.Helper()
	var got int
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var err error
		got, err = countBound(ctx, c, ns, "run="+run)
		return got == want, err
	})
	if err != nil {
		t.Fatalf("%s: %d members bound, want %d: %v", run, got, want, err)
	}
}

// waitWaitingAtPermit waits until n pods of a run wait at Permit in the
// locus scheduler.
func waitWaitingAtPermit(ctx context.Context, e *quotaEnv, ns, run string, n int, timeout time.Duration) error {
	fw := e.Locus.Profiles[plugins.SchedulerName]
	if fw == nil {
		return fmt.Errorf("no profile %s", plugins.SchedulerName)
	}
	var got int
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		got = 0
		fw.IterateOverWaitingPods(func(wp framework.WaitingPod) {
			if p := wp.GetPod(); p.Namespace == ns && p.Labels["run"] == run {
				got++
			}
		})
		return got == n, nil
	})
	if err != nil {
		return fmt.Errorf("%s: %d members wait at Permit, want %d: %w", run, got, n, err)
	}
	return nil
}

// runSamples samples, every 20 ms, how many pods of each run (label "run")
// of a namespace are bound.
type runSamples struct {
	mu      sync.Mutex
	values  map[string][]int
	retired map[string]bool
	stopCh  chan struct{}
	done    chan struct{}
}

func sampleRuns(ctx context.Context, c kubernetes.Interface, ns string) *runSamples {
	s := &runSamples{values: map[string][]int{}, retired: map[string]bool{}, stopCh: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{}); err == nil {
				counts := map[string]int{}
				for _, p := range list.Items {
					if run := p.Labels["run"]; run != "" {
						counts[run] += 0
						if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
							counts[run]++
						}
					}
				}
				s.mu.Lock()
				for run, n := range counts {
					if s.retired[run] {
						continue
					}
					s.values[run] = append(s.values[run], n)
				}
				s.mu.Unlock()
			}
			select {
			case <-s.stopCh:
				return
			case <-ctx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return s
}

// retire stops sampling a run (before the test deletes its pods).
func (s *runSamples) retire(run string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retired[run] = true
}

func (s *runSamples) finish() map[string][]int {
	close(s.stopCh)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values
}

// checkRunAllOrNothing: a run's bound count only grows, ends whole, and is
// partial only for the moment of binding (at most 1 s of samples).
func checkRunAllOrNothing(t *testing.T, run string, size int, samples []int) {
	t.Helper()
	partial := 0
	for i, v := range samples {
		if i > 0 && v < samples[i-1] {
			t.Errorf("%s: bound members went from %d to %d", run, samples[i-1], v)
		}
		if v != 0 && v != size {
			partial++
		}
	}
	if partial > 50 {
		t.Errorf("%s stayed partly bound for %d samples", run, partial)
	}
	if len(samples) == 0 || samples[len(samples)-1] != size {
		t.Errorf("%s did not end whole: last samples %v", run, samples[max(0, len(samples)-10):])
	}
}
