// Package datalocality holds the DataLocality plugin: pods run near the data
// that they read (the Datasets named by their locus.dev/datasets annotation
// and their bound volumes): on a node that holds it, else in its zone, else
// in its region. With a locality wait (locus.dev/locality-wait), a pod holds
// out for the closest level for a while, then falls back level by level.
package datalocality

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/utils/clock"

	"locus.dev/locus/apis/config"
	"locus.dev/locus/apis/config/validation"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/crdinformer"
	"locus.dev/locus/pkg/generated/clientset/versioned"
	locuslisters "locus.dev/locus/pkg/generated/listers/locus/v1alpha1"
	"locus.dev/locus/pkg/message"
	"locus.dev/locus/pkg/metrics"
)

// DataLocality is the DataLocality plugin.
type DataLocality struct {
	logger  klog.Logger
	handle  framework.Handle
	args    config.DataLocalityArgs
	data    gatherer
	nodes   corelisters.NodeLister
	pods    corelisters.PodLister
	tracker *tracker
	clock   clock.WithDelayedExecution
	// missing says whether the API server served Datasets at their last
	// list (the CRD may be missing, or deleted while the scheduler runs).
	missing *crdinformer.Missing
	// datasetsUnserved: the API server did not serve Datasets when the
	// plugin was built, so no cluster event is registered for them.
	datasetsUnserved bool
}

var _ framework.PreFilterPlugin = &DataLocality{}
var _ framework.FilterPlugin = &DataLocality{}
var _ framework.PostFilterPlugin = &DataLocality{}
var _ framework.PreScorePlugin = &DataLocality{}
var _ framework.ScorePlugin = &DataLocality{}
var _ framework.PostBindPlugin = &DataLocality{}
var _ framework.EnqueueExtensions = &DataLocality{}

const (
	// Name is the plugin's name in a KubeSchedulerConfiguration.
	Name = "DataLocality"

	preFilterStateKey = "PreFilter" + Name
	preScoreStateKey  = "PreScore" + Name

	// ErrReasonInvalidWaitFmt is the reason for a malformed locality-wait
	// annotation: the annotation and its value.
	ErrReasonInvalidWaitFmt = "invalid %s %q: want a duration such as 30s or 2m"
	// ErrReasonWaitingFmt is the Filter reason for a node farther from the
	// pod's data than its locality wait allows yet: the time left, the level
	// waited for, and the level that opens next.
	ErrReasonWaitingFmt = "locality wait: %s left for %s-level locality, then %s"

	// sweepInterval is how often records of pods that are gone are dropped.
	sweepInterval = 5 * time.Minute
)

var datasetsResource = locusv1alpha1.Resource("datasets")

// Name returns the plugin's name.
func (pl *DataLocality) Name() string { return Name }

// New builds the plugin from its args. It reads Datasets through an informer
// that it adds to the scheduler's informer factory, so the scheduler starts
// and syncs it with its own informers before it schedules any pod. Where the
// Dataset CRD is not installed (or is deleted), the plugin reads no Dataset:
// pods that name Datasets are placed without their locality, and the log
// says so.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	args, ok := obj.(*config.DataLocalityArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type DataLocalityArgs, got %T", obj)
	}
	if err := validation.ValidateDataLocalityArgs(nil, args); err != nil {
		return nil, err
	}
	if h.KubeConfig() == nil {
		return nil, fmt.Errorf("%s reads Datasets and needs the scheduler's kubeconfig", Name)
	}
	client, err := versioned.NewForConfig(crdconfig.JSON(h.KubeConfig()))
	if err != nil {
		return nil, fmt.Errorf("building the Dataset client: %w", err)
	}
	pl := newPlugin(ctx, *args, h, client, clock.RealClock{})
	pl.checkServed(client.Discovery())
	return pl, nil
}

// checkServed asks the API server, once as the plugin is built, whether it
// serves Datasets. If not, the plugin registers no cluster event for them:
// the scheduler would build an informer of its own for Datasets and wait at
// start for it to sync, which it never does.
func (pl *DataLocality) checkServed(d discovery.DiscoveryInterface) {
	if !crdinformer.Unserved(d, locusv1alpha1.SchemeGroupVersion, datasetsResource.Resource)[datasetsResource.Resource] {
		return
	}
	pl.datasetsUnserved = true
	pl.logger.Info("Warning: the API server does not serve this resource (is its CRD installed?); "+
		"DataLocality reads no Dataset, so pods that name Datasets are placed without their data's locality. "+
		"Once the CRD is installed, Datasets are read within about a minute, but their changes requeue no waiting pod until the scheduler restarts",
		"resource", locusv1alpha1.DatasetResource)
}

// NewWithClient returns New for a plugin that reads Datasets through client
// (the what-if engine passes a fake one holding a copy of the cluster's).
func NewWithClient(client versioned.Interface) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		args, ok := obj.(*config.DataLocalityArgs)
		if !ok {
			return nil, fmt.Errorf("want args of type DataLocalityArgs, got %T", obj)
		}
		if err := validation.ValidateDataLocalityArgs(nil, args); err != nil {
			return nil, err
		}
		return newPlugin(ctx, *args, h, client, clock.RealClock{}), nil
	}
}

// newPlugin builds the plugin on a Dataset client; tests pass a fake one.
func newPlugin(ctx context.Context, args config.DataLocalityArgs, h framework.Handle, client versioned.Interface, c clock.WithDelayedExecution) *DataLocality {
	metrics.Register()
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	factory := h.SharedInformerFactory()
	// A Dataset list that the API server does not serve (the CRD missing or
	// deleted) reads as empty, so that the scheduler's start, which waits
	// for every informer of its factory, does not wait forever.
	missing := crdinformer.New(logger, Name)
	dsClient := client.LocusV1alpha1().Datasets(v1.NamespaceAll)
	datasets := factory.InformerFor(&locusv1alpha1.Dataset{}, func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return missing.Informer(datasetsResource, "pods that name Datasets are placed without their data's locality",
			&locusv1alpha1.Dataset{}, &locusv1alpha1.DatasetList{}, resync,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return dsClient.List(ctx, o) }, dsClient.Watch)
	})
	core := factory.Core().V1()
	pl := &DataLocality{
		logger: logger,
		handle: h,
		args:   args,
		data: gatherer{
			datasets: locuslisters.NewDatasetLister(datasets.GetIndexer()),
			claims:   core.PersistentVolumeClaims().Lister(),
			volumes:  core.PersistentVolumes().Lister(),
		},
		nodes:   core.Nodes().Lister(),
		pods:    core.Pods().Lister(),
		clock:   c,
		missing: missing,
	}
	pl.tracker = newTracker(c, func(pod *v1.Pod) {
		logger.V(4).Info("locality wait moves to the next level", "pod", klog.KObj(pod))
		h.Activate(logger, map[string]*v1.Pod{pod.Namespace + "/" + pod.Name: pod})
	})
	pl.watchDatasets(datasets)
	// Forget a pod once it is bound or deleted, whoever bound it. Only pods
	// that read data are ever tracked.
	_, _ = core.Pods().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, newObj interface{}) {
			if pod, ok := newObj.(*v1.Pod); ok && pod.Spec.NodeName != "" && readsData(pod) {
				pl.tracker.forget(pod.UID)
			}
		},
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if pod, ok := obj.(*v1.Pod); ok && readsData(pod) {
				pl.tracker.forget(pod.UID)
			}
		},
	})
	// A delete or bind that raced with a scheduling cycle leaves a record
	// behind; sweep those now and then.
	go func() {
		ticker := time.NewTicker(sweepInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-ticker.C:
				pl.tracker.sweep(pl.podPending)
			}
		}
	}()
	return pl
}

// podPending says whether the pod still exists unbound, per the informer.
func (pl *DataLocality) podPending(uid types.UID, namespace, name string) bool {
	pod, err := pl.pods.Pods(namespace).Get(name)
	return err == nil && pod.UID == uid && pod.Spec.NodeName == ""
}

// preFilterState is the pod's data and its locality wait step, computed
// once per scheduling cycle.
type preFilterState struct {
	data *Data
	step Step
	// reason is step.Reason(), the same for every node in this cycle.
	reason string
}

// Clone returns the state itself: it does not change with added or removed pods.
func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter reads where the pod's data lives and whether its locality wait
// keeps it from some nodes. Pods that read no data, or that no longer (or
// never) wait, skip Filter.
func (pl *DataLocality) PreFilter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	logger := klog.FromContext(ctx)
	waitFor, err := LocalityWait(pod, pl.args.DefaultLocalityWait.Duration)
	if err != nil {
		logger.V(4).Info("pod has a malformed locality wait", "pod", klog.KObj(pod), "err", err)
		// Preemption cannot fix an annotation; only an update of the pod
		// can (see the Pod/Update queueing hint).
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if !readsData(pod) {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	d := pl.gather(ctx, pod)
	s := &preFilterState{data: d, step: noWait}
	cycleState.Write(preFilterStateKey, s)
	if waitFor == 0 || d.Empty() {
		pl.tracker.done(pod)
		return nil, fwk.NewStatus(fwk.Skip)
	}
	now := pl.clock.Now()
	s.step = StepAt(presentLevels(d, nodes), waitFor, now.Sub(pl.tracker.firstSeen(pod)))
	if !s.step.Waiting() {
		pl.tracker.done(pod)
		return nil, fwk.NewStatus(fwk.Skip)
	}
	s.reason = s.step.Reason()
	pl.tracker.wait(pod, d, s.step, now)
	logger.V(4).Info("pod waits for locality", "pod", klog.KObj(pod), "level", s.step.Allowed, "left", s.step.Left)
	if s.step.Allowed == LevelNode {
		// Only the nodes holding the data are allowed: name them, and the
		// framework filters and scores no other.
		if held := d.nodesHolding(nodes); held.Len() > 0 && held.Len() < len(nodes) {
			return &framework.PreFilterResult{NodeNames: held}, nil
		}
	}
	return nil, nil
}

// gather reads the pod's data and reports, once per pod, each Dataset that
// it names but that does not exist. A missing Dataset is no error: it just
// contributes nothing.
func (pl *DataLocality) gather(ctx context.Context, pod *v1.Pod) *Data {
	d, missing := pl.data.gather(pod)
	if fresh := pl.tracker.newlyMissing(pod, missing); len(fresh) > 0 {
		// The names come from an annotation of up to 256 KiB: the log and
		// the event name a few, clipped (the API server refuses events
		// over 1,024 bytes).
		names := message.List(fresh)
		why := "it does not affect placement"
		if pl.missing != nil && pl.missing.NotServed(datasetsResource) {
			why += " (the API server does not serve " + datasetsResource.String() + ": is its CRD installed?)"
		}
		klog.FromContext(ctx).V(4).Info("pod names Datasets that do not exist", "pod", klog.KObj(pod), "datasets", names, "count", len(fresh))
		pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonDatasetNotFound, "Scheduling",
			"Dataset %s not found in namespace %s; %s", names, pod.Namespace, why)
	}
	return d
}

// PreFilterExtensions returns nil: the state does not depend on other pods.
func (pl *DataLocality) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects a node that is farther from the pod's data than the pod's
// locality wait allows yet.
func (pl *DataLocality) Filter(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.data.LevelOf(nodeInfo.Node()) <= s.step.Allowed {
		return nil
	}
	// Unschedulable, not UnschedulableAndUnresolvable: the rejection lifts
	// by itself as the wait runs out, and it is no verdict on the node.
	return fwk.NewStatus(fwk.Unschedulable, s.reason)
}

// PostFilter runs for a pod that found no node. While the pod waits for
// locality, it says so: PreFilter named only the nodes near enough, and the
// framework reports the others as not satisfying DataLocality without
// Filter's reason, so the wait and its time left join the pod's
// unschedulable message here. It never makes the pod schedulable.
func (pl *DataLocality) PostFilter(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, _ framework.NodeToStatusReader) (*framework.PostFilterResult, *fwk.Status) {
	if s, err := getPreFilterState(cycleState); err == nil && s.step.Waiting() {
		return nil, fwk.NewStatus(fwk.Unschedulable, s.reason)
	}
	return nil, fwk.NewStatus(fwk.Unschedulable)
}

// preScoreState is the pod's data, for Score.
type preScoreState struct {
	data *Data
}

// Clone returns the state itself: it does not change with added or removed pods.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore takes the pod's data from PreFilter, or reads it if PreFilter is
// not enabled. Pods without located data skip Score: every node is equal.
func (pl *DataLocality) PreScore(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if !readsData(pod) {
		return fwk.NewStatus(fwk.Skip)
	}
	var d *Data
	if s, err := getPreFilterState(cycleState); err == nil {
		d = s.data
	} else {
		d = pl.gather(ctx, pod)
	}
	cycleState.Write(preScoreStateKey, &preScoreState{data: d})
	if d.Empty() {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// Score is the node's weighted bytes of the pod's data (see Data.Score),
// capped to fit an int64; NormalizeScore maps it to 0..100.
func (pl *DataLocality) Score(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	s, err := getPreScoreState(cycleState)
	if err != nil {
		return 0, fwk.AsStatus(err)
	}
	score := s.data.Score(nodeInfo.Node(), pl.args.ZoneWeight, pl.args.RegionWeight)
	if score >= math.MaxInt64 {
		return math.MaxInt64, nil
	}
	return int64(score), nil
}

// NormalizeScore scales the scores to 0..100, the node with the most
// weighted bytes highest. If no node is near the data, all score 0.
func (pl *DataLocality) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *fwk.Status {
	var highest int64
	for _, s := range scores {
		highest = max(highest, s.Score)
	}
	for i := range scores {
		if highest <= 0 {
			scores[i].Score = 0
			continue
		}
		// In floating point: bytes times 100 overflow an int64.
		scores[i].Score = int64(math.Round(float64(framework.MaxNodeScore) * float64(scores[i].Score) / float64(highest)))
	}
	return nil
}

// ScoreExtensions returns the plugin, for NormalizeScore.
func (pl *DataLocality) ScoreExtensions() framework.ScoreExtensions { return pl }

// PostBind counts the placement by the locality level achieved, for pods
// that read data, records a LocalityPlacement event when the pod got no
// locality at all though its data has a location, and forgets the pod.
func (pl *DataLocality) PostBind(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) {
	if !readsData(pod) {
		return // never tracked, nothing to count
	}
	defer pl.tracker.forget(pod.UID)
	var d *Data
	if s, err := getPreScoreState(cycleState); err == nil {
		d = s.data
	} else if s, err := getPreFilterState(cycleState); err == nil {
		d = s.data
	}
	if d == nil || (d.Empty() && len(DatasetNames(pod)) == 0) {
		return // the pod reads no data
	}
	node, err := pl.nodes.Get(nodeName)
	if err != nil {
		ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(nodeName)
		if err != nil {
			return
		}
		node = ni.Node()
	}
	level := d.LevelOf(node)
	metrics.LocalityPlacements.WithLabelValues(level.String()).Inc()
	note := PlacementNote(d, node, level)
	klog.FromContext(ctx).V(4).Info("placed near data", "pod", klog.KObj(pod), "node", nodeName, "level", level, "note", note)
	// An event costs an API write per pod, as much as the bind itself
	// (docs/benchmarks.md). Every placement is counted by the metric, and
	// kubectl locus explain shows a pod's locality; the event is kept for
	// the placement worth a look: a pod that got no locality at all, though
	// its data is somewhere.
	if level == LevelNone && d.Closest() < LevelNone {
		pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeNormal, locusv1alpha1.EventReasonLocalityPlacement, "Scheduled", "%s", note)
	}
}

// PlacementNote says how near its data a pod landed:
// "node-level locality on worker-7: 400Gi on the node, 1Ti in its zone, 1Ti in its region".
func PlacementNote(d *Data, node *v1.Node, level Level) string {
	onNode, inZone, inRegion := d.Bytes(node)
	var parts []string
	for _, p := range []struct {
		bytes int64
		where string
	}{{onNode, "on the node"}, {inZone, "in its zone"}, {inRegion, "in its region"}} {
		if p.bytes > 0 {
			parts = append(parts, resource.NewQuantity(p.bytes, resource.BinarySI).String()+" "+p.where)
		}
	}
	if len(parts) == 0 {
		return fmt.Sprintf("no locality on %s: none of the pod's data is on the node, in its zone or in its region", node.Name)
	}
	return fmt.Sprintf("%s-level locality on %s: %s", level, node.Name, strings.Join(parts, ", "))
}

func getPreFilterState(cycleState fwk.CycleState) (*preFilterState, error) {
	c, err := cycleState.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", preFilterStateKey, err)
	}
	s, ok := c.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v cannot be converted to datalocality.preFilterState", c)
	}
	return s, nil
}

func getPreScoreState(cycleState fwk.CycleState) (*preScoreState, error) {
	c, err := cycleState.Read(preScoreStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", preScoreStateKey, err)
	}
	s, ok := c.(*preScoreState)
	if !ok {
		return nil, fmt.Errorf("%+v cannot be converted to datalocality.preScoreState", c)
	}
	return s, nil
}
