package batchquota

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// EventsToRegister lists what can let a pod that BatchQuota turned away
// fit: a bound pod going away (quota freed, here or in a quota it may borrow
// from), a new gang member appearing, and ElasticQuota or PodGroup changes.
func (pl *BatchQuota) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Delete}, QueueingHintFn: pl.isSchedulableAfterPodDeleted},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Add | fwk.UpdatePodSchedulingGatesEliminated}, QueueingHintFn: pl.isSchedulableAfterPodAdded},
	}
	// The scheduler watches these through informers of its own and waits
	// for them at start: for a resource the API server does not serve
	// (its CRD missing), it would wait forever. Pods waiting on it then
	// come back on pod events, or within the scheduler's periodic flush.
	if !pl.unserved[elasticQuotaGVK] {
		events = append(events, fwk.ClusterEventWithHint{Event: fwk.ClusterEvent{Resource: elasticQuotaGVK, ActionType: fwk.Add | fwk.Update | fwk.Delete}, QueueingHintFn: isSpecChange})
	}
	if !pl.unserved[podGroupGVK] {
		events = append(events, fwk.ClusterEventWithHint{Event: fwk.ClusterEvent{Resource: podGroupGVK, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodGroupChange})
	}
	return events, nil
}

// isSchedulableAfterPodDeleted queues the pod when a pod that held quota it
// can use goes away: a bound pod of its own namespace, or, when the pod
// waits for the cluster's guaranteed total, of another namespace with a
// quota. Deletions elsewhere (namespaces without a quota, quotas the pod
// does not wait for) leave it where it is, so that churn in other
// namespaces does not wake every waiting pod.
func (pl *BatchQuota) isSchedulableAfterPodDeleted(logger klog.Logger, pod *v1.Pod, oldObj, _ interface{}) (fwk.QueueingHint, error) {
	deleted, _, err := util.As[*v1.Pod](oldObj, nil)
	if err != nil {
		return fwk.Queue, err
	}
	if deleted.Spec.NodeName == "" {
		return fwk.QueueSkip, nil
	}
	if deleted.Namespace == pod.Namespace {
		logger.V(5).Info("a bound pod of the namespace was deleted; its quota is free", "pod", klog.KObj(pod), "deleted", klog.KObj(deleted))
		return fwk.Queue, nil
	}
	if !pl.cache.Limited(deleted.Namespace) {
		return fwk.QueueSkip, nil
	}
	if aggregate, _ := pl.blocked.Aggregate(pod.UID); !aggregate {
		// It waits for its own namespace's max, or for its gang's pods.
		return fwk.QueueSkip, nil
	}
	logger.V(5).Info("a bound pod of another quota was deleted; the guaranteed total has room", "pod", klog.KObj(pod), "deleted", klog.KObj(deleted))
	return fwk.Queue, nil
}

// isSchedulableAfterPodAdded queues a gang member when a sibling appears:
// the gang may now have minMember pods.
func (pl *BatchQuota) isSchedulableAfterPodAdded(logger klog.Logger, pod *v1.Pod, _, newObj interface{}) (fwk.QueueingHint, error) {
	_, added, err := util.As[*v1.Pod](nil, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	gang := pod.Labels[schedv1alpha1.PodGroupLabel]
	if gang == "" || added.Namespace != pod.Namespace || added.Labels[schedv1alpha1.PodGroupLabel] != gang {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

// isSchedulableAfterPodGroupChange queues a gang member when its PodGroup
// appears or changes (minMember, timeout).
func (pl *BatchQuota) isSchedulableAfterPodGroupChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	gang := pod.Labels[schedv1alpha1.PodGroupLabel]
	if gang == "" {
		return fwk.QueueSkip, nil
	}
	if hint, _ := isSpecChange(logger, pod, oldObj, newObj); hint == fwk.QueueSkip {
		return fwk.QueueSkip, nil
	}
	var ns, name string
	switch o := newObj.(type) {
	case *unstructured.Unstructured:
		ns, name = o.GetNamespace(), o.GetName()
	case *schedv1alpha1.PodGroup:
		ns, name = o.Namespace, o.Name
	default:
		return fwk.Queue, nil
	}
	if ns != pod.Namespace || name != gang {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}

// isSpecChange skips updates that leave spec alone: the status that this
// plugin writes itself must not requeue the pods it turned away.
func isSpecChange(_ klog.Logger, _ *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	o, okOld := oldObj.(*unstructured.Unstructured)
	n, okNew := newObj.(*unstructured.Unstructured)
	if !okOld || !okNew {
		return fwk.Queue, nil // an add or a delete
	}
	if equality.Semantic.DeepEqual(o.Object["spec"], n.Object["spec"]) {
		return fwk.QueueSkip, nil
	}
	return fwk.Queue, nil
}
