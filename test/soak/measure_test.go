package soak

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/cache"
	"k8s.io/component-base/metrics/legacyregistry"

	"locus.dev/locus/pkg/plugins"
)

// memSample is the process's goroutines and live heap, read through
// runtime/metrics after two GCs (so that garbage does not count), and the
// part of the live heap that the heap profile attributes to the scheduler.
type memSample struct {
	At         string  `json:"at"`
	Goroutines uint64  `json:"goroutines"`
	HeapMiB    float64 `json:"heapMiB"`
	// SchedulerMiB is live memory allocated where the stack passes through
	// kube-scheduler's framework (k8s.io/kubernetes/pkg/scheduler) or
	// locus's plugins (locus.dev/locus/pkg, but testenv), outside the
	// event recorder.
	SchedulerMiB float64 `json:"schedulerMiB"`
	// EventRecorderMiB is what the scheduler's event recorder
	// (client-go tools/events) holds: every event of the last 6 to 12
	// minutes, for its series, and those still being written.
	EventRecorderMiB float64 `json:"eventRecorderMiB"`
}

const (
	goroutinesMetric = "/sched/goroutines:goroutines"
	heapMetric       = "/memory/classes/heap/objects:bytes"
)

func readMem(at string) memSample {
	runtime.GC()
	runtime.GC()
	s := []metrics.Sample{{Name: goroutinesMetric}, {Name: heapMetric}}
	metrics.Read(s)
	sched, events := attributedHeap()
	return memSample{At: at, Goroutines: s[0].Value.Uint64(), HeapMiB: float64(s[1].Value.Uint64()) / (1 << 20),
		SchedulerMiB: sched / (1 << 20), EventRecorderMiB: events / (1 << 20)}
}

// attributedHeap estimates from the runtime's heap profile (sampled, one
// sample per 512 KiB allocated on average, scaled as runtime/pprof scales
// it) the live bytes allocated by the scheduler and its plugins, and by
// its event recorder. The whole control plane shares the process; this is
// the scheduler's own share. (Objects that its informers decoded are
// allocated by client-go for every informer alike and are not in it.)
func attributedHeap() (scheduler, events float64) {
	n, _ := runtime.MemProfile(nil, false)
	var recs []runtime.MemProfileRecord
	for {
		recs = make([]runtime.MemProfileRecord, n+64)
		var ok bool
		if n, ok = runtime.MemProfile(recs, false); ok {
			recs = recs[:n]
			break
		}
	}
	rate := float64(runtime.MemProfileRate)
	for _, r := range recs {
		bytes, objects := r.InUseBytes(), r.InUseObjects()
		if bytes <= 0 || objects <= 0 {
			continue
		}
		scaled := float64(bytes)
		if rate > 1 {
			scaled /= 1 - math.Exp(-float64(bytes)/float64(objects)/rate)
		}
		switch owner(r.Stack()) {
		case "events":
			events += scaled
		case "scheduler":
			scheduler += scaled
		}
	}
	return scheduler, events
}

// owner reads an allocation's stack: "events" if it passes through the
// event recorder, else "scheduler" if through the scheduler or locus's
// plugins, else "".
func owner(stack []uintptr) string {
	frames := runtime.CallersFrames(stack)
	found := ""
	for {
		f, more := frames.Next()
		switch fn := f.Function; {
		case strings.HasPrefix(fn, "k8s.io/client-go/tools/events."):
			return "events"
		case strings.HasPrefix(fn, "k8s.io/kubernetes/pkg/scheduler/"),
			strings.HasPrefix(fn, "locus.dev/locus/pkg/") && !strings.HasPrefix(fn, "locus.dev/locus/pkg/testenv."):
			found = "scheduler"
		}
		if !more {
			return found
		}
	}
}

// measure takes three samples a second apart (one at the smoke size) and
// keeps the lowest of each figure: a leak is in all three, a request in
// flight in one. With LOCUS_SOAK_PPROF set it also writes heap and
// goroutine profiles named after the point.
func (h *harness) measure(at string) memSample {
	best := readMem(at)
	for i := 0; i < 2 && !h.opts.Smoke; i++ {
		time.Sleep(time.Second)
		s := readMem(at)
		best.Goroutines = min(best.Goroutines, s.Goroutines)
		best.HeapMiB = min(best.HeapMiB, s.HeapMiB)
		best.SchedulerMiB = min(best.SchedulerMiB, s.SchedulerMiB)
		best.EventRecorderMiB = min(best.EventRecorderMiB, s.EventRecorderMiB)
	}
	if h.opts.pprof != "" {
		if err := writeProfiles(h.opts.pprof, at); err != nil {
			h.t.Logf("writing profiles: %v", err)
		}
	}
	h.t.Logf("memory %-12s goroutines %6d  heap %8.1f MiB (scheduler %.1f MiB, its event recorder %.1f MiB)",
		at, best.Goroutines, best.HeapMiB, best.SchedulerMiB, best.EventRecorderMiB)
	return best
}

func writeProfiles(dir, at string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"heap", "goroutine"} {
		f, err := os.Create(filepath.Join(dir, at+"."+name+".pprof"))
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func peakOf(samples []memSample) memSample {
	p := memSample{At: "peak"}
	for _, s := range samples {
		p.Goroutines = max(p.Goroutines, s.Goroutines)
		p.HeapMiB = max(p.HeapMiB, s.HeapMiB)
		p.SchedulerMiB = max(p.SchedulerMiB, s.SchedulerMiB)
		p.EventRecorderMiB = max(p.EventRecorderMiB, s.EventRecorderMiB)
	}
	return p
}

// gather reads the in-process scheduler's metrics of one family, for the
// locus profile where the family has a profile label.
func gather(name string, each func(labels map[string]string, value float64)) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if p, ok := labels["profile"]; ok && p != plugins.SchedulerName {
				continue
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			each(labels, v)
		}
	}
}

// pendingQueues is the scheduler's scheduler_pending_pods by queue.
func pendingQueues() map[string]float64 {
	out := map[string]float64{}
	gather("scheduler_pending_pods", func(l map[string]string, v float64) { out[l["queue"]] += v })
	return out
}

// waitIdle waits until the scheduler's active and backoff queues (with
// all, every queue) stay empty for two seconds.
func waitIdle(ctx context.Context, timeout time.Duration, all bool) error {
	quiet := 0
	var q map[string]float64
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		q = pendingQueues()
		busy := q["active"] + q["backoff"]
		if all {
			busy += q["unschedulable"] + q["gated"]
		}
		if busy > 0 {
			quiet = 0
			return false, nil
		}
		quiet++
		return quiet >= 4, nil
	})
	if err != nil {
		return fmt.Errorf("scheduler not idle within %v (queues %v): %w", timeout, q, err)
	}
	return nil
}

// attempts is scheduler_schedule_attempts_total of the locus profile, by result.
type attempts map[string]float64

func scheduleAttempts() attempts {
	out := attempts{}
	gather("scheduler_schedule_attempts_total", func(l map[string]string, v float64) { out[l["result"]] += v })
	return out
}

func (a attempts) minus(b attempts) attempts {
	out := attempts{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// eventCounter counts, for every object that events are about, the event
// objects of each reason and their occurrences (an event repeated with the
// same note becomes a series on one object: its count).
type eventCounter struct {
	mu sync.Mutex
	// by "reason|kind/namespace/name" -> event UID -> occurrences
	about map[string]map[types.UID]int32
}

func newEventCounter() *eventCounter {
	return &eventCounter{about: map[string]map[types.UID]int32{}}
}

func (c *eventCounter) observe(obj interface{}) {
	ev, ok := obj.(*eventsv1.Event)
	if !ok {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			ev, _ = t.Obj.(*eventsv1.Event)
		}
		if ev == nil {
			return
		}
	}
	n := int32(1)
	if ev.Series != nil && ev.Series.Count > 1 {
		n = ev.Series.Count
	}
	r := ev.Regarding
	key := ev.Reason + "|" + r.Kind + "/" + r.Namespace + "/" + r.Name
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.about[key]
	if m == nil {
		m = map[types.UID]int32{}
		c.about[key] = m
	}
	m[ev.UID] = max(m[ev.UID], n)
}

// reasonSummary is one reason over the run.
type reasonSummary struct {
	Reason string `json:"reason"`
	Kind   string `json:"kind"` // of the objects the events are about
	// Objects is how many distinct objects (pods, PodGroups, ...) had
	// events of this reason.
	Objects int `json:"objects"`
	// Events is the event objects written; Occurrences adds the repeats
	// that a series counts.
	Events      int `json:"events"`
	Occurrences int `json:"occurrences"`
	// MaxEventsPerObject and MaxOccurrencesPerObject are the worst object's.
	MaxEventsPerObject      int    `json:"maxEventsPerObject"`
	MaxOccurrencesPerObject int    `json:"maxOccurrencesPerObject"`
	Worst                   string `json:"worst"`
}

func (c *eventCounter) summary() []reasonSummary {
	c.mu.Lock()
	defer c.mu.Unlock()
	by := map[string]*reasonSummary{}
	for _, key := range sortedKeys(c.about) {
		reason, obj := splitKey(key)
		kind := obj[:indexByte(obj, '/')]
		s := by[reason+"|"+kind]
		if s == nil {
			s = &reasonSummary{Reason: reason, Kind: kind}
			by[reason+"|"+kind] = s
		}
		evs := c.about[key]
		occ := 0
		for _, n := range evs {
			occ += int(n)
		}
		s.Objects++
		s.Events += len(evs)
		s.Occurrences += occ
		if len(evs) > s.MaxEventsPerObject {
			s.MaxEventsPerObject, s.Worst = len(evs), obj
		}
		s.MaxOccurrencesPerObject = max(s.MaxOccurrencesPerObject, occ)
	}
	out := make([]reasonSummary, 0, len(by))
	for _, k := range sortedKeys(by) {
		out = append(out, *by[k])
	}
	return out
}

func splitKey(key string) (reason, obj string) {
	i := indexByte(key, '|')
	return key[:i], key[i+1:]
}

func indexByte(s string, b byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return i
		}
	}
	return len(s)
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
