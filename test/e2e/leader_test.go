package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// What client-go's LeaderElector logs (at the default verbosity) when it
// starts trying for the lease, which kube-scheduler does once its informers
// have synced, and when it has taken it, right before it starts leading.
const (
	logAttempting = "attempting to acquire leader lease kube-system/locus-scheduler"
	logAcquired   = "successfully acquired lease kube-system/locus-scheduler"
)

// TestStandbyWritesNothing runs two replicas of bin/locus-scheduler with the
// shipped configuration (leader election on the locus-scheduler Lease), as
// the Deployment does. While the leader holds two members of a three-member
// gang at Permit (the third has no room), the ElasticQuota's status.used
// stays at the leader's count: a standby that wrote its own view, which has
// no reserved pods, would make it flap every status interval. When the
// leader is killed and room is made for the third member, the standby takes
// the lease, schedules the whole gang (the dead leader bound none of it) and
// writes status.used.
func TestStandbyWritesNothing(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{})
	c := cp.Client
	if err := testenv.CreateNamespace(ctx, c, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	sc, err := schedclient.NewForConfig(crdconfig.JSON(cp.Config))
	if err != nil {
		t.Fatal(err)
	}
	// Room for two of the gang's three one-CPU members.
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "node-0", CPU: "2", Memory: "32Gi"}); err != nil {
		t.Fatal(err)
	}

	// Two replicas. Neither serves HTTPS (--secure-port=0, as in
	// TestBinarySchedulesBesideKubeScheduler), so both run on this host
	// without contending for a port.
	config := configWithKubeconfig(t, manifests.SchedulerConfig, cp.KubeconfigFile(t))
	replicas := []*locusProcess{startLocus(t, "replica-a", config), startLocus(t, "replica-b", config)}

	// Both replicas run (informers synced, trying for the lease) and exactly
	// one leads. The Lease's holderIdentity is the hostname plus a UUID that
	// neither process logs, and both share the hostname, so the leader is
	// told by client-go's log line on taking the lease: a standby does not
	// log it until it takes the lease itself.
	var leaderIdx int
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) {
		var leading []int
		for i, r := range replicas {
			if r.exitedEarly() {
				return false, fmt.Errorf("%s exited", r.name)
			}
			if !r.logged(logAttempting) {
				return false, nil
			}
			if r.logged(logAcquired) {
				leading = append(leading, i)
			}
		}
		if len(leading) > 1 {
			return false, fmt.Errorf("both replicas logged %q", logAcquired)
		}
		if len(leading) == 1 {
			leaderIdx = leading[0]
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("waiting for one leader and one standby: %v\n%s", err, dump(replicas))
	}
	leaderProc, standby := replicas[leaderIdx], replicas[1-leaderIdx]
	holder := leaseHolder(ctx, c)
	if holder == "" {
		t.Fatalf("%s logged that it took the lease, but the Lease has no holder", leaderProc.name)
	}
	t.Logf("%s leads (lease holder %s), %s stands by", leaderProc.name, holder, standby.name)

	// A quota and a gang of three. All three members exist (BatchQuota turns
	// away the members of a gang that has fewer than minMember pods, in
	// PreFilter), but only two fit: the leader reserves them and holds them
	// at Permit, and the third waits for room.
	const ns = "batch"
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
	if _, err := sc.SchedulingV1alpha1().PodGroups(ns).Create(ctx, &schedv1alpha1.PodGroup{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gang"},
		Spec:       schedv1alpha1.PodGroupSpec{MinMember: 3, ScheduleTimeoutSeconds: ptr.To[int32](60)},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	member := func(i int) testenv.PodSpec {
		return testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("gang-%d", i), SchedulerName: plugins.SchedulerName,
			Labels: map[string]string{schedv1alpha1.PodGroupLabel: "gang"}, CPU: "1"}
	}
	for i := range 3 {
		if _, err := testenv.CreatePod(ctx, c, member(i)); err != nil {
			t.Fatal(err)
		}
	}

	usedCPU := func(ctx context.Context) (string, error) {
		eq, err := sc.SchedulingV1alpha1().ElasticQuotas(ns).Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		q, ok := eq.Status.Used[v1.ResourceCPU]
		if !ok {
			return "", nil
		}
		return q.String(), nil
	}
	waitUsedCPU := func(want string, timeout time.Duration) {
		t.Helper()
		var got string
		err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
			var err error
			got, err = usedCPU(ctx)
			return got == want, err
		})
		if err != nil {
			t.Fatalf("ElasticQuota %s/quota status.used.cpu is %q, want %q: %v\n%s", ns, got, want, err, dump(replicas))
		}
	}

	// The leader's count: two reserved members, held at Permit.
	waitUsedCPU("2", 30*time.Second)
	// Six status intervals: every sample is the first one.
	var samples []string
	for range 30 {
		got, err := usedCPU(ctx)
		if err != nil {
			t.Fatal(err)
		}
		samples = append(samples, got)
		time.Sleep(200 * time.Millisecond)
	}
	for _, s := range samples {
		if s != samples[0] {
			t.Errorf("status.used.cpu flapped while %s held the gang at Permit; samples every 200ms: %v", leaderProc.name, samples)
			break
		}
	}
	for i := range 3 {
		p, err := c.CoreV1().Pods(ns).Get(ctx, member(i).Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Fatalf("gang member %s bound to %s before the gang was complete", p.Name, p.Spec.NodeName)
		}
	}

	// The leader dies without releasing the lease; a node with room for the
	// third member comes.
	if err := leaderProc.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-leaderProc.exited
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "node-1", CPU: "8", Memory: "32Gi"}); err != nil {
		t.Fatal(err)
	}

	// The standby takes over once the lease expires (15s as shipped).
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		if standby.exitedEarly() {
			return false, fmt.Errorf("%s exited", standby.name)
		}
		h := leaseHolder(ctx, c)
		return h != "" && h != holder && standby.logged(logAcquired), nil
	})
	if err != nil {
		t.Fatalf("%s did not take over the lease from %s: %v\n%s", standby.name, holder, err, dump(replicas))
	}
	t.Logf("%s took over (lease holder %s)", standby.name, leaseHolder(ctx, c))

	// It schedules the whole gang, the two members the dead leader held
	// included, and writes the quota's use. (Bound pods stay Pending: no
	// kubelet runs here.)
	for i := range 3 {
		if _, err := testenv.WaitForPodBound(ctx, c, ns, member(i).Name, 60*time.Second); err != nil {
			t.Fatalf("%v\n%s", err, dump(replicas))
		}
	}
	waitUsedCPU("3", 30*time.Second)
}

// locusProcess is one bin/locus-scheduler process.
type locusProcess struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncBuffer
	exited chan struct{}
	// killed is set when the test kills the process on purpose.
	killed atomic.Bool
}

// startLocus starts bin/locus-scheduler with the config file; it is killed
// when the test ends.
func startLocus(t *testing.T, name, config string) *locusProcess {
	t.Helper()
	p, err := launchLocus(name, config)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.killed.Store(true)
		_ = p.cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// launchLocus starts bin/locus-scheduler with the config file; exited
// closes when it ends.
func launchLocus(name, config string) (*locusProcess, error) {
	p := &locusProcess{name: name, stderr: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(filepath.Join(binDir, "locus-scheduler"), "--config", config, "--secure-port=0", "-v=2")
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *locusProcess) logged(s string) bool { return strings.Contains(p.stderr.String(), s) }

func (p *locusProcess) exitedEarly() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// dump is the tail of every replica's log, for failure messages.
func dump(ps []*locusProcess) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "--- %s stderr (tail):\n%s\n", p.name, tail(p.stderr.String()))
	}
	return b.String()
}

// leaseHolder is the holder of the Lease kube-system/locus-scheduler, "" if
// none.
func leaseHolder(ctx context.Context, c kubernetes.Interface) string {
	lease, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return ptr.Deref(lease.Spec.HolderIdentity, "")
}

// syncBuffer is a bytes.Buffer that a process writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
