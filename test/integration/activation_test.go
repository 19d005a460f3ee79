package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2/ktesting"

	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// unschedulableAttempts reads the in-process scheduler's count of failed
// attempts of the locus profile.
func unschedulableAttempts(t *testing.T) float64 {
	t.Helper()
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range families {
		if f.GetName() != "scheduler_schedule_attempts_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["profile"] == plugins.SchedulerName && labels["result"] == "unschedulable" {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

// 3,000 pods wait for their namespace's quota while pods of other
// namespaces (one with a quota of its own, one without) come and go. Their
// deletions free nothing the waiting pods can use, so the waiting pods are
// not tried again (counted by the scheduler's own attempts metric), and
// unrelated pods keep binding.
func TestChurnElsewhereDoesNotWakeWaitingPods(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const waiting = 3000
	e := startQuotaEnv(ctx, t, 2, "1000")
	e.quota(ctx, t, "full", "1", "1")
	e.quota(ctx, t, "busy", "100", "100")
	if err := testenv.CreateNamespace(ctx, e.Client, "free", nil); err != nil {
		t.Fatal(err)
	}
	createPods(ctx, t, e.Client, "full", "holder", 1, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "full", "", 1, 30*time.Second)

	before := unschedulableAttempts(t)
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < waiting; i += 8 {
				spec := testenv.PodSpec{Namespace: "full", Name: fmt.Sprintf("wait-%04d", i), SchedulerName: plugins.SchedulerName, CPU: "1"}
				if _, err := testenv.CreatePod(ctx, e.Client, spec); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	// Every waiting pod has been tried once and turned away.
	if err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		return unschedulableAttempts(t)-before >= waiting, nil
	}); err != nil {
		t.Fatalf("only %v of %d waiting pods were tried: %v", unschedulableAttempts(t)-before, waiting, err)
	}
	time.Sleep(2 * time.Second)
	settled := unschedulableAttempts(t)

	// Churn: pods bind and are deleted in a namespace with its own quota
	// and in one without.
	for round := 0; round < 3; round++ {
		for _, ns := range []string{"busy", "free"} {
			names := createPods(ctx, t, e.Client, ns, fmt.Sprintf("churn-%d", round), 10, "1", nil, plugins.SchedulerName)
			waitBound(ctx, t, e.Client, ns, "", 10, 60*time.Second)
			forceDelete(ctx, t, e.Client, ns, names...)
			waitBound(ctx, t, e.Client, ns, "", 0, 30*time.Second)
		}
	}
	start := time.Now()
	createPods(ctx, t, e.Client, "free", "unrelated", 20, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "free", "", 20, 60*time.Second)
	t.Logf("20 unrelated pods bound in %v beside %d waiting pods", time.Since(start).Round(time.Millisecond), waiting)
	time.Sleep(2 * time.Second)

	// Each deletion used to activate every waiting pod: 60 deletions would
	// have meant tens of thousands of attempts.
	if extra := unschedulableAttempts(t) - settled; extra > waiting/10 {
		t.Errorf("%v more failed attempts during churn in other namespaces, want at most %d: waiting pods were woken by deletions that freed nothing for them", extra, waiting/10)
	}
	if pods, _ := boundPods(ctx, e.Client, "full", ""); len(pods) != 1 {
		t.Errorf("%d pods bound in the full namespace, want its 1", len(pods))
	}
	// Freed quota of their own namespace still wakes them.
	forceDelete(ctx, t, e.Client, "full", "holder-00")
	waitBound(ctx, t, e.Client, "full", "", 1, 60*time.Second)
}
