package integration

import (
	"context"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/compliance"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// The check holds until the bind. A gang of two regulated pods: the first
// member reserves the only certified node and waits at Permit for the
// second, which fits nowhere. The node's certification is then removed; a
// second certified node arrives, the second member takes it and completes
// the gang. The first member must not bind on the node that lost its
// certification: PreBind sends it back, and it binds once a certified node
// has room.
func TestComplianceHoldsUntilBind(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Two plain nodes with room for both members: only Compliance keeps
	// the pods off them.
	e := startQuotaEnv(ctx, t, 2, "8")
	c := e.Client

	// Compliance's PreBind runs after VolumeBinding's: with multiPoint,
	// out-of-tree plugins come after the defaults, in config order.
	prof, ok := e.Locus.Profiles[plugins.SchedulerName]
	if !ok {
		t.Fatalf("no %s profile", plugins.SchedulerName)
	}
	var preBind []string
	for _, p := range prof.ListPlugins().PreBind.Enabled {
		preBind = append(preBind, p.Name)
	}
	vb, cp := slices.Index(preBind, names.VolumeBinding), slices.Index(preBind, compliance.Name)
	if vb < 0 || cp < 0 || cp < vb {
		t.Fatalf("PreBind plugins %v: want %s after %s", preBind, compliance.Name, names.VolumeBinding)
	}

	certKey := certPrefix + "pci-dss"
	certified := func(name string) {
		t.Helper()
		if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: name, CPU: "8", Memory: "64Gi", Labels: map[string]string{certKey: "true"}}); err != nil {
			t.Fatal(err)
		}
	}
	certified("pci-a")

	const ns, gang = "vault", "settle"
	if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
		t.Fatal(err)
	}
	e.podGroup(ctx, t, ns, gang, 2, 120)
	members := []string{"settle-0", "settle-1"}
	// Every PodScheduled message the scheduler writes on the members, as a
	// watch sees them: the member sent back by PreBind is tried again a
	// moment later, and that attempt's message replaces the first.
	reasons := watchScheduledMessages(ctx, t, c, ns)
	for _, name := range members {
		if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{
			Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, CPU: "6",
			Labels:      map[string]string{schedv1alpha1.PodGroupLabel: gang},
			Annotations: map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"},
		}); err != nil {
			t.Fatal(err)
		}
	}

	// Watch that no member ever binds to pci-a.
	var boundToA atomic.Value
	go func() {
		_ = wait.PollUntilContextCancel(ctx, 20*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			for _, name := range members {
				if p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{}); err == nil && p.Spec.NodeName == "pci-a" {
					boundToA.Store(name)
					return true, nil
				}
			}
			return false, nil
		})
	}()

	// One member holds pci-a at Permit; the other is unschedulable (pci-a
	// is full, the plain nodes are not certified). Either may be first: a
	// member created before its sibling is turned away for the gang's
	// missing pod, then brought back by the sibling's creation.
	var waiting, blocked string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for i, name := range members {
			p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if _, cond := podutil.GetPodCondition(&p.Status, v1.PodScheduled); cond != nil && cond.Reason == v1.PodReasonUnschedulable &&
				strings.Contains(cond.Message, "Insufficient cpu") {
				blocked, waiting = name, members[1-i]
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("no member became unschedulable: %v", err)
	}
	t.Logf("%s waits at Permit on pci-a; %s is unschedulable", waiting, blocked)

	// pci-a loses its certification while the member waits.
	if err := testenv.SetNodeLabel(ctx, c, "pci-a", certKey, "", true); err != nil {
		t.Fatal(err)
	}
	// PreBind reads the node from the scheduler's informer: wait until it
	// has seen the change.
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		n, err := e.Locus.Informers.Core().V1().Nodes().Lister().Get("pci-a")
		if err != nil {
			return false, nil
		}
		_, certifiedStill := n.Labels[certKey]
		return !certifiedStill, nil
	}); err != nil {
		t.Fatalf("the scheduler's informer still shows pci-a certified: %v", err)
	}
	certified("pci-b")

	node, err := testenv.WaitForPodBound(ctx, c, ns, blocked, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if node != "pci-b" {
		t.Errorf("%s bound to %s, want pci-b", blocked, node)
	}
	if _, err := testenv.WaitForPodEvent(ctx, c, ns, blocked, locusv1alpha1.EventReasonCompliantPlacement, "node pci-b holds pci-dss (no expiry)", 10*time.Second); err != nil {
		t.Error(err)
	}
	// The member that waited on pci-a is sent back by PreBind with a
	// reason. (Its FailedScheduling event may not carry it: events of one
	// reason about the same copy of a pod form a series, and a member
	// turned away for the gang's missing pod before it reserved pci-a has
	// such an event already; the series keeps the first note.)
	const noLonger = "node pci-a no longer meets the compliance requirements before binding: missing certification pci-dss"
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return slices.ContainsFunc(reasons(waiting), func(m string) bool { return strings.Contains(m, noLonger) }), nil
	}); err != nil {
		t.Fatalf("%s was not sent back with %q; its PodScheduled messages: %q", waiting, noLonger, reasons(waiting))
	}
	// It stays pending: pci-a is not certified, pci-b is full. (Its
	// message names the missing certification, or, where Compliance hands
	// the scheduler its only candidates, Compliance as what the other
	// nodes failed.)
	if msg, err := testenv.WaitForPodUnschedulable(ctx, c, ns, waiting, 30*time.Second); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(msg, "missing certification pci-dss") && !strings.Contains(msg, "[Compliance]") {
		t.Errorf("%s unschedulable with %q, want it to name the missing certification or Compliance", waiting, msg)
	}
	time.Sleep(2 * time.Second)
	if p, err := c.CoreV1().Pods(ns).Get(ctx, waiting, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if p.Spec.NodeName != "" {
		t.Fatalf("%s bound to %s, want it pending", waiting, p.Spec.NodeName)
	}

	// A certified node with room: the member binds there.
	certified("pci-c")
	if node, err := testenv.WaitForPodBound(ctx, c, ns, waiting, 30*time.Second); err != nil {
		t.Fatal(err)
	} else if node != "pci-c" {
		t.Errorf("%s bound to %s, want pci-c", waiting, node)
	}
	if name := boundToA.Load(); name != nil {
		t.Errorf("%s was bound to pci-a after it lost its certification", name)
	}
}

// A regulated pod running on a node that loses its certification gets one
// CertificationLapsed warning, and is not evicted.
func TestComplianceLapsedRunningPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	c := env.Client
	certKey := certPrefix + "pci-dss"
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "pci-x", Labels: map[string]string{certKey: "2099-12-31"}}); err != nil {
		t.Fatal(err)
	}
	const ns = "cards"
	if err := testenv.CreateNamespace(ctx, c, ns, map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: "charge", SchedulerName: plugins.SchedulerName, CPU: "100m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.WaitForPodBound(ctx, c, ns, "charge", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := testenv.SetNodeLabel(ctx, c, "pci-x", certKey, "", true); err != nil {
		t.Fatal(err)
	}
	note, err := testenv.WaitForPodEvent(ctx, c, ns, "charge", compliance.EventReasonCertificationLapsed,
		"node pci-x no longer meets the pod's compliance requirements: missing certification pci-dss", 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("lapse: %s", note)
	// Another label change on the lapsed node does not warn again.
	if err := testenv.SetNodeLabel(ctx, c, "pci-x", "team", "payments", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second)
	evs, err := testenv.PodEvents(ctx, c, ns, "charge", compliance.EventReasonCertificationLapsed)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || (evs[0].Series != nil && evs[0].Series.Count > 1) {
		t.Errorf("%d CertificationLapsed events (%+v), want one", len(evs), evs)
	}
	if p, err := c.CoreV1().Pods(ns).Get(ctx, "charge", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	} else if p.DeletionTimestamp != nil {
		t.Error("the lapsed pod is being deleted; locus does not evict")
	}
}

// watchScheduledMessages records the PodScheduled condition messages of the
// namespace's pods, in order, from a watch started now; the function it
// returns lists one pod's.
func watchScheduledMessages(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string) func(pod string) []string {
	t.Helper()
	w, err := c.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[string][]string{}
	go func() {
		defer w.Stop()
		for ev := range w.ResultChan() {
			p, ok := ev.Object.(*v1.Pod)
			if !ok {
				continue
			}
			if _, cond := podutil.GetPodCondition(&p.Status, v1.PodScheduled); cond != nil && cond.Message != "" {
				mu.Lock()
				if msgs := seen[p.Name]; len(msgs) == 0 || msgs[len(msgs)-1] != cond.Message {
					seen[p.Name] = append(msgs, cond.Message)
				}
				mu.Unlock()
			}
		}
	}()
	return func(pod string) []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen[pod])
	}
}
