// Package bench measures scheduling throughput: pods bound per second by
// locus-scheduler against kube-scheduler's default profile and against
// scheduler-plugins' Coscheduling plus CapacityScheduling, on one in-process
// control plane, arms alternating over rounds, against the targets that the README's
// Performance section states.
//
// Without LOCUS_BENCH=1 it runs a smoke size (20 nodes, 50 pods, one round)
// that asserts only that every pod of every arm gets bound. Speed is
// reported, never asserted. See README.md for how to run it.
package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/kubernetes/test/utils/ktesting"

	"locus.dev/locus/pkg/testenv"
)

func init() {
	// k8s.io/kubernetes/test/utils/ktesting (which the in-process
	// kube-apiserver imports) sets klog to -v=5 for unit tests; at that
	// level the API server and the scheduler log every request and every
	// pod, and the logging costs more than what is measured. Errors still
	// show; raise it with "go test ./test/bench -args -v=4".
	ktesting.SetDefaultVerbosity(0)
}

// options is the size of a run; every field has an environment variable.
type options struct {
	Nodes             int     `json:"nodes"`             // LOCUS_BENCH_NODES
	Pods              int     `json:"pods"`              // LOCUS_BENCH_PODS, per arm and round
	Rounds            int     `json:"rounds"`            // LOCUS_BENCH_ROUNDS
	GangSize          int     `json:"gangSize"`          // LOCUS_BENCH_GANG_SIZE
	CertifiedFraction float64 `json:"certifiedFraction"` // LOCUS_BENCH_CERTIFIED: share of nodes certified for pci-dss
	Smoke             bool    `json:"smoke"`
	// Warmup runs the first arm once, unrecorded, before round 1
	// (LOCUS_BENCH_WARMUP; on at measurement size): the first arm in a fresh
	// process meets a small heap and empty API server caches, and ran
	// markedly faster than it did later in the same run.
	Warmup   bool          `json:"warmup"`
	arms     []string      // LOCUS_BENCH_ARMS: short names, comma separated; empty is all
	out      string        // LOCUS_BENCH_OUT: JSON result file
	profiles string        // LOCUS_BENCH_PROFILES: directory for each arm's labelled CPU profile
	timeout  time.Duration // LOCUS_BENCH_TIMEOUT: per arm, until every pod is bound
}

func optionsFromEnv(t *testing.T) options {
	t.Helper()
	o := options{Nodes: 1000, Pods: 2000, Rounds: 3, GangSize: 8, CertifiedFraction: 0.5, Warmup: true}
	if os.Getenv("LOCUS_BENCH") != "1" {
		o = options{Nodes: 20, Pods: 50, Rounds: 1, GangSize: 5, CertifiedFraction: 0.5, Smoke: true}
	}
	envInt := func(key string, dst *int) {
		if v := os.Getenv(key); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				t.Fatalf("%s=%q: want a positive integer", key, v)
			}
			*dst = n
		}
	}
	envInt("LOCUS_BENCH_NODES", &o.Nodes)
	envInt("LOCUS_BENCH_PODS", &o.Pods)
	envInt("LOCUS_BENCH_ROUNDS", &o.Rounds)
	envInt("LOCUS_BENCH_GANG_SIZE", &o.GangSize)
	if v := os.Getenv("LOCUS_BENCH_CERTIFIED"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || f <= 0 || f > 1 {
			t.Fatalf("LOCUS_BENCH_CERTIFIED=%q: want a fraction in (0, 1]", v)
		}
		o.CertifiedFraction = f
	}
	if v := os.Getenv("LOCUS_BENCH_ARMS"); v != "" {
		o.arms = strings.Split(v, ",")
	}
	if v := os.Getenv("LOCUS_BENCH_WARMUP"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			t.Fatalf("LOCUS_BENCH_WARMUP=%q: want true or false", v)
		}
		o.Warmup = b
	}
	o.out = os.Getenv("LOCUS_BENCH_OUT")
	if o.profiles = os.Getenv("LOCUS_BENCH_PROFILES"); o.profiles != "" {
		// Made here rather than found missing after the nodes are created.
		if err := os.MkdirAll(o.profiles, 0o755); err != nil {
			t.Fatalf("LOCUS_BENCH_PROFILES=%q: %v", o.profiles, err)
		}
	}
	// Generous: a stuck arm fails the run rather than hanging it, and even
	// 20 pods/s finishes inside it.
	o.timeout = 2*time.Minute + time.Duration(o.Pods)*50*time.Millisecond
	if v := os.Getenv("LOCUS_BENCH_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			t.Fatalf("LOCUS_BENCH_TIMEOUT=%q: want a positive duration", v)
		}
		o.timeout = d
	}
	if o.Pods < o.GangSize {
		t.Fatalf("LOCUS_BENCH_PODS=%d is below the gang size %d", o.Pods, o.GangSize)
	}
	return o
}

func (o options) selectArms(t *testing.T) []arm {
	t.Helper()
	all := allArms()
	if len(o.arms) == 0 {
		return all
	}
	var out []arm
	for _, short := range o.arms {
		found := false
		for _, a := range all {
			if a.short == short {
				out = append(out, a)
				found = true
			}
		}
		if !found {
			t.Fatalf("LOCUS_BENCH_ARMS: no arm %q here (have %s)", short, armNames(all))
		}
	}
	return out
}

func armNames(arms []arm) string {
	var names []string
	for _, a := range arms {
		names = append(names, a.short)
	}
	return strings.Join(names, ", ")
}

// TestThroughput measures every arm once per round, alternating their
// order, and reports pods per second, medians and the ratios that the
// README's Performance section sets targets for. It fails only when pods are not bound.
func TestThroughput(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; skipped in -short")
	}
	opts := optionsFromEnv(t)
	arms := opts.selectArms(t)
	if peerProfile == nil {
		t.Logf("scheduler-plugins arm not built: run test/bench/run.sh (go test -tags bench_peer -modfile=...) to compare gangs and quotas with it")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	c := startCluster(ctx, t)
	// Everything the harness does from here on is labelled as its own, apart
	// from the API server's and etcd's goroutines started above
	// (cpusplit_test.go).
	withComponent(ctx, componentHarness, func(ctx context.Context) { runArms(ctx, t, c, opts, arms) })
}

func runArms(ctx context.Context, t *testing.T, c *cluster, opts options, arms []arm) {
	start := time.Now()
	if err := c.createNodes(ctx, opts.Nodes, opts.CertifiedFraction); err != nil {
		t.Fatal(err)
	}
	t.Logf("created %d nodes in %v; %d pods per arm, %d rounds, arms %s",
		opts.Nodes, time.Since(start).Round(time.Millisecond), opts.Pods, opts.Rounds, armNames(arms))

	if opts.Warmup && len(arms) > 0 {
		a := roundOrder(arms, 0)[0]
		res, err := measure(ctx, c, a, -1, opts)
		if err != nil {
			t.Fatalf("warm-up, %s: %v", a.name(), err)
		}
		t.Logf("warm-up (not counted): %s, %d pods in %.3fs = %.1f pods/s", a.short, res.Pods, res.Seconds, res.PodsPerSecond)
	}
	rep := newReport(opts, arms)
	for r := 0; r < opts.Rounds; r++ {
		for pos, a := range roundOrder(arms, r) {
			res, err := measure(ctx, c, a, r, opts)
			if err != nil {
				t.Errorf("round %d, %s: %v", r+1, a.name(), err)
				continue
			}
			res.Position = pos + 1
			rep.add(a.short, res)
			t.Logf("round %d #%d %-16s %6d pods in %7.3fs = %7.1f pods/s, %7.1f pods per CPU-second (scheduler start %.2fs, %d events, heap %.0f MiB before the start, peak +%.0f MiB%s)",
				r+1, pos+1, a.short, res.Pods, res.Seconds, res.PodsPerSecond, res.PodsPerCPUSecond, res.StartupSeconds, res.Events, res.HeapBaselineMiB, res.HeapPeakMiB, res.eventsText()+res.splitText()+res.WorkPerPod.text())
		}
	}
	rep.finish()
	rep.print(os.Stdout)
	if opts.out != "" {
		if err := rep.writeJSON(opts.out); err != nil {
			t.Errorf("writing %s: %v", opts.out, err)
		}
	}
}

// measure runs one arm once: create its pods, start its scheduler (the only
// one running), time until the last pod is bound, stop the scheduler and
// delete everything it placed.
func measure(ctx context.Context, c *cluster, a arm, round int, opts options) (result, error) {
	m := &measurement{
		run: fmt.Sprintf("r%d-%s", round+1, a.short), schedulerName: a.profile.schedulerName,
		pods: opts.Pods, gangSize: opts.GangSize,
	}
	pods, err := a.workload.prepare(ctx, c, m)
	if err != nil {
		return result{}, err
	}
	w, err := c.watchRun(ctx, m.run, len(pods))
	if err != nil {
		return result{}, err
	}
	defer w.stop()
	if err := c.createPods(ctx, pods); err != nil {
		return result{}, err
	}
	cfg, err := testenv.LoadConfig(a.profile.config)
	if err != nil {
		return result{}, err
	}
	// Leave as little garbage of the last arm as possible to this one.
	runtime.GC()

	// Read before the start: the scheduler schedules as soon as it runs.
	workBefore, workErr := readSchedulerWork()
	begin := time.Now()
	heap := startHeapSampler()
	var s *testenv.Scheduler
	withComponent(ctx, componentScheduler, func(ctx context.Context) {
		s, err = testenv.StartSchedulerWithKubeConfig(ctx, cfg, a.profile.kubeConfig(c), c.client, c.dyn, a.profile.registry)
	})
	if err != nil {
		heap.stop()
		return result{}, err
	}
	// Scheduling starts here: the scheduler has synced its informers and
	// Run has just been called.
	split := startCPUSplit()
	running, cpuBefore := time.Now(), processCPU()
	waitErr := w.wait(ctx, opts.timeout)
	cpu := processCPU() - cpuBefore
	eventsByLastBind, _ := s.Events.Written()
	workAfter, err := readSchedulerWork()
	workErr = errors.Join(workErr, err)
	shares, splitErr := split.stop(opts.profiles, m.run)
	heapPeak, heapBaseline := heap.stop(), heap.baselineMiB()
	events, lastEvent := 0, time.Time{}
	if waitErr == nil {
		lastEvent = eventWritesSettled(ctx, s.Events)
		// Let the scheduler write the events it still holds (locus records
		// audit and locality events per pod) before stopping it, rather than
		// cancel them; this is after the measured interval.
		events = c.settleEvents(ctx, m.namespaces)
	}
	s.Stop()
	if waitErr != nil {
		err := fmt.Errorf("%w; not bound, e.g. %s", waitErr, strings.Join(w.pending(3), "; "))
		// Clean up all the same, so that the next arms start from an empty cluster.
		if cleanupErr := c.deletePods(ctx, w, m.run, m.namespaces); cleanupErr != nil {
			return result{}, fmt.Errorf("%w; cleaning up: %v", err, cleanupErr)
		}
		if cleanupErr := a.workload.cleanup(ctx, c, m); cleanupErr != nil {
			return result{}, fmt.Errorf("%w; cleaning up: %v", err, cleanupErr)
		}
		return result{}, err
	}
	first, last := w.times()
	res := result{
		Round:            round + 1,
		Pods:             len(pods),
		Seconds:          last.Sub(running).Seconds(),
		StartupSeconds:   running.Sub(begin).Seconds(),
		FirstBindSeconds: first.Sub(running).Seconds(),
		Events:           events,
		HeapPeakMiB:      heapPeak,
		HeapBaselineMiB:  heapBaseline,
		CPUSplit:         shares,
	}
	res.PodsPerSecond = float64(res.Pods) / res.Seconds
	res.EventsByLastBind = eventsByLastBind
	res.SecondsWithEvents = res.Seconds
	if lastEvent.After(last) {
		res.SecondsWithEvents = lastEvent.Sub(running).Seconds()
	}
	res.PodsPerSecondWithEvents = float64(res.Pods) / res.SecondsWithEvents
	if workErr == nil {
		work := workAfter.perPod(workBefore, res.Pods)
		res.WorkPerPod = &work
	}
	// CPU is read when the wait returns, a moment after the last bind.
	if res.CPUSeconds = cpu.Seconds(); res.CPUSeconds > 0 {
		res.PodsPerCPUSecond = float64(res.Pods) / res.CPUSeconds
	}

	if err := c.deletePods(ctx, w, m.run, m.namespaces); err != nil {
		return res, err
	}
	if err := a.workload.cleanup(ctx, c, m); err != nil {
		return res, err
	}
	return res, errors.Join(splitErr, workErr)
}
