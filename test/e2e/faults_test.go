package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
	"locus.dev/locus/test/invariants"
)

// What upstream kube-scheduler (and so locus-scheduler) logs, then exits 1,
// when it can no longer renew its lease: a scheduler that is not sure it
// leads must stop binding. The Deployment restarts it.
const logLeaseLost = "Leaderelection lost"

// faultEnv is a control plane with the CRDs, a quota namespace and the
// invariant checker, for tests that run locus-scheduler processes and
// break something under them.
type faultEnv struct {
	ctx   context.Context
	cp    *testenv.ControlPlane
	sc    schedclient.Interface
	check *invariants.Checker
}

func startFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	return newFaultEnv(t, testenv.StartControlPlane(t, testenv.Options{}))
}

func newFaultEnv(t *testing.T, cp *testenv.ControlPlane) *faultEnv {
	t.Helper()
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	if err := testenv.CreateNamespace(ctx, cp.Client, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	sc, err := schedclient.NewForConfig(crdconfig.JSON(cp.Config))
	if err != nil {
		t.Fatal(err)
	}
	e := &faultEnv{ctx: ctx, cp: cp, sc: sc}
	e.check = invariants.Watch(ctx, t, cp.Client, sc, invariants.Options{})
	return e
}

// config is the shipped scheduler configuration reaching the API server at
// host (the server itself, or a proxy in front of it).
func (e *faultEnv) config(t *testing.T, host string) string {
	t.Helper()
	cfg := rest.CopyConfig(e.cp.Config)
	cfg.Host = "https://" + host
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := testenv.WriteKubeconfig(cfg, path); err != nil {
		t.Fatal(err)
	}
	return configWithKubeconfig(t, manifests.SchedulerConfig, path)
}

func (e *faultEnv) apiServerAddr() string { return strings.TrimPrefix(e.cp.Config.Host, "https://") }

func (e *faultEnv) node(t *testing.T, name, cpu string) {
	t.Helper()
	if _, err := testenv.CreateNode(e.ctx, e.cp.Client, testenv.NodeSpec{Name: name, CPU: cpu, Memory: "64Gi"}); err != nil {
		t.Fatal(err)
	}
}

func (e *faultEnv) quota(t *testing.T, ns, min, max string) {
	t.Helper()
	if err := testenv.CreateNamespace(e.ctx, e.cp.Client, ns, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sc.SchedulingV1alpha1().ElasticQuotas(ns).Create(e.ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse(min)},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse(max)},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (e *faultEnv) pod(t *testing.T, spec testenv.PodSpec) {
	t.Helper()
	if spec.SchedulerName == "" {
		spec.SchedulerName = plugins.SchedulerName
	}
	if _, err := testenv.CreatePod(e.ctx, e.cp.Client, spec); err != nil {
		t.Fatal(err)
	}
}

func (e *faultEnv) waitBound(t *testing.T, ns, name string, timeout time.Duration, replicas ...*locusProcess) {
	t.Helper()
	if _, err := testenv.WaitForPodBound(e.ctx, e.cp.Client, ns, name, timeout); err != nil {
		t.Fatalf("%v\n%s", err, dump(replicas))
	}
}

// usedCPU is status.used.cpu of the namespace's quota, "" if not set.
func (e *faultEnv) usedCPU(ns string) string {
	eq, err := e.sc.SchedulingV1alpha1().ElasticQuotas(ns).Get(e.ctx, "quota", metav1.GetOptions{})
	if err != nil {
		return "error: " + err.Error()
	}
	if q, ok := eq.Status.Used[v1.ResourceCPU]; ok {
		return q.String()
	}
	return ""
}

func (e *faultEnv) waitUsedCPU(t *testing.T, ns, want string, replicas ...*locusProcess) {
	t.Helper()
	var got string
	if err := wait.PollUntilContextTimeout(e.ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		got = e.usedCPU(ns)
		return got == want, nil
	}); err != nil {
		t.Fatalf("quota %s status.used.cpu is %q, want %q\n%s", ns, got, want, dump(replicas))
	}
}

// boundIn lists the names of the namespace's bound pods.
func (e *faultEnv) boundIn(t *testing.T, ns string) []string {
	t.Helper()
	pods, err := e.cp.Client.CoreV1().Pods(ns).List(e.ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pods.Items {
		if p.Spec.NodeName != "" {
			out = append(out, p.Name)
		}
	}
	return out
}

// waitLeader waits until one of the replicas has logged that it took the
// lease, and returns it.
func waitLeader(ctx context.Context, t *testing.T, timeout time.Duration, replicas ...*locusProcess) *locusProcess {
	t.Helper()
	var leader *locusProcess
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		for _, r := range replicas {
			if r.exitedEarly() {
				continue
			}
			if r.logged(logAcquired) {
				if leader != nil && leader != r {
					return false, fmt.Errorf("%s and %s both logged %q", leader.name, r.name, logAcquired)
				}
				leader = r
			}
		}
		return leader != nil, nil
	})
	if err != nil {
		t.Fatalf("waiting for a leader: %v\n%s", err, dump(replicas))
	}
	return leader
}

// watchProcess fails the test (through the invariant checker) if the
// process exits on its own.
func (e *faultEnv) watchProcess(p *locusProcess) {
	done := make(chan error, 1)
	go func() {
		<-p.exited
		if p.killed.Load() {
			close(done)
			return
		}
		done <- fmt.Errorf("exit: %v; log tail:\n%s", p.cmd.ProcessState, tail(p.stderr.String()))
	}()
	e.check.Process(p.name, done)
}

// twoReplicas starts two replicas of the shipped configuration and waits
// for one to lead; the standby is watched (it must not exit).
func (e *faultEnv) twoReplicas(t *testing.T) (replicas []*locusProcess, leader, standby *locusProcess) {
	t.Helper()
	config := e.config(t, e.apiServerAddr())
	replicas = []*locusProcess{startLocus(t, "replica-a", config), startLocus(t, "replica-b", config)}
	leader = waitLeader(e.ctx, t, 60*time.Second, replicas...)
	standby = replicas[0]
	if standby == leader {
		standby = replicas[1]
	}
	e.watchProcess(standby)
	return replicas, leader, standby
}

// kill SIGKILLs the process, as a node failure or an OOM kill would.
func (p *locusProcess) kill(t *testing.T) {
	t.Helper()
	p.killed.Store(true)
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.exited
}

// klogTime is the time in a klog header ("I1130 12:30:43.701894 ...") of the
// first line that contains s, in the process's log.
var klogHeader = regexp.MustCompile(`^[IWEF](\d{4} \d{2}:\d{2}:\d{2}\.\d{6})`)

func (p *locusProcess) loggedAt(s string) (time.Time, bool) {
	for _, line := range strings.Split(p.stderr.String(), "\n") {
		if !strings.Contains(line, s) {
			continue
		}
		m := klogHeader.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		// klog's header has no year; it writes local time.
		ts, err := time.ParseInLocation("0102 15:04:05.000000", m[1], time.Local)
		if err != nil {
			continue
		}
		return ts.AddDate(time.Now().Year(), 0, 0), true
	}
	return time.Time{}, false
}

// TestLeaderKilledWhileGangWaits: two replicas; the leader holds five of a
// gang's eight members at Permit (there is room for five) and is
// SIGKILLed. After the failover the gang binds whole, and status.used
// equals the bound members.
func TestLeaderKilledWhileGangWaits(t *testing.T) {
	e := startFaultEnv(t)
	e.node(t, "node-0", "5")
	replicas, leader, standby := e.twoReplicas(t)

	const ns = "batch"
	e.quota(t, ns, "8", "16")
	if _, err := e.sc.SchedulingV1alpha1().PodGroups(ns).Create(e.ctx, &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gang"},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: 8, ScheduleTimeoutSeconds: ptr.To[int32](120)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		e.pod(t, testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("member-%d", i), CPU: "1",
			Labels: map[string]string{schedv1alpha1.PodGroupLabel: "gang"}})
	}
	// Five reserved and held at Permit: the leader's count.
	e.waitUsedCPU(t, ns, "5", replicas...)
	if bound := e.boundIn(t, ns); len(bound) != 0 {
		t.Fatalf("members %v bound before the gang was complete", bound)
	}

	leader.kill(t)
	e.node(t, "node-1", "8")
	for i := range 8 {
		e.waitBound(t, ns, fmt.Sprintf("member-%d", i), 90*time.Second, replicas...)
	}
	if !standby.logged(logAcquired) {
		t.Fatalf("the gang bound, but %s never logged taking the lease\n%s", standby.name, dump(replicas))
	}
	e.waitUsedCPU(t, ns, "8", replicas...)
	if bound := e.boundIn(t, ns); len(bound) != 8 {
		t.Errorf("bound members %v, want all 8", bound)
	}
}

// TestLeaderKilledMidReclaim: a lender namespace under its min needs room
// that a borrower holds. The leader starts the reclaim (its victims are
// terminating: no kubelet confirms here until the test starts the pod
// reaper) and is SIGKILLed before its pod binds. The standby finishes the
// job: the lender's pod binds, exactly as many borrower pods as were needed
// are gone, and no quota rule breaks on the way.
func TestLeaderKilledMidReclaim(t *testing.T) {
	e := startFaultEnv(t)
	e.node(t, "node-0", "4")
	replicas, leader, standby := e.twoReplicas(t)

	// The borrower (min 0) fills the node, borrowing the lender's unused
	// min; the lender (min 4) has nothing yet.
	e.quota(t, "borrower", "0", "4")
	e.quota(t, "lender", "4", "4")
	for i := range 4 {
		e.pod(t, testenv.PodSpec{Namespace: "borrower", Name: fmt.Sprintf("b-%d", i), CPU: "1"})
	}
	for i := range 4 {
		e.waitBound(t, "borrower", fmt.Sprintf("b-%d", i), 30*time.Second, replicas...)
	}

	// The lender's pod needs two CPUs: two borrower pods must go.
	e.pod(t, testenv.PodSpec{Namespace: "lender", Name: "claim", CPU: "2"})
	var terminating []string
	err := wait.PollUntilContextTimeout(e.ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := e.cp.Client.CoreV1().Pods("borrower").List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		terminating = nil
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				terminating = append(terminating, p.Name)
			}
		}
		return len(terminating) > 0, nil
	})
	if err != nil {
		t.Fatalf("the leader started no reclaim: %v\n%s", err, dump(replicas))
	}
	leader.kill(t)
	t.Logf("killed %s with borrower pods %v terminating and the lender's pod not bound", leader.name, terminating)
	// Kubelets would now confirm the victims' deaths.
	if err := testenv.StartPodReaper(e.ctx, e.cp.Client); err != nil {
		t.Fatal(err)
	}
	e.waitBound(t, "lender", "claim", 90*time.Second, replicas...)
	if !standby.logged(logAcquired) {
		t.Fatalf("the pod bound, but %s never logged taking the lease\n%s", standby.name, dump(replicas))
	}
	if left := e.boundIn(t, "borrower"); len(left) != 2 {
		t.Errorf("borrower pods left %v, want 2: the reclaim took more than it needed, or too little", left)
	}
	e.waitUsedCPU(t, "lender", "2", replicas...)
	e.waitUsedCPU(t, "borrower", "2", replicas...)
}

// supervised runs locus-scheduler the way a Deployment's pod does: when the
// process exits, it is started again (after a second). Every run's log is
// kept.
type supervised struct {
	t      *testing.T
	name   string
	config string
	runs   chan *locusProcess
	all    []*locusProcess
	stop   chan struct{}
}

func supervise(t *testing.T, name, config string) *supervised {
	s := &supervised{t: t, name: name, config: config, runs: make(chan *locusProcess, 100), stop: make(chan struct{})}
	first := startLocus(t, fmt.Sprintf("%s#1", name), config)
	s.all = append(s.all, first)
	go func() {
		current := first
		for n := 2; ; n++ {
			select {
			case <-s.stop:
				return
			case <-current.exited:
			}
			select {
			case <-s.stop:
				return
			case <-time.After(time.Second):
			}
			p, err := launchLocus(fmt.Sprintf("%s#%d", name, n), config)
			if err != nil {
				return
			}
			s.runs <- p
			current = p
		}
	}()
	t.Cleanup(func() {
		close(s.stop)
		for _, p := range s.processes() {
			p.killed.Store(true)
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return s
}

// processes are the runs so far, first to last.
func (s *supervised) processes() []*locusProcess {
	for {
		select {
		case p := <-s.runs:
			s.all = append(s.all, p)
		default:
			return s.all
		}
	}
}

func (s *supervised) current() *locusProcess {
	ps := s.processes()
	return ps[len(ps)-1]
}

// noPanics fails the test if any run's log shows a panic.
func noPanics(t *testing.T, ps []*locusProcess) {
	t.Helper()
	for _, p := range ps {
		if strings.Contains(p.stderr.String(), "panic:") {
			t.Errorf("%s panicked:\n%s", p.name, tail(p.stderr.String()))
		}
	}
}

// TestAPIServerUnreachable: the API server cannot be reached for 30 seconds
// while pods wait. locus-scheduler cannot renew its lease, says so and exits
// (as upstream kube-scheduler does: a scheduler unsure that it leads must
// not bind); restarted as its Deployment would, it waits for the API
// server, takes the lease again once it is back, and places the pods created
// during the outage. Quota stays exact throughout.
func TestAPIServerUnreachable(t *testing.T) {
	e := startFaultEnv(t)
	e.node(t, "node-0", "8")
	proxy := testenv.StartProxy(t, e.apiServerAddr())
	s := supervise(t, "locus", e.config(t, proxy.Addr))
	waitLeader(e.ctx, t, 60*time.Second, s.current())

	const ns = "etl"
	e.quota(t, ns, "4", "4")
	for i := range 2 {
		e.pod(t, testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("before-%d", i), CPU: "1"})
		e.waitBound(t, ns, fmt.Sprintf("before-%d", i), 30*time.Second, s.processes()...)
	}

	proxy.Cut()
	cutAt := time.Now()
	// Created during the outage: two fit the quota, the third does not.
	for i := range 3 {
		e.pod(t, testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("during-%d", i), CPU: "1"})
	}
	first := s.processes()[0]
	select {
	case <-first.exited:
		t.Logf("%s exited %v after the cut", first.name, time.Since(cutAt).Round(time.Second))
	case <-time.After(30 * time.Second):
		t.Fatalf("%s still runs 30s into the outage; it cannot have renewed its lease\n%s", first.name, dump(s.processes()))
	}
	if !first.logged(logLeaseLost) {
		t.Errorf("%s exited without saying it lost its lease:\n%s", first.name, tail(first.stderr.String()))
	}
	if bound := e.boundIn(t, ns); len(bound) != 2 {
		t.Errorf("pods bound during the outage: %v, want only the 2 from before", bound)
	}
	time.Sleep(time.Until(cutAt.Add(30 * time.Second)))
	proxy.Restore()

	for i := range 2 {
		e.waitBound(t, ns, fmt.Sprintf("during-%d", i), 90*time.Second, s.processes()...)
	}
	e.waitUsedCPU(t, ns, "4", s.processes()...)
	if bound := e.boundIn(t, ns); len(bound) != 4 {
		t.Errorf("bound %v, want 4 (the quota's max)", bound)
	}
	noPanics(t, s.processes())
	t.Logf("runs: %d", len(s.processes()))
}

// TestNetworkHiccupBetweenReplicas: two replicas, each with its own path to
// the API server. The leader's path breaks for 25 seconds. It must stop
// leading before the other replica starts: its "lease lost" comes before
// the other's "acquired". Pods keep being placed, each once, and the old
// leader, restarted, stands by when its network is back.
func TestNetworkHiccupBetweenReplicas(t *testing.T) {
	e := startFaultEnv(t)
	e.node(t, "node-0", "32")
	proxies := []*testenv.Proxy{testenv.StartProxy(t, e.apiServerAddr()), testenv.StartProxy(t, e.apiServerAddr())}
	sets := []*supervised{supervise(t, "replica-a", e.config(t, proxies[0].Addr)), supervise(t, "replica-b", e.config(t, proxies[1].Addr))}
	leader := waitLeader(e.ctx, t, 60*time.Second, sets[0].current(), sets[1].current())
	li := 0
	if leader == sets[1].current() {
		li = 1
	}
	other := sets[1-li]
	all := func() []*locusProcess { return append(sets[0].processes(), sets[1].processes()...) }

	const ns = "stream"
	if err := testenv.CreateNamespace(e.ctx, e.cp.Client, ns, nil); err != nil {
		t.Fatal(err)
	}
	// A pod every half second for the whole test.
	created := make(chan int, 1)
	go func() {
		n := 0
		defer func() { created <- n }()
		for ; n < 80; n++ {
			select {
			case <-e.ctx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
			if _, err := testenv.CreatePod(e.ctx, e.cp.Client, testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("p-%03d", n),
				SchedulerName: plugins.SchedulerName, CPU: "100m"}); err != nil {
				return
			}
		}
	}()

	time.Sleep(3 * time.Second)
	proxies[li].Cut()
	cutAt := time.Now()
	var lostAt, acquiredAt time.Time
	err := wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		var ok1, ok2 bool
		lostAt, ok1 = leader.loggedAt(logLeaseLost)
		for _, p := range other.processes() {
			if acquiredAt, ok2 = p.loggedAt(logAcquired); ok2 {
				break
			}
		}
		return ok1 && ok2, nil
	})
	if err != nil {
		t.Fatalf("no failover after cutting %s off: %v\n%s", leader.name, err, dump(all()))
	}
	t.Logf("%s lost its lease %v after the cut; the other replica took it %v after that",
		leader.name, lostAt.Sub(cutAt).Round(100*time.Millisecond), acquiredAt.Sub(lostAt).Round(100*time.Millisecond))
	if !lostAt.Before(acquiredAt) {
		t.Errorf("two leaders at once: the new leader took the lease at %v, the old one lost it only at %v", acquiredAt, lostAt)
	}
	time.Sleep(time.Until(cutAt.Add(25 * time.Second)))
	proxies[li].Restore()

	n := <-created
	for i := 0; i < n; i++ {
		e.waitBound(t, ns, fmt.Sprintf("p-%03d", i), 60*time.Second, all()...)
	}
	// The old leader, restarted, stands by: it tries for the lease but does
	// not take it while the other renews.
	err = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return sets[li].current() != leader && sets[li].current().logged(logAttempting), nil
	})
	if err != nil {
		t.Fatalf("%s did not come back as a standby: %v\n%s", sets[li].name, err, dump(all()))
	}
	if sets[li].current().logged(logAcquired) {
		t.Errorf("%s took the lease back while the other replica held it\n%s", sets[li].current().name, dump(all()))
	}
	noPanics(t, all())
	t.Logf("%d pods placed, each once (invariant checker)", n)
}

// TestAPIServerRestart: the kube-apiserver is stopped and started again (on
// the same etcd) while pods are created and scheduled. Every watch breaks;
// locus-scheduler (restarted as its Deployment would, should it exit)
// relists, places every pod created before, during and after the restart
// exactly once, and the quota's count stays exact.
func TestAPIServerRestart(t *testing.T) {
	r := testenv.StartRestartableControlPlane(t, testenv.Options{})
	e := newFaultEnv(t, r.ControlPlane)
	e.node(t, "node-0", "32")
	s := supervise(t, "locus", e.config(t, r.Proxy.Addr))
	waitLeader(e.ctx, t, 60*time.Second, s.current())

	const plain, limited = "web", "etl"
	if err := testenv.CreateNamespace(e.ctx, e.cp.Client, plain, nil); err != nil {
		t.Fatal(err)
	}
	e.quota(t, limited, "10", "10")
	// Two pods a second for 20 seconds, half of them into the quota of 10;
	// a create that fails while the server is down is tried again.
	done := make(chan int, 1)
	go func() {
		n := 0
		defer func() { done <- n }()
		for ; n < 40; n++ {
			ns := plain
			if n%2 == 1 {
				ns = limited
			}
			spec := testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("p-%02d", n), SchedulerName: plugins.SchedulerName, CPU: "1"}
			_ = wait.PollUntilContextTimeout(e.ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
				_, err := testenv.CreatePod(ctx, e.cp.Client, spec)
				return err == nil || strings.Contains(err.Error(), "already exists"), nil
			})
			time.Sleep(500 * time.Millisecond)
		}
	}()
	time.Sleep(6 * time.Second)
	began := time.Now()
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted in %v", time.Since(began).Round(100*time.Millisecond))
	n := <-done
	if n != 40 {
		t.Fatalf("created %d pods, want 40", n)
	}
	for i := 0; i < n; i += 2 {
		e.waitBound(t, plain, fmt.Sprintf("p-%02d", i), 90*time.Second, s.processes()...)
	}
	e.waitUsedCPU(t, limited, "10", s.processes()...)
	if bound := e.boundIn(t, limited); len(bound) != 10 {
		t.Errorf("bound in %s: %v, want 10 (its quota)", limited, bound)
	}
	noPanics(t, s.processes())
	t.Logf("scheduler runs: %d", len(s.processes()))
}
