package compliance

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/util"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// namespacesGVK makes the framework watch namespaces through its dynamic
// informers (<resource>.<version>.<group>, the core group being empty).
const namespacesGVK fwk.EventResource = "namespaces.v1."

// isSchedulableAfterNamespaceChange queues the pod when its namespace
// appears or its compliance annotations change.
func (pl *Compliance) isSchedulableAfterNamespaceChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldNS, err := asNamespace(oldObj)
	if err != nil {
		return fwk.Queue, err
	}
	newNS, err := asNamespace(newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if newNS == nil || newNS.Name != pod.Namespace {
		return fwk.QueueSkip, nil
	}
	if oldNS == nil {
		return fwk.Queue, nil
	}
	for _, key := range []string{locusv1alpha1.AnnotationCompliance, locusv1alpha1.AnnotationDataResidency} {
		if oldNS.Annotations[key] != newNS.Annotations[key] {
			logger.V(4).Info("namespace's compliance annotations changed", "pod", klog.KObj(pod), "namespace", newNS.Name, "annotation", key)
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// asNamespace reads a namespace from a typed or unstructured object (dynamic
// informers deliver unstructured ones); nil stays nil.
func asNamespace(obj interface{}) (*v1.Namespace, error) {
	switch o := obj.(type) {
	case nil:
		return nil, nil
	case *v1.Namespace:
		return o, nil
	case *unstructured.Unstructured:
		ns := &v1.Namespace{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ns); err != nil {
			return nil, err
		}
		return ns, nil
	default:
		return nil, fmt.Errorf("want a Namespace, got %T", obj)
	}
}

// isSchedulableAfterNodeChange queues the pod when a node that did not meet
// its requirements now does.
func (pl *Compliance) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	req, err := pl.requirements(pod)
	if err != nil {
		// A malformed annotation is resolved only by changing the pod.
		return fwk.QueueSkip, nil
	}
	now := pl.clock.Now()
	if req.Check(newNode, pl.args.CertificationLabelPrefix, now) != nil {
		logger.V(5).Info("node does not meet the pod's compliance requirements", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
		return fwk.QueueSkip, nil
	}
	if oldNode != nil && req.Check(oldNode, pl.args.CertificationLabelPrefix, now) == nil {
		// It met them before, so this update changes nothing for the pod.
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("node now meets the pod's compliance requirements", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.Queue, nil
}

// isSchedulableAfterPodUpdate queues the pod when its own compliance
// annotations change (the way out of a malformed annotation).
func (pl *Compliance) isSchedulableAfterPodUpdate(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if newPod.UID != pod.UID {
		return fwk.QueueSkip, nil
	}
	for _, key := range []string{locusv1alpha1.AnnotationCompliance, locusv1alpha1.AnnotationDataResidency} {
		if oldPod.Annotations[key] != newPod.Annotations[key] {
			logger.V(4).Info("pod's compliance annotations changed", "pod", klog.KObj(pod), "annotation", key)
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}
