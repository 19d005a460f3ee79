package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"

	pprofile "github.com/google/pprof/profile"
)

// The API server, etcd, the harness and the scheduler share one process, so
// the process's CPU time cannot tell what the scheduler itself costs. The
// goroutines that start the scheduler (and so every goroutine it starts:
// informers, the scheduling loop, binding, event recording, the plugins'
// own informers) carry the pprof label component=scheduler, the harness's
// component=harness; the API server's and etcd's goroutines, started before
// any label was set, carry none. A CPU profile taken while an arm runs is
// then summed by that label.
const componentLabel = "component"

const (
	componentScheduler = "scheduler"
	componentHarness   = "harness"
)

// withComponent runs f with the component label set on this goroutine, and
// so on every goroutine f starts.
func withComponent(ctx context.Context, component string, f func(context.Context)) {
	pprof.Do(ctx, pprof.Labels(componentLabel, component), f)
}

// cpuSplit is one arm's CPU profile.
type cpuSplit struct {
	buf bytes.Buffer
	on  bool
}

// startCPUSplit starts profiling; it is off (and the split left out of the
// result) when a profile is already running, e.g. under go test -cpuprofile.
func startCPUSplit() *cpuSplit {
	s := &cpuSplit{}
	s.on = pprof.StartCPUProfile(&s.buf) == nil
	return s
}

// cpuShares is CPU-seconds by component while an arm ran.
type cpuShares struct {
	Scheduler float64 `json:"scheduler"`
	Harness   float64 `json:"harness"`
	// Rest is everything without a label: the API server, etcd and the
	// runtime's own background work (the garbage collector's workers).
	Rest float64 `json:"rest"`
}

// stop ends the profile, writes it to dir/name.pprof when dir is set, and
// sums its samples by component. It returns nil when profiling was off.
func (s *cpuSplit) stop(dir, name string) (*cpuShares, error) {
	if !s.on {
		return nil, nil
	}
	pprof.StopCPUProfile()
	if dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name+".pprof"), s.buf.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	return splitProfile(s.buf.Bytes())
}

func splitProfile(data []byte) (*cpuShares, error) {
	p, err := pprofile.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("reading the CPU profile: %w", err)
	}
	cpu := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			cpu = i
		}
	}
	if cpu < 0 {
		return nil, fmt.Errorf("the CPU profile has no cpu/nanoseconds samples")
	}
	shares := &cpuShares{}
	for _, smp := range p.Sample {
		secs := float64(smp.Value[cpu]) / 1e9
		var component string
		if l := smp.Label[componentLabel]; len(l) > 0 {
			component = l[0]
		}
		switch component {
		case componentScheduler:
			shares.Scheduler += secs
		case componentHarness:
			shares.Harness += secs
		default:
			shares.Rest += secs
		}
	}
	return shares, nil
}
