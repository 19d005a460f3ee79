package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
	"locus.dev/locus/test/invariants"
)

// (d) Borrowing up to max while another quota is idle, and reclaim when that
// quota's owner submits work: team-b fills the cluster (8 cpu, min 4, max 8)
// while team-a (min 4) is idle; then team-a submits 4 pods within its min.
// team-b's pods beyond its min are preempted, lowest priority first, and
// team-b never has fewer than its min bound at any instant. team-a's pods
// have the lowest priority of all, so DefaultPreemption cannot make room for
// them: only reclaim can.
func TestReclaimBorrowedQuota(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	c := env.Client
	if err := testenv.StartPodReaper(ctx, c); err != nil {
		t.Fatal(err)
	}
	// Custom resources have no protobuf encoding.
	cfg := rest.CopyConfig(env.Config)
	cfg.ContentType, cfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	sc, err := schedclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	invariants.Watch(ctx, t, c, sc, invariants.Options{})
	for i := 0; i < 2; i++ {
		if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: fmt.Sprintf("reclaim-%d", i), CPU: "4", Memory: "64Gi"}); err != nil {
			t.Fatal(err)
		}
	}
	for name, value := range map[string]int32{"reclaim-low": 100, "reclaim-high": 1000} {
		if _, err := c.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"team-a", "team-b"} {
		if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sc.SchedulingV1alpha1().ElasticQuotas(ns).Create(ctx, &schedv1alpha1.ElasticQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quota"},
			Spec: schedv1alpha1.ElasticQuotaSpec{
				Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("4")},
				Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("8")},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Borrowing: team-b takes the whole cluster while team-a is idle. Its
	// high- and low-priority pods alternate, so that creation order is not
	// the order of preemption.
	var high, low []string
	for i := 0; i < 8; i++ {
		class := "reclaim-high"
		if i%2 == 1 {
			class = "reclaim-low"
		}
		name := fmt.Sprintf("b-%d-%s", i, strings.TrimPrefix(class, "reclaim-"))
		if class == "reclaim-high" {
			high = append(high, name)
		} else {
			low = append(low, name)
		}
		createReclaimPod(ctx, t, c, "team-b", name, class)
	}
	waitReclaimBound(ctx, t, c, "team-b", 8)

	m := watchLiveBound(ctx, t, c)
	for i := 0; i < 4; i++ {
		createReclaimPod(ctx, t, c, "team-a", fmt.Sprintf("a-%d", i), "")
	}
	waitReclaimBound(ctx, t, c, "team-a", 4)
	// team-b is back at its min, with its high-priority pods.
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return equalSorted(m.names("team-b"), high), nil
	}); err != nil {
		t.Errorf("team-b's bound pods after reclaim: %v, want its high-priority pods %v (lowest priority preempted first; low ones were %v)", m.names("team-b"), high, low)
	}

	// A fifth team-a pod would take team-a beyond its min: it does not
	// reclaim, and team-b keeps its min.
	createReclaimPod(ctx, t, c, "team-a", "a-4", "")
	if msg, err := waitReclaimReason(ctx, c, "team-a", "a-4", "reclaim: quota team-a/quota would be beyond its min with this pod"); err != nil {
		t.Errorf("a-4's reason does not say that it does not reclaim: %v (last reason %q)", err, msg)
	}

	// Guarantees beyond the cluster: team-a's min grows to 6 while team-b's
	// shrinks to 3. A 2-cpu team-a pod is within team-a's min, but team-b
	// borrows only one cpu: taking the two that the pod needs on one node
	// would put team-b below its min, so nothing is preempted.
	forceDeleteReclaimPods(ctx, t, c, "team-a", "a-4")
	setReclaimQuota(ctx, t, sc, "team-b", "3")
	setReclaimQuota(ctx, t, sc, "team-a", "6")
	p := testenv.NewPod(testenv.PodSpec{Namespace: "team-a", Name: "a-big", SchedulerName: plugins.SchedulerName, CPU: "2"})
	if _, err := c.CoreV1().Pods("team-a").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if msg, err := waitReclaimReason(ctx, c, "team-a", "a-big", "below its min 3"); err != nil {
		t.Errorf("a-big was not refused for team-b's min: %v (last reason %q)", err, msg)
	}
	time.Sleep(2 * time.Second) // room for a wrong preemption to show

	minB, maxA := m.stop()
	if minB < 4 {
		t.Errorf("team-b had %d pods bound at some instant; want never fewer than 4 (its min while reclaim ran, and then nothing it could give)", minB)
	}
	if maxA > 4 {
		t.Errorf("team-a had %d pods bound at some instant, beyond what its min and the cluster allow", maxA)
	}
	if got := m.names("team-b"); !equalSorted(got, high) {
		t.Errorf("team-b's bound pods at the end: %v, want %v", got, high)
	}
	if got := m.names("team-a"); len(got) != 4 {
		t.Errorf("team-a's bound pods at the end: %v, want a-0..a-3", got)
	}
}

func setReclaimQuota(ctx context.Context, t *testing.T, sc schedclient.Interface, ns, min string) {
	t.Helper()
	eq, err := sc.SchedulingV1alpha1().ElasticQuotas(ns).Get(ctx, "quota", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eq.Spec.Min[v1.ResourceCPU] = resource.MustParse(min)
	if _, err := sc.SchedulingV1alpha1().ElasticQuotas(ns).Update(ctx, eq, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func forceDeleteReclaimPods(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, names ...string) {
	t.Helper()
	for _, n := range names {
		if err := c.CoreV1().Pods(ns).Delete(ctx, n, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitReclaimReason waits until the pod's PodScheduled condition says why
// it is unschedulable with substr in it, and returns the last reason seen.
func waitReclaimReason(ctx context.Context, c kubernetes.Interface, ns, name, substr string) (string, error) {
	var msg string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s/%s was bound to %s", ns, name, p.Spec.NodeName)
		}
		for _, cond := range p.Status.Conditions {
			if cond.Type == v1.PodScheduled && cond.Status == v1.ConditionFalse {
				msg = cond.Message
			}
		}
		return strings.Contains(msg, substr), nil
	})
	return msg, err
}

func createReclaimPod(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name, priorityClass string) {
	t.Helper()
	p := testenv.NewPod(testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, CPU: "1"})
	p.Spec.PriorityClassName = priorityClass
	if _, err := c.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func waitReclaimBound(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, want int) {
	t.Helper()
	var bound []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 90*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		bound = bound[:0]
		for _, p := range list.Items {
			if p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
				bound = append(bound, p.Name)
			}
		}
		return len(bound) == want, nil
	})
	if err != nil {
		t.Fatalf("namespace %s: bound pods %v, want %d: %v", ns, bound, want, err)
	}
}

// liveBound follows every pod change in order (an informer's events, not
// samples) and keeps, per namespace, the pods that are bound and not
// terminating, with the least count of team-b and the greatest of team-a.
type liveBound struct {
	mu         sync.Mutex
	live       map[string]map[string]bool
	minB, maxA int
	stopCh     chan struct{}
}

func watchLiveBound(ctx context.Context, t *testing.T, c kubernetes.Interface) *liveBound {
	t.Helper()
	m := &liveBound{live: map[string]map[string]bool{}, minB: 1 << 30, stopCh: make(chan struct{})}
	update := func(obj interface{}, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, deleted = d.Obj, true
		}
		p, ok := obj.(*v1.Pod)
		if !ok {
			return
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.live[p.Namespace] == nil {
			m.live[p.Namespace] = map[string]bool{}
		}
		if !deleted && p.Spec.NodeName != "" && p.DeletionTimestamp == nil {
			m.live[p.Namespace][p.Name] = true
		} else {
			delete(m.live[p.Namespace], p.Name)
		}
		m.minB = min(m.minB, len(m.live["team-b"]))
		m.maxA = max(m.maxA, len(m.live["team-a"]))
	}
	factory := informers.NewSharedInformerFactory(c, 0)
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj interface{}) { update(obj, false) },
		UpdateFunc: func(_, obj interface{}) { update(obj, false) },
		DeleteFunc: func(obj interface{}) { update(obj, true) },
	}); err != nil {
		t.Fatal(err)
	}
	factory.Start(m.stopCh)
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("pod informer did not sync")
	}
	// Handlers of the initial list may still be running.
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		return len(m.names("team-b")) == 8, nil
	}); err != nil {
		t.Fatalf("the watcher never saw team-b's 8 pods: %v", err)
	}
	m.mu.Lock()
	m.minB = len(m.live["team-b"])
	m.mu.Unlock()
	return m
}

func (m *liveBound) names(ns string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for n := range m.live[ns] {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// stop ends the watch and returns team-b's least and team-a's greatest count.
func (m *liveBound) stop() (int, int) {
	close(m.stopCh)
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.minB, m.maxA
}

func equalSorted(a, b []string) bool {
	a, b = append([]string(nil), a...), append([]string(nil), b...)
	sort.Strings(a)
	sort.Strings(b)
	return strings.Join(a, ",") == strings.Join(b, ",")
}
