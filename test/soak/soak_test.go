// Package soak runs locus-scheduler for minutes on a large cluster under a
// mixed, churning workload, and checks that it gives back what it took:
// goroutines and heap return near their level before the load once
// everything is deleted, events stay rate-limited (a pod that waits is not
// told the same thing once per attempt), and no promise of the invariant
// checker breaks. It prints (and writes as JSON) the time from each pod's
// creation to its bind.
//
// Plain `go test ./...` runs a smoke size in a few seconds; LOCUS_SOAK=1
// (make soak) runs the full size: 1,000 nodes, 10,000 pods, 5 minutes of
// churn. See options for the environment variables.
package soak

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/kubernetes/test/utils/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/manifests"
	locusclient "locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/testenv"
	"locus.dev/locus/test/invariants"
)

func init() {
	// k8s.io/kubernetes/test/utils/ktesting (which the in-process
	// kube-apiserver imports) sets klog to -v=5 for tests; at that level the
	// API server and the scheduler log every request and every pod, which
	// at this size costs more than the scheduling. Errors still show;
	// raise it with "go test ./test/soak -args -v=2".
	ktesting.SetDefaultVerbosity(0)
}

// options is the size of a run; every field has an environment variable.
type options struct {
	Nodes int `json:"nodes"` // LOCUS_SOAK_NODES
	Pods  int `json:"pods"`  // LOCUS_SOAK_PODS: the population kept alive
	// ChurnSeconds is how long pods are deleted and created (LOCUS_SOAK_CHURN, a duration).
	ChurnSeconds float64 `json:"churnSeconds"`
	// ChurnRate is how many bound pods are deleted (and replaced) per
	// second during the churn (LOCUS_SOAK_RATE).
	ChurnRate int `json:"churnRatePerSecond"`
	GangSize  int `json:"gangSize"`
	// SettleSeconds is how long the drained, idle cluster is left before
	// the last measurement (LOCUS_SOAK_SETTLE, a duration): long enough for
	// one etcd compaction (the API server here compacts every minute).
	SettleSeconds float64 `json:"settleSeconds"`
	Smoke         bool    `json:"smoke"`

	churn, settle time.Duration
	// timeout bounds each wait for the scheduler to place what it can.
	timeout time.Duration
	out     string // LOCUS_SOAK_OUT: JSON result file
	pprof   string // LOCUS_SOAK_PPROF: directory for heap profiles at each measurement
}

func optionsFromEnv(t *testing.T) options {
	t.Helper()
	o := options{Nodes: 1000, Pods: 10000, ChurnRate: 25, GangSize: 4, churn: 5 * time.Minute, settle: 75 * time.Second, timeout: 20 * time.Minute}
	if os.Getenv("LOCUS_SOAK") != "1" {
		o = options{Nodes: 10, Pods: 80, ChurnRate: 20, GangSize: 4, Smoke: true, churn: time.Second, settle: 0, timeout: 2 * time.Minute}
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
	envDuration := func(key string, dst *time.Duration) {
		if v := os.Getenv(key); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 {
				t.Fatalf("%s=%q: want a duration", key, v)
			}
			*dst = d
		}
	}
	envInt("LOCUS_SOAK_NODES", &o.Nodes)
	envInt("LOCUS_SOAK_PODS", &o.Pods)
	envInt("LOCUS_SOAK_RATE", &o.ChurnRate)
	envDuration("LOCUS_SOAK_CHURN", &o.churn)
	envDuration("LOCUS_SOAK_SETTLE", &o.settle)
	envDuration("LOCUS_SOAK_TIMEOUT", &o.timeout)
	o.ChurnSeconds, o.SettleSeconds = o.churn.Seconds(), o.settle.Seconds()
	o.out, o.pprof = os.Getenv("LOCUS_SOAK_OUT"), os.Getenv("LOCUS_SOAK_PPROF")
	if o.Pods < 20 {
		t.Fatalf("LOCUS_SOAK_PODS=%d: want at least 20 (the mix needs a few of each kind)", o.Pods)
	}
	return o
}

// Tolerances of the after-drain measurement against the baseline. The
// whole control plane runs in this process, so the process's figures are
// the API server's, etcd's and the harness's as much as the scheduler's;
// the heap profile tells the scheduler's own share apart:
//
//   - goroutines: within +50. A leak per pod, per gang or per attempt
//     (10,000s of them at full size) shows as thousands; what moves by a
//     few dozen without a leak is HTTP/2 connections opened under load
//     (until they idle out) and timers of the scheduler's backoff.
//   - the scheduler's heap (allocated in kube-scheduler's framework and
//     locus's plugins, live after GC): within 2x the baseline plus 8 MiB.
//     It is about 1 MiB with 1,000 nodes and no pod; a leaked map entry
//     per pod (a few hundred bytes: key, pointer, slot) over the 30,000
//     pods of a full run would pass 8 MiB.
//   - the process's heap: within 2x the baseline plus 256 MiB, a bound
//     for gross leaks only: without any leak, the API server's pod watch
//     cache keeps recent events (objects of deleted pods included) until
//     new pod events push them out, which after a drain they never do;
//     at full size that is about 160 MiB of decoded pods. It is bounded
//     by the cache's capacity, not by the pods seen.
//
// The scheduler's event recorder (client-go) keeps every event of the last
// 6 to 12 minutes for its series: reported, not held to a limit.
const (
	goroutineSlack  = 50
	heapFactor      = 2.0
	heapSlackMiB    = 256
	schedSlackMiB   = 8
	schedHeapFactor = 2.0
)

// Caps on events about one pod over the whole run, for locus's own
// reasons, which locus records once per change of what it says (not once
// per attempt). At most one placement each; PodGroupNotFound at most once
// (a pod created a moment before its PodGroup reaches the scheduler).
// QuotaExceeded: the numbers in its note (what the quota uses, what the
// cluster has unused of its guaranteed total) change as other pods come and
// go, and each change is a new note; the cap allows a few such changes,
// far fewer than the attempts a waiting pod goes through.
var eventCaps = map[string]int{
	"QuotaExceeded":      8,
	"LocalityPlacement":  1,
	"CompliantPlacement": 1,
	"PodGroupNotFound":   1,
	"DatasetNotFound":    1,
}

// TestSoak: nodes, then a baseline; a burst of pods (plain, quota-limited,
// gangs, Dataset readers); churn (delete bound pods, create new ones) for
// the configured time; drain (delete every pod and PodGroup, wait until
// the scheduler is idle). Goroutines and heap are measured after GC at the
// baseline, after the burst, during the churn and after the drain.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a control plane; skipped in -short")
	}
	opts := optionsFromEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := time.Now()

	// etcd compacts every minute (kube-apiserver's default is every 5): the
	// test's control plane would otherwise never compact, and etcd's index
	// would keep every revision of every pod, which no cluster does.
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{"--etcd-compaction-interval=1m"}})
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	jsonConfig := rest.CopyConfig(cp.Config)
	jsonConfig.ContentType, jsonConfig.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	sched, err := schedclient.NewForConfig(jsonConfig)
	if err != nil {
		t.Fatal(err)
	}
	locus, err := locusclient.NewForConfig(jsonConfig)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, opts, cp.Client, sched, locus)
	if err := h.createNodes(ctx); err != nil {
		t.Fatal(err)
	}
	if err := h.createNamespaces(ctx); err != nil {
		t.Fatal(err)
	}
	// Reclaim deletes borrowers' pods gracefully; no kubelet finishes that.
	if err := testenv.StartPodReaper(ctx, cp.Client); err != nil {
		t.Fatal(err)
	}
	// Only locus's scheduler: the default one would idle beside it and add
	// its own goroutines and heap to every measurement.
	env := &testenv.Env{ControlPlane: cp, Dynamic: dyn}
	env.Locus = env.StartScheduler(ctx, t, manifests.SchedulerConfig)
	invariants.Watch(ctx, t, cp.Client, sched, invariants.Options{GangSlack: 30 * time.Second})
	if err := h.watch(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster ready in %v: %d nodes; plan %s", time.Since(started).Round(time.Second), opts.Nodes, h.plan)

	rep := &report{Options: opts, Plan: h.plan, Limits: limits{GoroutineSlack: goroutineSlack, HeapFactor: heapFactor, HeapSlackMiB: heapSlackMiB,
		SchedulerHeapFactor: schedHeapFactor, SchedulerHeapSlackMiB: schedSlackMiB, EventCaps: eventCaps}}
	if err := waitIdle(ctx, 2*time.Minute, false); err != nil {
		t.Fatal(err)
	}
	rep.Memory.Baseline = h.measure("baseline")
	attemptsBefore := scheduleAttempts()

	// The phases; a failed one ends the run, and the report still shows
	// what was measured up to it.
	err = func() error {
		// The burst: the whole population at once.
		phase := time.Now()
		h.setPhase(phaseBurst)
		if err := h.burst(ctx); err != nil {
			return err
		}
		if err := h.settle(ctx, opts.timeout); err != nil {
			return fmt.Errorf("after the burst: %w", err)
		}
		rep.Durations.BurstSeconds = time.Since(phase).Seconds()
		rep.Memory.AfterBurst = h.measure("after-burst")
		t.Logf("burst: %d pods placed or waiting at quota in %.1fs; %s", opts.Pods, rep.Durations.BurstSeconds, h.counts())

		// Churn.
		phase = time.Now()
		h.setPhase(phaseChurn)
		samples, err := h.churn(ctx)
		rep.Memory.DuringChurn = samples
		if err != nil {
			return err
		}
		rep.Durations.ChurnLoopSeconds = time.Since(phase).Seconds()
		if err := h.settle(ctx, opts.timeout); err != nil {
			return fmt.Errorf("after the churn: %w", err)
		}
		rep.Durations.ChurnSeconds = time.Since(phase).Seconds()
		rep.Memory.AfterChurn = h.measure("after-churn")
		rep.Churn = h.churnStats()
		t.Logf("churn: %.0fs (then %.0fs until settled), %d pods deleted (%d gangs), %d created, %d reclaimed by the scheduler; %s",
			rep.Durations.ChurnLoopSeconds, rep.Durations.ChurnSeconds-rep.Durations.ChurnLoopSeconds, rep.Churn.Deleted,
			rep.Churn.GangsDeleted, rep.Churn.Created, rep.Churn.Reclaimed, h.counts())

		// Drain.
		phase = time.Now()
		rep.Unbound = h.unbound()
		if err := h.drain(ctx); err != nil {
			return err
		}
		rep.Durations.DrainSeconds = time.Since(phase).Seconds()
		if opts.settle > 0 {
			t.Logf("drained in %.1fs; leaving the cluster idle for %v before measuring", rep.Durations.DrainSeconds, opts.settle)
			time.Sleep(opts.settle)
		}
		rep.Memory.AfterDrain = h.measure("after-drain")
		return nil
	}()
	if err != nil {
		t.Error(err)
		rep.Failures = append(rep.Failures, err.Error())
	}
	rep.Memory.Peak = peakOf(append([]memSample{rep.Memory.Baseline, rep.Memory.AfterBurst, rep.Memory.AfterChurn}, rep.Memory.DuringChurn...))
	rep.Attempts = scheduleAttempts().minus(attemptsBefore)
	rep.Latency = h.latencies()
	rep.Events = h.events.summary()
	for _, l := range rep.Latency {
		rep.Binds += l.Pods
	}
	for _, e := range rep.Events {
		if e.Reason == "Scheduled" && e.Kind == "Pod" {
			rep.ScheduledEvents = e.Events
		}
	}
	rep.Durations.TotalSeconds = time.Since(started).Seconds()
	if err == nil {
		rep.check(t)
	}
	rep.print(t)
	if opts.out != "" {
		if err := rep.writeJSON(opts.out); err != nil {
			t.Errorf("writing %s: %v", opts.out, err)
		}
	}
}

// quotaCPU is n pods' worth of podCPU.
func quotaCPU(n int) resource.Quantity {
	return *resource.NewMilliQuantity(int64(n)*podMilliCPU, resource.DecimalSI)
}

func elasticQuota(ns string, minPods, maxPods int) *schedv1alpha1.ElasticQuota {
	return &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: quotaCPU(minPods)},
			Max: v1.ResourceList{v1.ResourceCPU: quotaCPU(maxPods)},
		},
	}
}

func (p plan) String() string {
	return fmt.Sprintf("%d plain, %d Dataset readers, %d in %d gangs of %d, %d in %d quota namespaces (max %d pods each; min = max in %d, min %d pods in the others)",
		p.Plain, p.Data, p.Gangs*p.GangSize, p.Gangs, p.GangSize, p.QuotaPerNS*len(p.QuotaNamespaces), len(p.QuotaNamespaces), p.QuotaMaxPods, p.QuotaFull, p.QuotaBorrowerMinPods)
}
