package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// Pods whose requests are all explicit zeros (GPU-optional charts make
// them), bound by the default scheduler and deleted after another pod of
// their namespace, crashed every locus replica's quota cache. The scheduler
// runs in this test's process: a panic fails the test.
func TestZeroRequestPodsDoNotCrash(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 1, "8")
	e.quota(ctx, t, "charts", "4", "4")
	for _, spec := range []testenv.PodSpec{
		{Namespace: "charts", Name: "zero", SchedulerName: v1.DefaultSchedulerName, CPU: "0", Memory: "0"},
		{Namespace: "charts", Name: "one", SchedulerName: v1.DefaultSchedulerName, CPU: "1", Memory: "1Gi"},
	} {
		if _, err := testenv.CreatePod(ctx, e.Client, spec); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.WaitForPodBound(ctx, e.Client, spec.Namespace, spec.Name, 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.waitUsedCPU(ctx, "charts", "1", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	forceDelete(ctx, t, e.Client, "charts", "one")
	forceDelete(ctx, t, e.Client, "charts", "zero")
	if err := e.waitUsedCPU(ctx, "charts", "0", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	// locus still schedules, with the right count.
	createPods(ctx, t, e.Client, "charts", "after", 5, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "charts", "", 4, 30*time.Second)
	if err := e.waitUsedCPU(ctx, "charts", "4", 10*time.Second); err != nil {
		t.Fatal(err)
	}
}

// While any quota borrows, all quotas together stay within the sum of their
// min. Lender min 6, borrower min 2 max 8 using 8 on a roomy cluster: the
// lender's four 1-CPU pods each reclaim exactly one borrower pod.
func TestAggregateReclaimsExactlyWhatIsNeeded(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 4, "8") // 32 CPUs: nodes never run out
	if err := testenv.StartPodReaper(ctx, e.Client); err != nil {
		t.Fatal(err)
	}
	e.quota(ctx, t, "lender", "6", "6")
	e.quota(ctx, t, "borrower", "2", "8")
	createPods(ctx, t, e.Client, "borrower", "b", 8, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "borrower", "", 8, 60*time.Second)

	createPods(ctx, t, e.Client, "lender", "l", 4, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "lender", "", 4, 90*time.Second)
	time.Sleep(2 * time.Second) // room for an extra preemption to show
	waitBound(ctx, t, e.Client, "borrower", "", 4, 10*time.Second)
	all, err := e.Client.CoreV1().Pods("borrower").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 4 {
		t.Errorf("borrower has %d pods left, want exactly 4 (4 reclaimed, nothing else)", len(all.Items))
	}
	if err := e.waitUsedCPU(ctx, "lender", "4", 10*time.Second); err != nil {
		t.Error(err)
	}
	if err := e.waitUsedCPU(ctx, "borrower", "4", 10*time.Second); err != nil {
		t.Error(err)
	}
}

// A Spark driver creates its executors after it runs. Two jobs (PodGroups
// with minMember 1 and minResources of 5 CPU) under a quota of max 8: the
// test acts as each driver. Job 1's driver binds and holds its executors'
// share; its executors, created afterwards, bind without a Permit barrier;
// job 2's driver waits, naming the numbers, until job 1's pods are gone.
func TestDriverCreatesExecutors(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 2, "8")
	const ns = "spark"
	e.quota(ctx, t, ns, "8", "8")
	for _, job := range []string{"job-1", "job-2"} {
		if _, err := e.sched.SchedulingV1alpha1().PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: job},
			Spec: schedv1alpha1.PodGroupSpec{MinMember: 1, ScheduleTimeoutSeconds: ptr.To[int32](30),
				MinResources: v1.ResourceList{v1.ResourceCPU: resource.MustParse("5")}},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	label := func(job string) map[string]string { return map[string]string{schedv1alpha1.PodGroupLabel: job} }

	createPods(ctx, t, e.Client, ns, "job-1-driver", 1, "1", label("job-1"), plugins.SchedulerName)
	waitBound(ctx, t, e.Client, ns, "job-1", 1, 30*time.Second)
	// Job 1 holds its whole minResources now: job 2's driver waits.
	createPods(ctx, t, e.Client, ns, "job-2-driver", 1, "1", label("job-2"), plugins.SchedulerName)
	if msg, err := testenv.WaitForPodUnschedulable(ctx, e.Client, ns, "job-2-driver-00", 30*time.Second); err != nil || !strings.Contains(msg, "gang job-2 needs 5") {
		t.Fatalf("job-2's driver: reason %q (%v), want one naming the gang's 5 CPUs", msg, err)
	}
	// Job 1's driver creates its executors.
	executors := createPods(ctx, t, e.Client, ns, "job-1-exec", 4, "1", label("job-1"), plugins.SchedulerName)
	waitBound(ctx, t, e.Client, ns, "job-1", 5, 30*time.Second)
	if err := e.waitUsedCPU(ctx, ns, "5", 10*time.Second); err != nil {
		t.Error(err)
	}
	if pods, _ := boundPods(ctx, e.Client, ns, "job-2"); len(pods) != 0 {
		t.Fatalf("job-2 has %d pods bound while job-1 runs", len(pods))
	}
	// Job 1 ends.
	forceDelete(ctx, t, e.Client, ns, append(executors, "job-1-driver-00")...)
	waitBound(ctx, t, e.Client, ns, "job-2", 1, 30*time.Second)
	createPods(ctx, t, e.Client, ns, "job-2-exec", 4, "1", label("job-2"), plugins.SchedulerName)
	waitBound(ctx, t, e.Client, ns, "job-2", 5, 30*time.Second)
	if err := e.waitUsedCPU(ctx, ns, "5", 10*time.Second); err != nil {
		t.Error(err)
	}
}

// A namespace with two ElasticQuotas is limited by both (the tightest
// wins), each gets a MultipleQuotas warning and its own status, and
// deleting one leaves the other in force.
func TestSeveralQuotasInANamespace(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 1, "16")
	const ns = "shared"
	e.quota(ctx, t, ns, "4", "4") // "quota"
	if _, err := e.sched.SchedulingV1alpha1().ElasticQuotas(ns).Create(ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tight"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	names := createPods(ctx, t, e.Client, ns, "p", 6, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, ns, "", 2, 30*time.Second)
	var waiting string
	for _, n := range names {
		if msg, err := testenv.WaitForPodUnschedulable(ctx, e.Client, ns, n, 2*time.Second); err == nil {
			waiting = msg
			break
		}
	}
	if !strings.Contains(waiting, "quota shared/tight") {
		t.Errorf("waiting pods' reason %q, want one naming shared/tight", waiting)
	}
	for _, eq := range []string{"quota", "tight"} {
		if err := waitQuotaEvent(ctx, e, ns, eq, locusv1alpha1.EventReasonMultipleQuotas); err != nil {
			t.Error(err)
		}
		if err := e.waitQuotaUsed(ctx, ns, eq, "2", 15*time.Second); err != nil {
			t.Error(err)
		}
	}
	if err := e.sched.SchedulingV1alpha1().ElasticQuotas(ns).Delete(ctx, "tight", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitBound(ctx, t, e.Client, ns, "", 4, 30*time.Second)
	time.Sleep(time.Second)
	if pods, _ := boundPods(ctx, e.Client, ns, ""); len(pods) != 4 {
		t.Errorf("%d pods bound after deleting the tight quota, want 4 (the other quota's max)", len(pods))
	}
	if err := e.waitQuotaUsed(ctx, ns, "quota", "4", 15*time.Second); err != nil {
		t.Error(err)
	}
}

func waitQuotaEvent(ctx context.Context, e *quotaEnv, ns, name, reason string) error {
	return wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		list, err := e.Client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, ev := range list.Items {
			if ev.Reason == reason && ev.Regarding.Kind == "ElasticQuota" && ev.Regarding.Name == name {
				return true, nil
			}
		}
		return false, nil
	})
}

// Priority preemption does not cross quotas: on a full node, a
// high-priority pod of a quota that borrows (min 0) must not preempt the
// pods of a quota that is under its min, whatever their priority.
func TestPriorityPreemptionDoesNotCrossQuotas(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 1, "4")
	if err := testenv.StartPodReaper(ctx, e.Client); err != nil {
		t.Fatal(err)
	}
	for name, value := range map[string]int32{"cross-low": 10, "cross-high": 10000} {
		if _, err := e.Client.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
			ObjectMeta: metav1.ObjectMeta{Name: name}, Value: value,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	e.quota(ctx, t, "guaranteed", "8", "8") // under its min while it uses the node
	e.quota(ctx, t, "borrowing", "0", "8")
	for i := 0; i < 4; i++ {
		p := testenv.NewPod(testenv.PodSpec{Namespace: "guaranteed", Name: fmt.Sprintf("g-%d", i), SchedulerName: plugins.SchedulerName, CPU: "1"})
		p.Spec.PriorityClassName = "cross-low"
		if _, err := e.Client.CoreV1().Pods("guaranteed").Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitBound(ctx, t, e.Client, "guaranteed", "", 4, 30*time.Second) // the node is full
	p := testenv.NewPod(testenv.PodSpec{Namespace: "borrowing", Name: "urgent", SchedulerName: plugins.SchedulerName, CPU: "1"})
	p.Spec.PriorityClassName = "cross-high"
	if _, err := e.Client.CoreV1().Pods("borrowing").Create(ctx, p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.WaitForPodUnschedulable(ctx, e.Client, "borrowing", "urgent", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // several attempts, each with preemption
	all, err := e.Client.CoreV1().Pods("guaranteed").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range all.Items {
		if p.DeletionTimestamp != nil {
			t.Errorf("pod %s of a quota under its min was preempted for a borrowing pod", p.Name)
		}
	}
	if len(all.Items) != 4 {
		t.Errorf("guaranteed has %d pods, want its 4", len(all.Items))
	}
}
