package datalocality

import (
	"context"
	"fmt"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// EventsToRegister lists the events that can end a rejection by this plugin.
// The plugin rejects a node only while the pod's locality wait holds it to
// closer nodes, or the whole pod for a malformed wait annotation. The wait
// running out is no cluster event: a timer requeues the pod then
// (handle.Activate). Events that help earlier: a node near the data appears
// or is labelled into the data's zone or region, a pod on such a node goes
// away (freeing room), a Dataset that the pod reads changes, or the pod's own
// annotations change.
func (pl *DataLocality) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodUpdate},
	}
	// The scheduler watches Datasets through an informer of its own and
	// waits for it at start: where the API server does not serve them (the
	// CRD missing), it would wait forever. Waiting pods then come back on
	// their timers, on node and pod events, or within the scheduler's
	// periodic flush.
	if !pl.datasetsUnserved {
		events = append(events, fwk.ClusterEventWithHint{Event: fwk.ClusterEvent{Resource: locusv1alpha1.DatasetResource, ActionType: fwk.All}, QueueingHintFn: pl.isSchedulableAfterDatasetChange})
	}
	return events, nil
}

// isSchedulableAfterNodeChange queues a waiting pod when a node becomes near
// enough to its data: a new node, or a node labelled into the data's zone or
// region.
func (pl *DataLocality) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	d, step := pl.tracker.waiting(pod.UID)
	if d == nil {
		return fwk.QueueSkip, nil // not waiting: the plugin's rejection was not about nodes
	}
	if d.LevelOf(newNode) > step.Allowed {
		return fwk.QueueSkip, nil
	}
	if oldNode != nil && d.LevelOf(oldNode) <= step.Allowed {
		return fwk.QueueSkip, nil // it was near enough before: nothing changed for the pod
	}
	logger.V(4).Info("node is now near the waiting pod's data", "pod", klog.KObj(pod), "node", klog.KObj(newNode), "level", step.Allowed)
	return fwk.Queue, nil
}

// isSchedulableAfterPodDeleted queues a waiting pod when a pod goes away
// from a node near enough to its data: room may have freed where it waits.
func (pl *DataLocality) isSchedulableAfterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	deleted, _, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if deleted == nil || deleted.Spec.NodeName == "" {
		return fwk.QueueSkip, nil // an unscheduled pod frees nothing
	}
	d, step := pl.tracker.waiting(pod.UID)
	if d == nil {
		return fwk.QueueSkip, nil
	}
	node, err := pl.nodes.Get(deleted.Spec.NodeName)
	if err != nil || d.LevelOf(node) > step.Allowed {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("room may have freed near the waiting pod's data", "pod", klog.KObj(pod), "deletedPod", klog.KObj(deleted), "node", deleted.Spec.NodeName)
	return fwk.Queue, nil
}

// isSchedulableAfterPodUpdate queues the pod when its own datasets or
// locality wait annotation changes (the way out of a malformed wait).
func (pl *DataLocality) isSchedulableAfterPodUpdate(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if oldPod == nil || newPod.UID != pod.UID {
		return fwk.QueueSkip, nil
	}
	for _, key := range []string{locusv1alpha1.AnnotationDatasets, locusv1alpha1.AnnotationLocalityWait} {
		if oldPod.Annotations[key] != newPod.Annotations[key] {
			logger.V(4).Info("pod's data locality annotations changed", "pod", klog.KObj(pod), "annotation", key)
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// isSchedulableAfterDatasetChange queues the pod when a Dataset that it
// reads is created, changed or deleted: where it waits may have moved. The
// objects come from the scheduler's dynamic informer, so they are read
// through their metadata only.
func (pl *DataLocality) isSchedulableAfterDatasetChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	obj := newObj
	if obj == nil {
		obj = oldObj
	}
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	ds, err := meta.Accessor(obj)
	if err != nil {
		return fwk.Queue, fmt.Errorf("reading Dataset metadata: %w", err)
	}
	if ds.GetNamespace() != pod.Namespace || !slices.Contains(DatasetNames(pod), ds.GetName()) {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("a Dataset that the pod reads changed", "pod", klog.KObj(pod), "dataset", ds.GetName())
	return fwk.Queue, nil
}
