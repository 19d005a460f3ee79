package bench

import (
	"runtime/metrics"
	"sync"
	"time"
)

// heapSampler records the peak of the process's live heap objects while an
// arm runs, read through runtime/metrics (no stop-the-world) every 50ms.
// The API server, etcd and the harness share the process, so the figure
// reported is the peak above the baseline taken just before the scheduler
// starts: what the scheduler and the load it causes add.
type heapSampler struct {
	baseline uint64
	stopCh   chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	peak     uint64
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func heapBytes() uint64 {
	s := []metrics.Sample{{Name: heapMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

func startHeapSampler() *heapSampler {
	h := &heapSampler{baseline: heapBytes(), stopCh: make(chan struct{})}
	h.peak = h.baseline
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-h.stopCh:
				return
			case <-t.C:
				h.observe(heapBytes())
			}
		}
	}()
	return h
}

func (h *heapSampler) observe(b uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.peak = max(h.peak, b)
}

// stop ends the sampling and returns the peak above the baseline, in MiB.
func (h *heapSampler) stop() float64 {
	h.observe(heapBytes())
	close(h.stopCh)
	h.wg.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	return float64(h.peak-h.baseline) / (1 << 20)
}

// baselineMiB is the process's live heap when the sampling started: the API
// server, etcd and the harness, before the arm's scheduler.
func (h *heapSampler) baselineMiB() float64 {
	return float64(h.baseline) / (1 << 20)
}
