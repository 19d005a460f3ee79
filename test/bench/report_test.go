package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// result is one arm measured once.
type result struct {
	Round    int `json:"round"`
	Position int `json:"position"` // 1 = first arm of its round
	Pods     int `json:"pods"`
	// Seconds is from the scheduler's start (informers synced, Run called)
	// to the last pod seen bound.
	Seconds       float64 `json:"seconds"`
	PodsPerSecond float64 `json:"podsPerSecond"`
	// CPUSeconds is the CPU time of the whole process (API server, etcd,
	// scheduler, harness) over the same interval: unlike wall time, it
	// hardly depends on what else runs on the machine.
	CPUSeconds       float64 `json:"cpuSeconds"`
	PodsPerCPUSecond float64 `json:"podsPerCPUSecond"`
	// StartupSeconds is scheduler.New plus informer sync, not counted above.
	StartupSeconds   float64 `json:"startupSeconds"`
	FirstBindSeconds float64 `json:"firstBindSeconds"`
	// Events is how many events the scheduler wrote for the run's pods
	// (and gang and quota objects): API writes beside the bindings.
	Events int `json:"events"`
	// EventsByLastBind is how many events it had written when the last pod
	// was bound. The scheduler writes events from one goroutine, one
	// request at a time, so a fast arm leaves part of them (and their API
	// server work) for after its last bind.
	EventsByLastBind int `json:"eventsByLastBind"`
	// SecondsWithEvents runs to the last bind or the last event write,
	// whichever is later: all the API writes the arm's scheduling causes.
	SecondsWithEvents       float64 `json:"secondsWithEvents"`
	PodsPerSecondWithEvents float64 `json:"podsPerSecondWithEvents"`
	// HeapPeakMiB is the peak of the process's live heap while the arm ran,
	// above its level just before the scheduler started (heap_test.go).
	HeapPeakMiB float64 `json:"heapPeakMiB"`
	// HeapBaselineMiB is that level: the process's live heap before the
	// scheduler started (API server, etcd, harness).
	HeapBaselineMiB float64 `json:"heapBaselineMiB"`
	// CPUSplit is the same interval's CPU by component, from a CPU profile
	// with goroutine labels (cpusplit_test.go); absent when the run was
	// profiled otherwise (go test -cpuprofile).
	CPUSplit *cpuShares `json:"cpuSplit,omitempty"`
	// WorkPerPod is what the scheduler did per pod, from its own metrics
	// (work_test.go): attempts, nodes filtered and scored.
	WorkPerPod *schedulerWork `json:"workPerPod,omitempty"`
}

// schedulerMsPerPod is the scheduler's own CPU per pod, in milliseconds, or
// 0 without a split.
func (r result) schedulerMsPerPod() float64 {
	if r.CPUSplit == nil || r.Pods == 0 {
		return 0
	}
	return 1000 * r.CPUSplit.Scheduler / float64(r.Pods)
}

// restMsPerPod is the API server's, etcd's and the runtime's CPU per pod.
func (r result) restMsPerPod() float64 {
	if r.CPUSplit == nil || r.Pods == 0 {
		return 0
	}
	return 1000 * r.CPUSplit.Rest / float64(r.Pods)
}

func (r result) eventsText() string {
	return fmt.Sprintf("; %d events by the last bind, all written after %.3fs = %.1f pods/s",
		r.EventsByLastBind, r.SecondsWithEvents, r.PodsPerSecondWithEvents)
}

func (r result) splitText() string {
	if r.CPUSplit == nil {
		return ""
	}
	return fmt.Sprintf("; CPU ms per pod: scheduler %.2f, API server+etcd+runtime %.2f, harness %.2f",
		r.schedulerMsPerPod(), r.restMsPerPod(), 1000*r.CPUSplit.Harness/float64(max(r.Pods, 1)))
}

type armReport struct {
	Arm                    string   `json:"arm"`
	SchedulerName          string   `json:"schedulerName"`
	Workload               string   `json:"workload"`
	Results                []result `json:"results"`
	MedianPodsPerSecond    float64  `json:"medianPodsPerSecond"`
	MedianPodsPerCPUSecond float64  `json:"medianPodsPerCPUSecond"`
	MedianHeapPeakMiB      float64  `json:"medianHeapPeakMiB"`
	// EventsPerPod is the median over rounds of events written per pod.
	EventsPerPod float64 `json:"eventsPerPod"`
	// MedianSchedulerMsPerPod and MedianRestMsPerPod are the medians of the
	// scheduler's own CPU per pod and of the API server's, etcd's and the
	// runtime's (0 without a split).
	MedianSchedulerMsPerPod float64 `json:"medianSchedulerMsPerPod"`
	MedianRestMsPerPod      float64 `json:"medianRestMsPerPod"`
	// MedianPodsPerSecondWithEvents is the median of PodsPerSecondWithEvents.
	MedianPodsPerSecondWithEvents float64 `json:"medianPodsPerSecondWithEvents"`
	// MedianWorkPerPod is the median of each count in WorkPerPod.
	MedianWorkPerPod *schedulerWork `json:"medianWorkPerPod,omitempty"`
}

type comparisonReport struct {
	Name        string  `json:"name"`
	Numerator   string  `json:"numerator"`
	Denominator string  `json:"denominator"`
	Ratio       float64 `json:"ratio"` // of the medians of pods/s
	// RoundRatios pairs the two arms round by round.
	RoundRatios      []float64 `json:"roundRatios"`
	MedianRoundRatio float64   `json:"medianRoundRatio"`
	// RatioWithEvents is the ratio of the medians of pods/s counted until
	// the arm's events were written too, RoundRatiosWithEvents per round.
	RatioWithEvents       float64   `json:"ratioWithEvents"`
	RoundRatiosWithEvents []float64 `json:"roundRatiosWithEvents"`
	MeetsTargetWithEvents bool      `json:"meetsTargetWithEvents"`
	// CPURatio is the ratio of the medians of pods per CPU-second.
	CPURatio    float64 `json:"cpuRatio"`
	Target      float64 `json:"target"`
	MeetsTarget bool    `json:"meetsTarget"`
	// AtSpecSize says whether the run had the node count that the target
	// is set at (README, Performance); a ratio at another size is indicative only.
	AtSpecSize bool `json:"atSpecSize"`
}

type report struct {
	Options     options            `json:"options"`
	Date        string             `json:"date"`
	GOMAXPROCS  int                `json:"gomaxprocs"`
	NumCPU      int                `json:"numCPU"`
	Arms        []*armReport       `json:"arms"`
	Comparisons []comparisonReport `json:"comparisons"`
	byArm       map[string]*armReport
}

func newReport(opts options, arms []arm) *report {
	r := &report{
		Options: opts, Date: time.Now().UTC().Format(time.RFC3339),
		GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		byArm: map[string]*armReport{},
	}
	for _, a := range arms {
		ar := &armReport{Arm: a.short, SchedulerName: a.profile.schedulerName, Workload: a.workload.name}
		r.Arms = append(r.Arms, ar)
		r.byArm[a.short] = ar
	}
	return r
}

func (r *report) add(arm string, res result) {
	r.byArm[arm].Results = append(r.byArm[arm].Results, res)
}

// finish computes medians and the comparisons whose two arms both ran.
func (r *report) finish() {
	for _, a := range r.Arms {
		var v, withEvents, cpu, heap, events, sched, rest, attempts, filtered, scored []float64
		for _, res := range a.Results {
			withEvents = append(withEvents, res.PodsPerSecondWithEvents)
			if w := res.WorkPerPod; w != nil {
				attempts, filtered, scored = append(attempts, w.Attempts), append(filtered, w.NodesFiltered), append(scored, w.NodesScored)
			}
			if res.CPUSplit != nil {
				sched = append(sched, res.schedulerMsPerPod())
				rest = append(rest, res.restMsPerPod())
			}
			v = append(v, res.PodsPerSecond)
			cpu = append(cpu, res.PodsPerCPUSecond)
			heap = append(heap, res.HeapPeakMiB)
			if res.Pods > 0 {
				events = append(events, float64(res.Events)/float64(res.Pods))
			}
		}
		a.MedianPodsPerSecond, a.MedianPodsPerCPUSecond = median(v), median(cpu)
		a.MedianPodsPerSecondWithEvents = median(withEvents)
		a.MedianHeapPeakMiB, a.EventsPerPod = median(heap), median(events)
		a.MedianSchedulerMsPerPod, a.MedianRestMsPerPod = median(sched), median(rest)
		if len(attempts) > 0 {
			a.MedianWorkPerPod = &schedulerWork{Attempts: median(attempts), NodesFiltered: median(filtered), NodesScored: median(scored)}
		}
	}
	for _, c := range comparisons {
		num, den := r.byArm[c.numerator], r.byArm[c.denominator]
		if num == nil || den == nil || num.MedianPodsPerSecond == 0 || den.MedianPodsPerSecond == 0 {
			continue
		}
		cr := comparisonReport{
			Name: c.name, Numerator: c.numerator, Denominator: c.denominator,
			Ratio:  num.MedianPodsPerSecond / den.MedianPodsPerSecond,
			Target: c.targetAt(r.Options.Nodes), AtSpecSize: r.Options.Nodes >= specNodes,
		}
		cr.MeetsTarget = cr.Ratio >= cr.Target
		if den.MedianPodsPerCPUSecond > 0 {
			cr.CPURatio = num.MedianPodsPerCPUSecond / den.MedianPodsPerCPUSecond
		}
		cr.RoundRatios = roundRatios(num, den, func(r result) float64 { return r.PodsPerSecond })
		cr.MedianRoundRatio = median(cr.RoundRatios)
		if den.MedianPodsPerSecondWithEvents > 0 {
			cr.RatioWithEvents = num.MedianPodsPerSecondWithEvents / den.MedianPodsPerSecondWithEvents
			cr.MeetsTargetWithEvents = cr.RatioWithEvents >= cr.Target
		}
		cr.RoundRatiosWithEvents = roundRatios(num, den, func(r result) float64 { return r.PodsPerSecondWithEvents })
		r.Comparisons = append(r.Comparisons, cr)
	}
}

// roundRatios pairs two arms round by round.
func roundRatios(num, den *armReport, value func(result) float64) []float64 {
	denByRound := map[int]float64{}
	for _, res := range den.Results {
		denByRound[res.Round] = value(res)
	}
	var out []float64
	for _, res := range num.Results {
		if d, ok := denByRound[res.Round]; ok && d > 0 {
			out = append(out, value(res)/d)
		}
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

func (r *report) print(w io.Writer) {
	o := r.Options
	size := fmt.Sprintf("%d nodes, %d pods per arm and round, %d rounds, gang size %d, %.0f%% of nodes certified",
		o.Nodes, o.Pods, o.Rounds, o.GangSize, 100*o.CertifiedFraction)
	if o.Smoke {
		size += " (smoke size; set LOCUS_BENCH=1 for a measurement)"
	}
	fmt.Fprintf(w, "\nlocus throughput benchmark: %s; GOMAXPROCS=%d\n", size, r.GOMAXPROCS)
	fmt.Fprintf(w, "pods/s = pods / (last bind - scheduler start); one scheduler running at a time\n\n")

	r.printTable(w, "pods/s (wall clock)", func(res result) float64 { return res.PodsPerSecond },
		func(a *armReport) float64 { return a.MedianPodsPerSecond })
	r.printTable(w, "pods/s counted until the arm's events were written too", func(res result) float64 { return res.PodsPerSecondWithEvents },
		func(a *armReport) float64 { return a.MedianPodsPerSecondWithEvents })
	r.printTable(w, "pods per CPU-second of the whole process", func(res result) float64 { return res.PodsPerCPUSecond },
		func(a *armReport) float64 { return a.MedianPodsPerCPUSecond })
	r.printTable(w, "heap peak above the pre-start baseline, MiB", func(res result) float64 { return res.HeapPeakMiB },
		func(a *armReport) float64 { return a.MedianHeapPeakMiB })
	r.printTable(w, "scheduler's own CPU per pod, ms (goroutine labels)", result.schedulerMsPerPod,
		func(a *armReport) float64 { return a.MedianSchedulerMsPerPod })
	r.printTable(w, "API server, etcd and runtime CPU per pod, ms", result.restMsPerPod,
		func(a *armReport) float64 { return a.MedianRestMsPerPod })
	r.printTable(w, "nodes NodeResourcesFit filtered per pod", func(res result) float64 { return res.WorkPerPod.filtered() },
		func(a *armReport) float64 { return a.MedianWorkPerPod.filtered() })
	r.printTable(w, "nodes NodeResourcesFit scored per pod", func(res result) float64 { return res.WorkPerPod.scored() },
		func(a *armReport) float64 { return a.MedianWorkPerPod.scored() })
	r.printTable(w, "events written per pod", func(res result) float64 { return float64(res.Events) / float64(max(res.Pods, 1)) },
		func(a *armReport) float64 { return a.EventsPerPod })
	for _, c := range r.Comparisons {
		verdict := "meets"
		if !c.MeetsTarget {
			verdict = "MISSES"
		}
		if !c.AtSpecSize {
			verdict += fmt.Sprintf(" (target is set at %d nodes)", specNodes)
		}
		var rr []string
		for _, x := range c.RoundRatios {
			rr = append(rr, fmt.Sprintf("%.3f", x))
		}
		var rre []string
		for _, x := range c.RoundRatiosWithEvents {
			rre = append(rre, fmt.Sprintf("%.3f", x))
		}
		fmt.Fprintf(w, "%s\n  ratio of median pods/s %.3f, target >= %.2f: %s\n"+
			"  per round %s (median %.3f); ratio of median pods per CPU-second %.3f\n"+
			"  counted until the events were written: %.3f (per round %s)\n",
			c.Name, c.Ratio, c.Target, verdict, strings.Join(rr, " "), c.MedianRoundRatio, c.CPURatio,
			c.RatioWithEvents, strings.Join(rre, " "))
	}
	fmt.Fprintln(w)
}

func (r *report) printTable(w io.Writer, title string, value func(result) float64, med func(*armReport) float64) {
	fmt.Fprintf(w, "%s\n%-17s %-18s %-22s", title, "arm", "scheduler", "workload")
	for i := 1; i <= r.Options.Rounds; i++ {
		fmt.Fprintf(w, " %9s", fmt.Sprintf("round %d", i))
	}
	fmt.Fprintf(w, " %9s\n", "median")
	for _, a := range r.Arms {
		fmt.Fprintf(w, "%-17s %-18s %-22s", a.Arm, a.SchedulerName, a.Workload)
		byRound := map[int]float64{}
		for _, res := range a.Results {
			byRound[res.Round] = value(res)
		}
		for i := 1; i <= r.Options.Rounds; i++ {
			if v, ok := byRound[i]; ok {
				fmt.Fprintf(w, " %9.1f", v)
			} else {
				fmt.Fprintf(w, " %9s", "failed")
			}
		}
		fmt.Fprintf(w, " %9.1f\n", med(a))
	}
	fmt.Fprintln(w)
}

func (r *report) writeJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
