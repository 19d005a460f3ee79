// Package explain is the what-if engine that kubectl-locus and the sandbox
// share. It runs a scheduler profile (kube-scheduler's in-tree plugins plus
// locus's) in memory on a copy of a cluster's state, one scheduling cycle at
// a time: PreFilter, Filter on every node, PreScore, Score and
// NormalizeScore on the feasible ones. It says, node by node and plugin by
// plugin, why a pod fits where it fits and why it does not fit elsewhere
// (Evaluate), and where a list of pods would land in queue order, each
// placed pod taking its node's resources and its quota for the next
// (Simulate).
//
// The engine never writes to the cluster: its framework handle's clientset
// is a fake one seeded with the State, DataLocality and BatchQuota are given
// fake clients of their custom resources seeded with the State's Datasets,
// ElasticQuotas and PodGroups, BatchQuota never leads (so it writes no
// status), and event recorders discard.
package explain

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/apiserver/pkg/util/feature"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	resourceslicetracker "k8s.io/dynamic-resource-allocation/resourceslice/tracker"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/features"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkplugins "k8s.io/kubernetes/pkg/scheduler/framework/plugins"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/dynamicresources"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedmetrics "k8s.io/kubernetes/pkg/scheduler/metrics"
	"k8s.io/kubernetes/pkg/scheduler/util/assumecache"
	schedfake "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned/fake"

	"locus.dev/locus/pkg/batchquota"
	"locus.dev/locus/pkg/datalocality"
	locusfake "locus.dev/locus/pkg/generated/clientset/versioned/fake"
	"locus.dev/locus/pkg/leader"
	"locus.dev/locus/pkg/plugins"
)

// syncTimeout bounds the wait for the in-memory informers.
const syncTimeout = time.Minute

// Engine runs one scheduler profile in memory on a State.
type Engine struct {
	fw      framework.Framework
	state   *State
	plugins map[string]framework.Plugin
	// filters are the profile's Filter plugins, in its order.
	filters  []framework.FilterPlugin
	snapshot *snapshotLister
	client   *fake.Clientset
	pods     corelisters.PodLister
	cancel   context.CancelFunc
	// assumed are pods placed by Simulate, by UID.
	assumed map[string]*v1.Pod
}

// New builds the profile's plugins on the state and waits until their
// informers have caught up with it. The state must not change afterwards;
// Close releases the engine.
func New(ctx context.Context, profile *schedconfig.KubeSchedulerProfile, state *State) (*Engine, error) {
	// The framework records its own metrics; they go nowhere here.
	schedmetrics.Register()
	ctx, cancel := context.WithCancel(ctx)
	e := &Engine{state: state, plugins: map[string]framework.Plugin{}, cancel: cancel, assumed: map[string]*v1.Pod{}}
	if err := e.build(ctx, profile); err != nil {
		cancel()
		return nil, err
	}
	return e, nil
}

func (e *Engine) build(ctx context.Context, profile *schedconfig.KubeSchedulerProfile) error {
	logger := klog.FromContext(ctx).WithName("explain")
	var core []runtime.Object
	for _, n := range e.state.Nodes {
		core = append(core, clean(n))
	}
	for _, p := range e.state.Pods {
		core = append(core, clean(p))
	}
	for _, ns := range e.state.Namespaces {
		core = append(core, clean(ns))
	}
	for _, o := range e.state.Other {
		core = append(core, clean(o))
	}
	e.client = fake.NewClientset(core...)

	// The custom resources that locus's plugins read, served to them by
	// fake clientsets: the plugins run unchanged on this copy of the
	// cluster, with no route to the real API server.
	var datasets, sched []runtime.Object
	for _, d := range e.state.Datasets {
		datasets = append(datasets, clean(d))
	}
	for _, q := range e.state.ElasticQuotas {
		sched = append(sched, clean(q))
	}
	for _, g := range e.state.PodGroups {
		sched = append(sched, clean(g))
	}

	factory := informers.NewSharedInformerFactory(e.client, 0)
	e.pods = factory.Core().V1().Pods().Lister()
	podsSynced := factory.Core().V1().Pods().Informer().HasSynced

	var draManager framework.SharedDRAManager
	if feature.DefaultFeatureGate.Enabled(features.DynamicResourceAllocation) {
		claims := assumecache.NewAssumeCache(logger, factory.Resource().V1().ResourceClaims().Informer(), "ResourceClaim", "", nil)
		slices, err := resourceslicetracker.StartTracker(ctx, resourceslicetracker.Options{
			SliceInformer: factory.Resource().V1().ResourceSlices(),
			KubeClient:    e.client,
		})
		if err != nil {
			return fmt.Errorf("starting the resource slice tracker: %w", err)
		}
		draManager = dynamicresources.NewDRAManager(ctx, claims, slices, factory)
	}

	// Plugin instances are kept so that every Filter plugin can be asked
	// about every node, not only up to the first that rejects it.
	// A what-if engine never leads: its plugins write no status and record
	// no cluster-level events.
	registry := frameworkplugins.NewInTreeRegistry()
	if err := registry.Merge(plugins.RegistryFor(leader.New())); err != nil {
		return err
	}
	registry[batchquota.Name] = batchquota.NewWithClient(schedfake.NewClientset(sched...), leader.New())
	registry[datalocality.Name] = datalocality.NewWithClient(locusfake.NewSimpleClientset(datasets...))
	for name, factoryFn := range registry {
		name, factoryFn := name, factoryFn
		registry[name] = func(ctx context.Context, args runtime.Object, h framework.Handle) (framework.Plugin, error) {
			p, err := factoryFn(ctx, args, h)
			if err == nil {
				e.plugins[name] = p
			}
			return p, err
		}
	}

	e.snapshot = &snapshotLister{cur: internalcache.NewSnapshot(e.boundPods(), e.state.Nodes)}
	var err error
	e.fw, err = frameworkruntime.NewFramework(ctx, registry, profile,
		frameworkruntime.WithClientSet(e.client),
		frameworkruntime.WithInformerFactory(factory),
		frameworkruntime.WithSharedDRAManager(draManager),
		frameworkruntime.WithSnapshotSharedLister(e.snapshot),
		frameworkruntime.WithEventRecorder(&events.FakeRecorder{}),
		frameworkruntime.WithPodNominator(noNominator{}),
		frameworkruntime.WithPodActivator(noActivator{}),
		frameworkruntime.WithWaitingPods(frameworkruntime.NewWaitingPodsMap()),
		frameworkruntime.WithLogger(logger),
	)
	if err != nil {
		return fmt.Errorf("building profile %s: %w", profile.SchedulerName, err)
	}
	for _, p := range e.fw.ListPlugins().Filter.Enabled {
		if pl, ok := e.plugins[p.Name].(framework.FilterPlugin); ok {
			e.filters = append(e.filters, pl)
		}
	}

	syncCtx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(syncCtx.Done()) {
		if !ok {
			return fmt.Errorf("informer for %v did not sync", typ)
		}
	}
	if !cache.WaitForCacheSync(syncCtx.Done(), podsSynced) {
		return fmt.Errorf("pod informer did not sync")
	}
	return e.waitForQuota(syncCtx)
}

// waitForQuota waits until BatchQuota has counted the ElasticQuotas and
// pods: before that its PreFilter turns every pod away.
func (e *Engine) waitForQuota(ctx context.Context) error {
	pl, ok := e.plugins[batchquota.Name].(interface{ HasSynced() bool })
	if !ok {
		return nil
	}
	err := wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
		return pl.HasSynced(), nil
	})
	if err != nil {
		return fmt.Errorf("%s did not read the quotas: %w", batchquota.Name, err)
	}
	return nil
}

// Close stops the engine's informers and plugins.
func (e *Engine) Close() {
	e.cancel()
	if e.fw != nil {
		_ = e.fw.Close()
	}
}

// resnapshot takes a new snapshot after Simulate placed or released a pod.
func (e *Engine) resnapshot() {
	e.snapshot.cur = internalcache.NewSnapshot(e.boundPods(), e.state.Nodes)
}

// clean copies an object without the fields that only the API server sets
// and that the in-memory trackers reject or do not need.
func clean(obj runtime.Object) runtime.Object {
	c := obj.DeepCopyObject()
	if m, err := meta.Accessor(c); err == nil {
		m.SetResourceVersion("")
		m.SetManagedFields(nil)
	}
	return c
}

// snapshotLister is the framework's view of the nodes. Simulate swaps the
// snapshot between cycles, never during one.
type snapshotLister struct {
	cur *internalcache.Snapshot
}

func (s *snapshotLister) NodeInfos() framework.NodeInfoLister       { return s.cur.NodeInfos() }
func (s *snapshotLister) StorageInfos() framework.StorageInfoLister { return s.cur.StorageInfos() }

// noNominator: the engine does not preempt, so no pod is nominated.
type noNominator struct{}

func (noNominator) AddNominatedPod(klog.Logger, fwk.PodInfo, *framework.NominatingInfo) {}
func (noNominator) DeleteNominatedPodIfExists(*v1.Pod)                                  {}
func (noNominator) UpdateNominatedPod(klog.Logger, *v1.Pod, fwk.PodInfo)                {}
func (noNominator) NominatedPodsForNode(string) []fwk.PodInfo                           { return nil }

// noActivator: there is no queue to move pods in.
type noActivator struct{}

func (noActivator) Activate(klog.Logger, map[string]*v1.Pod) {}

// Framework returns the engine's framework, for callers that need more than
// Evaluate and Simulate.
func (e *Engine) Framework() framework.Framework { return e.fw }

// boundPods are the pods that take room on nodes: bound ones and those that
// Simulate has placed.
func (e *Engine) boundPods() []*v1.Pod {
	var out []*v1.Pod
	for _, p := range e.state.Pods {
		if p.Spec.NodeName != "" {
			out = append(out, p)
		}
	}
	for _, p := range e.assumed {
		out = append(out, p)
	}
	return out
}
