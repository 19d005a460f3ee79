package testenv

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/kubernetes/pkg/scheduler"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/kubernetes/pkg/scheduler/profile"

	"locus.dev/locus/pkg/plugins"
)

// DefaultSchedulerConfig is kube-scheduler's own default: one profile,
// "default-scheduler", with the default plugins.
const DefaultSchedulerConfig = `
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
`

// LoadConfig decodes a KubeSchedulerConfiguration exactly as kube-scheduler
// does (with defaults), and validates locus's plugin args in it.
func LoadConfig(data []byte) (*schedconfig.KubeSchedulerConfiguration, error) {
	obj, gvk, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding KubeSchedulerConfiguration: %w", err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("got %v, want a KubeSchedulerConfiguration", gvk)
	}
	if err := plugins.ValidateConfig(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// LoadConfigFile is LoadConfig on a file.
func LoadConfigFile(path string) (*schedconfig.KubeSchedulerConfiguration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return LoadConfig(data)
}

// Scheduler is a running scheduler with its own informers, as a separate
// scheduler process would have.
type Scheduler struct {
	*scheduler.Scheduler
	Informers informers.SharedInformerFactory
	// Events counts the events it has written (created or patched) and
	// when the last write returned.
	Events *EventWrites
	cancel context.CancelFunc
	done   chan struct{}
}

// EventWrites is an events sink that counts what it writes: the scheduler's
// events go through one goroutine, one request at a time, and may be
// written well after the pods they are about.
type EventWrites struct {
	events.EventSink
	mu   sync.Mutex
	n    int
	last time.Time
}

func (w *EventWrites) wrote() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.n++
	w.last = time.Now()
}

// Written returns how many events were written and when the last write returned.
func (w *EventWrites) Written() (int, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.n, w.last
}

// Create writes a new event.
func (w *EventWrites) Create(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	out, err := w.EventSink.Create(ctx, e)
	w.wrote()
	return out, err
}

// Update replaces an event.
func (w *EventWrites) Update(ctx context.Context, e *eventsv1.Event) (*eventsv1.Event, error) {
	out, err := w.EventSink.Update(ctx, e)
	w.wrote()
	return out, err
}

// Patch updates an event series.
func (w *EventWrites) Patch(ctx context.Context, e *eventsv1.Event, data []byte) (*eventsv1.Event, error) {
	out, err := w.EventSink.Patch(ctx, e, data)
	w.wrote()
	return out, err
}

// Stop stops the scheduler and waits until it has returned.
func (s *Scheduler) Stop() {
	s.cancel()
	<-s.done
}

// StartScheduler runs the real kube-scheduler (scheduler.New and Run) with
// locus's out-of-tree plugins and the profiles of cfg. It stops when ctx ends
// or Stop is called.
func StartScheduler(ctx context.Context, cfg *schedconfig.KubeSchedulerConfiguration, client kubernetes.Interface, dyn dynamic.Interface) (*Scheduler, error) {
	return StartSchedulerWithRegistry(ctx, cfg, client, dyn, plugins.Registry())
}

// StartSchedulerWithRegistry is StartScheduler with another out-of-tree registry.
func StartSchedulerWithRegistry(ctx context.Context, cfg *schedconfig.KubeSchedulerConfiguration, client kubernetes.Interface, dyn dynamic.Interface, registry frameworkruntime.Registry) (*Scheduler, error) {
	return StartSchedulerWithKubeConfig(ctx, cfg, nil, client, dyn, registry)
}

// StartSchedulerWithKubeConfig is StartSchedulerWithRegistry that also gives
// plugins the rest config that the clients were built from
// (handle.KubeConfig(), as kube-scheduler does): plugins that read custom
// resources, such as DataLocality, need it.
func StartSchedulerWithKubeConfig(ctx context.Context, cfg *schedconfig.KubeSchedulerConfiguration, kubeConfig *rest.Config, client kubernetes.Interface, dyn dynamic.Interface, registry frameworkruntime.Registry) (*Scheduler, error) {
	ctx, cancel := context.WithCancel(ctx)
	informerFactory := scheduler.NewInformerFactory(client, 0)
	dynInformerFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	sink := &EventWrites{EventSink: &events.EventSinkImpl{Interface: client.EventsV1()}}
	broadcaster := events.NewBroadcaster(sink)

	sched, err := scheduler.New(ctx, client, informerFactory, dynInformerFactory,
		profile.NewRecorderFactory(broadcaster),
		scheduler.WithProfiles(cfg.Profiles...),
		scheduler.WithFrameworkOutOfTreeRegistry(registry),
		scheduler.WithKubeConfig(kubeConfig),
		scheduler.WithParallelism(cfg.Parallelism),
		scheduler.WithPercentageOfNodesToScore(cfg.PercentageOfNodesToScore),
		scheduler.WithPodInitialBackoffSeconds(cfg.PodInitialBackoffSeconds),
		scheduler.WithPodMaxBackoffSeconds(cfg.PodMaxBackoffSeconds),
	)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("creating scheduler: %w", err)
	}
	broadcaster.StartRecordingToSink(ctx.Done())
	informerFactory.Start(ctx.Done())
	dynInformerFactory.Start(ctx.Done())
	informerFactory.WaitForCacheSync(ctx.Done())
	dynInformerFactory.WaitForCacheSync(ctx.Done())
	if err := sched.WaitForHandlersSync(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("waiting for event handlers: %w", err)
	}

	s := &Scheduler{Scheduler: sched, Informers: informerFactory, Events: sink, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sched.Run(ctx)
		broadcaster.Shutdown()
	}()
	return s, nil
}
