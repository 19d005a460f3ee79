package soak

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"
)

type limits struct {
	GoroutineSlack        int            `json:"goroutineSlack"`
	HeapFactor            float64        `json:"heapFactor"`
	HeapSlackMiB          float64        `json:"heapSlackMiB"`
	SchedulerHeapFactor   float64        `json:"schedulerHeapFactor"`
	SchedulerHeapSlackMiB float64        `json:"schedulerHeapSlackMiB"`
	EventCaps             map[string]int `json:"eventCapsPerPod"`
}

// latency is the time from the harness's create call to its watch seeing
// the pod bound, for one kind of pod in one phase.
type latency struct {
	Kind  string  `json:"kind"`
	Phase string  `json:"phase"`
	Pods  int     `json:"pods"`
	P50   float64 `json:"p50Seconds"`
	P99   float64 `json:"p99Seconds"`
	Max   float64 `json:"maxSeconds"`
}

type report struct {
	Options options `json:"options"`
	Plan    plan    `json:"plan"`
	Limits  limits  `json:"limits"`
	Memory  struct {
		Baseline    memSample   `json:"baseline"`
		AfterBurst  memSample   `json:"afterBurst"`
		DuringChurn []memSample `json:"duringChurn"`
		AfterChurn  memSample   `json:"afterChurn"`
		Peak        memSample   `json:"peak"`
		AfterDrain  memSample   `json:"afterDrain"`
	} `json:"memory"`
	Durations struct {
		BurstSeconds float64 `json:"burstSeconds"`
		// ChurnSeconds runs until the scheduler has placed what it can
		// after the churn; ChurnLoopSeconds only while pods are churned.
		ChurnSeconds     float64 `json:"churnSeconds"`
		ChurnLoopSeconds float64 `json:"churnLoopSeconds"`
		DrainSeconds     float64 `json:"drainSeconds"`
		TotalSeconds     float64 `json:"totalSeconds"`
	} `json:"durations"`
	Churn    churnStats     `json:"churn"`
	Latency  []latency      `json:"latency"`
	Unbound  map[string]int `json:"unboundAtDrain"`
	Attempts attempts       `json:"scheduleAttempts"`
	// Binds is how many binds the harness saw; ScheduledEvents how many
	// Scheduled events reached the API server (the recorder drops events
	// when its queue is full, and the API server times some out).
	Binds           int             `json:"binds"`
	ScheduledEvents int             `json:"scheduledEvents"`
	Events          []reasonSummary `json:"events"`
	Failures        []string        `json:"failures"`
}

func (h *harness) latencies() []latency {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []latency
	for _, phase := range []string{phaseBurst, phaseChurn} {
		for _, kind := range kinds {
			d := append([]time.Duration(nil), h.latency[kind+"/"+phase]...)
			if len(d) == 0 {
				continue
			}
			sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
			q := func(p float64) float64 { return d[min(len(d)-1, int(p*float64(len(d))))].Seconds() }
			out = append(out, latency{Kind: kind, Phase: phase, Pods: len(d), P50: q(0.50), P99: q(0.99), Max: d[len(d)-1].Seconds()})
		}
	}
	return out
}

// check fails the test where the drained cluster did not come back near
// its baseline, or a pod was told the same thing too often.
func (r *report) check(t *testing.T) {
	t.Helper()
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		r.Failures = append(r.Failures, msg)
		t.Error(msg)
	}
	base, after := r.Memory.Baseline, r.Memory.AfterDrain
	if after.Goroutines > base.Goroutines+goroutineSlack {
		fail("goroutines after the drain: %d, baseline %d (allowed +%d)", after.Goroutines, base.Goroutines, goroutineSlack)
	}
	if limit := heapFactor*base.HeapMiB + heapSlackMiB; after.HeapMiB > limit {
		fail("heap after the drain: %.1f MiB, baseline %.1f MiB (allowed %.1f MiB)", after.HeapMiB, base.HeapMiB, limit)
	}
	if limit := schedHeapFactor*base.SchedulerMiB + schedSlackMiB; after.SchedulerMiB > limit {
		fail("the scheduler's heap after the drain: %.1f MiB, baseline %.1f MiB (allowed %.1f MiB)", after.SchedulerMiB, base.SchedulerMiB, limit)
	}
	for _, s := range r.Events {
		limit, ok := eventCaps[s.Reason]
		if !ok || s.Kind != "Pod" {
			continue
		}
		if s.MaxEventsPerObject > limit {
			fail("%d %s events about %s (at most %d per pod)", s.MaxEventsPerObject, s.Reason, s.Worst, limit)
		}
	}
}

func (r *report) print(t *testing.T) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "\nsoak: %d nodes, %d pods, churn %v at %d pods/s; %s\n", r.Options.Nodes, r.Options.Pods,
		time.Duration(r.Options.ChurnSeconds*float64(time.Second)), r.Options.ChurnRate, r.Plan)
	fmt.Fprintf(&b, "phases: burst %.1fs, churn %.1fs (%.1fs of churning), drain %.1fs, total %.1fs\n",
		r.Durations.BurstSeconds, r.Durations.ChurnSeconds, r.Durations.ChurnLoopSeconds, r.Durations.DrainSeconds, r.Durations.TotalSeconds)
	fmt.Fprintf(&b, "churn: %d deleted (%d gangs), %d created, %d deleted by the scheduler (reclaim)\n",
		r.Churn.Deleted, r.Churn.GangsDeleted, r.Churn.Created, r.Churn.Reclaimed)
	fmt.Fprintf(&b, "\n%-14s %10s %10s %14s %14s\n", "memory", "goroutines", "heap MiB", "scheduler MiB", "recorder MiB")
	samples := append([]memSample{r.Memory.Baseline, r.Memory.AfterBurst}, r.Memory.DuringChurn...)
	for _, s := range append(samples, r.Memory.AfterChurn, r.Memory.Peak, r.Memory.AfterDrain) {
		fmt.Fprintf(&b, "%-14s %10d %10.1f %14.1f %14.1f\n", s.At, s.Goroutines, s.HeapMiB, s.SchedulerMiB, s.EventRecorderMiB)
	}
	fmt.Fprintf(&b, "limits after the drain: goroutines <= %d, heap <= %.1f MiB, scheduler <= %.1f MiB\n",
		r.Memory.Baseline.Goroutines+goroutineSlack, heapFactor*r.Memory.Baseline.HeapMiB+heapSlackMiB,
		schedHeapFactor*r.Memory.Baseline.SchedulerMiB+schedSlackMiB)
	fmt.Fprintf(&b, "\n%-6s %-6s %7s %9s %9s %9s   (create call to bind seen by a watch)\n", "kind", "phase", "pods", "p50 s", "p99 s", "max s")
	for _, l := range r.Latency {
		fmt.Fprintf(&b, "%-6s %-6s %7d %9.3f %9.3f %9.3f\n", l.Kind, l.Phase, l.Pods, l.P50, l.P99, l.Max)
	}
	fmt.Fprintf(&b, "pending when the drain began: %v\n", r.Unbound)
	fmt.Fprintf(&b, "schedule attempts: %v\n", r.Attempts)
	fmt.Fprintf(&b, "Scheduled events that reached the API server: %d of %d binds\n", r.ScheduledEvents, r.Binds)
	fmt.Fprintf(&b, "\n%-20s %-12s %8s %8s %8s %8s %8s\n", "event reason", "about", "objects", "events", "occur.", "max ev", "max occ")
	for _, s := range r.Events {
		fmt.Fprintf(&b, "%-20s %-12s %8d %8d %8d %8d %8d\n", s.Reason, s.Kind, s.Objects, s.Events, s.Occurrences, s.MaxEventsPerObject, s.MaxOccurrencesPerObject)
	}
	t.Log(b.String())
}

func (r *report) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
