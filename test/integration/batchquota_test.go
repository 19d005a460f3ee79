package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
	"locus.dev/locus/test/invariants"
)

type quotaEnv struct {
	*testenv.Env
	sched schedclient.Interface
}

func startQuotaEnv(ctx context.Context, t *testing.T, nodes int, cpu string) *quotaEnv {
	t.Helper()
	env := testenv.Start(ctx, t, nil)
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType = "application/json"
	sc, err := schedclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < nodes; i++ {
		if _, err := testenv.CreateNode(ctx, env.Client, testenv.NodeSpec{
			Name: fmt.Sprintf("node-%d", i), CPU: cpu, Memory: "64Gi",
			Labels: map[string]string{v1.LabelTopologyZone: fmt.Sprintf("zone-%d", i%2)},
		}); err != nil {
			t.Fatal(err)
		}
	}
	// Every quota test runs under the invariant checker: quota max, the
	// aggregate rule, double binds, gangs partly bound past their timeout.
	invariants.Watch(ctx, t, env.Client, sc, invariants.Options{})
	return &quotaEnv{Env: env, sched: sc}
}

func (e *quotaEnv) quota(ctx context.Context, t *testing.T, ns string, min, max string) {
	t.Helper()
	if err := testenv.CreateNamespace(ctx, e.Client, ns, nil); err != nil {
		t.Fatal(err)
	}
	eq := &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse(min)},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse(max)},
		},
	}
	if _, err := e.sched.SchedulingV1alpha1().ElasticQuotas(ns).Create(ctx, eq, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitUsedCPU waits until the namespace's ElasticQuota "quota" shows the
// CPU amount in status.used: the status that BatchQuota writes back in
// batches.
func (e *quotaEnv) waitUsedCPU(ctx context.Context, ns, cpu string, timeout time.Duration) error {
	return e.waitQuotaUsed(ctx, ns, "quota", cpu, timeout)
}

// waitQuotaUsed waits until the ElasticQuota ns/name shows the CPU amount
// in status.used.
func (e *quotaEnv) waitQuotaUsed(ctx context.Context, ns, name, cpu string, timeout time.Duration) error {
	want := resource.MustParse(cpu)
	var got resource.Quantity
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		eq, err := e.sched.SchedulingV1alpha1().ElasticQuotas(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		got = eq.Status.Used[v1.ResourceCPU]
		return got.Cmp(want) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("ElasticQuota %s/%s status.used cpu is %s, want %s: %w", ns, name, got.String(), cpu, err)
	}
	return nil
}

func (e *quotaEnv) podGroup(ctx context.Context, t *testing.T, ns, name string, minMember, timeout int32) {
	t.Helper()
	pg := &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: minMember, ScheduleTimeoutSeconds: ptr.To(timeout)},
	}
	if _, err := e.sched.SchedulingV1alpha1().PodGroups(ns).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func createPods(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, prefix string, n int, cpu string, labels map[string]string, scheduler string) []string {
	t.Helper()
	var names []string
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("%s-%02d", prefix, i)
		if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: scheduler, CPU: cpu, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

// boundPods lists the namespace's bound pods, optionally of one gang.
func boundPods(ctx context.Context, c kubernetes.Interface, ns, gang string) ([]v1.Pod, error) {
	opts := metav1.ListOptions{}
	if gang != "" {
		opts.LabelSelector = schedv1alpha1.PodGroupLabel + "=" + gang
	}
	list, err := c.CoreV1().Pods(ns).List(ctx, opts)
	if err != nil {
		return nil, err
	}
	var out []v1.Pod
	for _, p := range list.Items {
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out, nil
}

// sampler polls a count while a test runs and remembers every value seen.
type sampler struct {
	mu     sync.Mutex
	values []int
	stop   chan struct{}
	done   chan struct{}
}

func sample(ctx context.Context, every time.Duration, count func(context.Context) (int, error)) *sampler {
	s := &sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		for {
			if n, err := count(ctx); err == nil {
				s.mu.Lock()
				s.values = append(s.values, n)
				s.mu.Unlock()
			}
			select {
			case <-s.stop:
				return
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

func (s *sampler) finish() []int {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values
}

func waitBound(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, gang string, want int, timeout time.Duration) {
	t.Helper()
	var got int
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		pods, err := boundPods(ctx, c, ns, gang)
		got = len(pods)
		return got == want, err
	})
	if err != nil {
		t.Fatalf("namespace %s gang %q: %d pods bound, want %d: %v", ns, gang, got, want, err)
	}
}

func forceDelete(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := c.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
	}
}

// (a) 50 pods of 1 CPU against max 10: never more than 10 bound at any
// sampled instant; the rest wait with a quota reason and bind as running pods go.
func TestQuotaMaxUnderLoad(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 4, "16")
	e.quota(ctx, t, "etl", "10", "10")

	s := sample(ctx, 20*time.Millisecond, func(ctx context.Context) (int, error) {
		pods, err := boundPods(ctx, e.Client, "etl", "")
		return len(pods), err
	})
	names := createPods(ctx, t, e.Client, "etl", "task", 50, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "etl", "", 10, 30*time.Second)

	// A waiting pod says why.
	var pending string
	for _, n := range names {
		p, err := e.Client.CoreV1().Pods("etl").Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName == "" {
			pending = n
			break
		}
	}
	msg, err := testenv.WaitForPodUnschedulable(ctx, e.Client, "etl", pending, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "quota etl/quota: cpu would be 11 (used 10 + request 1), over max 10") {
		t.Errorf("pending pod's reason %q does not name the quota and the numbers", msg)
	}
	if _, err := testenv.WaitForPodEvent(ctx, e.Client, "etl", pending, locusv1alpha1.EventReasonQuotaExceeded, "over max 10", 10*time.Second); err != nil {
		t.Error(err)
	}

	// Finish the running pods in waves: the waiting ones take their place.
	for wave := 0; wave < 4; wave++ {
		bound, err := boundPods(ctx, e.Client, "etl", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range bound {
			forceDelete(ctx, t, e.Client, "etl", p.Name)
		}
		waitBound(ctx, t, e.Client, "etl", "", 10, 30*time.Second)
	}
	for i, v := range s.finish() {
		if v > 10 {
			t.Fatalf("sample %d: %d pods bound against max 10", i, v)
		}
	}

	// status.used is written back (batched).
	if err := e.waitUsedCPU(ctx, "etl", "10", 10*time.Second); err != nil {
		t.Error(err)
	}
}

// (b) Two 8-pod gangs against a quota that fits one: one binds whole, the
// other waits whole (never partly bound), and binds once the first is gone.
func TestGangsShareAQuotaWithoutDeadlock(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 4, "8")
	e.quota(ctx, t, "spark", "8", "8")
	e.podGroup(ctx, t, "spark", "job-a", 8, 30)
	e.podGroup(ctx, t, "spark", "job-b", 8, 30)

	count := func(gang string) func(context.Context) (int, error) {
		return func(ctx context.Context) (int, error) {
			pods, err := boundPods(ctx, e.Client, "spark", gang)
			return len(pods), err
		}
	}
	sa, sb := sample(ctx, 20*time.Millisecond, count("job-a")), sample(ctx, 20*time.Millisecond, count("job-b"))
	createPods(ctx, t, e.Client, "spark", "a", 8, "1", map[string]string{schedv1alpha1.PodGroupLabel: "job-a"}, plugins.SchedulerName)
	createPods(ctx, t, e.Client, "spark", "b", 8, "1", map[string]string{schedv1alpha1.PodGroupLabel: "job-b"}, plugins.SchedulerName)

	// Exactly one gang binds whole.
	var first, second string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		na, _ := count("job-a")(ctx)
		nb, _ := count("job-b")(ctx)
		switch {
		case na == 8:
			first, second = "job-a", "job-b"
		case nb == 8:
			first, second = "job-b", "job-a"
		}
		return first != "", nil
	})
	if err != nil {
		t.Fatalf("no gang bound whole: %v", err)
	}
	time.Sleep(2 * time.Second) // give the other gang every chance to overshoot
	samples := map[string][]int{"job-a": sa.finish(), "job-b": sb.finish()}
	if n, _ := count(second)(ctx); n != 0 {
		t.Fatalf("gang %s has %d pods bound while %s holds the quota", second, n, first)
	}
	for _, v := range samples[second] {
		if v != 0 {
			t.Fatalf("gang %s had %d members bound while %s held the quota", second, v, first)
		}
	}
	checkAllOrNothing(t, first, samples[first])

	// The first gang finishes; the second binds whole.
	s2 := sample(ctx, 20*time.Millisecond, count(second))
	firstPods, _ := boundPods(ctx, e.Client, "spark", first)
	for _, p := range firstPods {
		forceDelete(ctx, t, e.Client, "spark", p.Name)
	}
	waitBound(ctx, t, e.Client, "spark", second, 8, 60*time.Second)
	checkAllOrNothing(t, second, s2.finish())

	pg, err := e.sched.SchedulingV1alpha1().PodGroups("spark").Get(ctx, second, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		pg, err = e.sched.SchedulingV1alpha1().PodGroups("spark").Get(ctx, second, metav1.GetOptions{})
		return err == nil && pg.Status.Phase == "Scheduled" && pg.Annotations[locusv1alpha1.AnnotationScheduled] == "8", err
	})
	if err != nil {
		t.Errorf("PodGroup %s status %+v annotations %v, want phase Scheduled and %s=8", second, pg.Status, pg.Annotations, locusv1alpha1.AnnotationScheduled)
	}
}

// (c) A gang whose minMember cannot fit times out and releases everything:
// its quota and its node resources.
func TestGangTimeoutReleasesEverything(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 2, "8")
	e.quota(ctx, t, "ml", "100", "100")
	e.podGroup(ctx, t, "ml", "train", 3, 4)
	// Three 6-CPU members on two 8-CPU nodes: only two can ever be placed.
	createPods(ctx, t, e.Client, "ml", "train", 3, "6", map[string]string{schedv1alpha1.PodGroupLabel: "train"}, plugins.SchedulerName)

	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := e.Client.EventsV1().Events("ml").List(ctx, metav1.ListOptions{FieldSelector: "reason=" + locusv1alpha1.EventReasonGangTimeout})
		return err == nil && len(evs.Items) > 0, err
	})
	if err != nil {
		t.Fatalf("no GangTimeout event: %v", err)
	}
	if pods, _ := boundPods(ctx, e.Client, "ml", "train"); len(pods) != 0 {
		t.Fatalf("%d members of an incomplete gang were bound", len(pods))
	}
	// The release is written back: the quota counts nothing for the gang
	// while it backs off (one schedule timeout) before trying again.
	if err := e.waitUsedCPU(ctx, "ml", "0", 3*time.Second); err != nil {
		t.Errorf("quota ml still counts the released gang: %v", err)
	}
	// Node resources are free: pods that need a whole node each bind.
	if err := testenv.CreateNamespace(ctx, e.Client, "other", nil); err != nil {
		t.Fatal(err)
	}
	createPods(ctx, t, e.Client, "other", "big", 2, "8", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "other", "", 2, 30*time.Second)
}

// (e) Restart the scheduler with pods bound: used is rebuilt from the pods,
// identical after restart, and no overshoot follows.
func TestQuotaSurvivesRestart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 2, "16")
	e.quota(ctx, t, "etl", "6", "6")
	createPods(ctx, t, e.Client, "etl", "before", 4, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "etl", "", 4, 30*time.Second)

	e.Locus.Stop()
	createPods(ctx, t, e.Client, "etl", "after", 6, "1", nil, plugins.SchedulerName)
	e.Locus = e.StartScheduler(ctx, t, manifests.SchedulerConfig)
	waitBound(ctx, t, e.Client, "etl", "", 6, 30*time.Second)
	time.Sleep(2 * time.Second)
	if pods, _ := boundPods(ctx, e.Client, "etl", ""); len(pods) != 6 {
		t.Fatalf("%d pods bound after restart against max 6", len(pods))
	}
	if err := e.waitUsedCPU(ctx, "etl", "6", 10*time.Second); err != nil {
		t.Errorf("after restart: %v", err)
	}
}

// (f) Pods of the same namespace bound by the default scheduler count
// against the quota.
func TestQuotaCountsOtherSchedulers(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 2, "16")
	e.quota(ctx, t, "shared", "10", "10")
	createPods(ctx, t, e.Client, "shared", "legacy", 6, "1", nil, "")
	waitBound(ctx, t, e.Client, "shared", "", 6, 30*time.Second)
	createPods(ctx, t, e.Client, "shared", "locus", 10, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "shared", "", 10, 30*time.Second)
	time.Sleep(2 * time.Second)
	pods, _ := boundPods(ctx, e.Client, "shared", "")
	byLocus := 0
	for _, p := range pods {
		if p.Spec.SchedulerName == plugins.SchedulerName {
			byLocus++
		}
	}
	if len(pods) != 10 || byLocus != 4 {
		t.Errorf("%d pods bound (%d by locus), want 10 with 4 by locus", len(pods), byLocus)
	}
}

// checkAllOrNothing checks a gang's bound-member samples: the count only
// grows, and a partial count is only the moment of binding after Permit let
// the whole gang through (at most 1 s of 20 ms samples), never a resting state.
func checkAllOrNothing(t *testing.T, gang string, samples []int) {
	t.Helper()
	partial := 0
	for i, v := range samples {
		if i > 0 && v < samples[i-1] {
			t.Errorf("gang %s: bound members went from %d to %d", gang, samples[i-1], v)
		}
		if v != 0 && v != 8 {
			partial++
		}
	}
	if partial > 50 {
		t.Errorf("gang %s stayed partly bound for %d samples: %v", gang, partial, samples)
	}
	if len(samples) == 0 || samples[len(samples)-1] != 8 {
		t.Errorf("gang %s did not end whole: %v", gang, samples)
	}
}

// Priority preemption stays inside a quota: a high-priority pod over its
// quota's max preempts a lower-priority pod of its own namespace (through
// DefaultPreemption, which sees the quota through BatchQuota's Filter and
// preemption extensions), never a pod of another quota that sits within
// its min.
func TestPriorityPreemptionWithinQuota(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 2, "8")
	if err := testenv.StartPodReaper(ctx, e.Client); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]int32{"low": 100, "high": 1000} {
		if _, err := e.Client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.quota(ctx, t, "etl", "4", "4")
	e.quota(ctx, t, "other", "4", "4")
	create := func(ns, name, class string) {
		t.Helper()
		p := testenv.NewPod(testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, CPU: "1"})
		p.Spec.PriorityClassName = class
		if _, err := e.Client.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 4; i++ {
		create("etl", fmt.Sprintf("low-%d", i), "low")
		create("other", fmt.Sprintf("low-%d", i), "low")
	}
	waitBound(ctx, t, e.Client, "etl", "", 4, 30*time.Second)
	waitBound(ctx, t, e.Client, "other", "", 4, 30*time.Second)

	create("etl", "urgent", "high")
	if _, err := testenv.WaitForPodBound(ctx, e.Client, "etl", "urgent", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	waitBound(ctx, t, e.Client, "etl", "", 4, 30*time.Second)
	if pods, _ := boundPods(ctx, e.Client, "other", ""); len(pods) != 4 {
		t.Errorf("quota other, within its min, lost pods: %d of 4 bound", len(pods))
	}
}
