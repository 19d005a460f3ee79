package batchquota

import (
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// ErrReasonNodeDeletedFmt rejects a pod waiting at Permit on a node that
// was deleted meanwhile.
const ErrReasonNodeDeletedFmt = "node %s was deleted while the pod waited for its gang"

// watchNodes rejects the pods waiting at Permit on a node that is deleted.
// Left waiting, a gang member would be bound to the deleted node once its
// gang completes, holding its quota until the pod is garbage collected.
// Its gang is released without the schedule-timeout backoff (no fault of
// the gang), and its members are sent back to the active queue to be placed
// on the nodes that remain.
func (pl *BatchQuota) watchNodes(nodes cache.SharedIndexInformer) error {
	_, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		DeleteFunc: func(obj interface{}) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if node, ok := obj.(*v1.Node); ok {
				pl.onNodeDelete(node.Name)
			}
		},
	})
	return err
}

func (pl *BatchQuota) onNodeDelete(name string) {
	var rejected []framework.WaitingPod
	pl.handle.IterateOverWaitingPods(func(wp framework.WaitingPod) {
		if wp.GetPod().Spec.NodeName == name {
			rejected = append(rejected, wp)
		}
	})
	if len(rejected) == 0 {
		return
	}
	again := map[string]*v1.Pod{}
	for _, wp := range rejected {
		p := wp.GetPod()
		if g := p.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
			// No GangTimeout and no backoff for this release.
			pl.gangs.Release(gangKey(p.Namespace, g))
			for _, m := range pl.groupPods(p.Namespace, g) {
				if m.Spec.NodeName == "" {
					again[m.Namespace+"/"+m.Name] = m
				}
			}
		}
		again[p.Namespace+"/"+p.Name] = p
		pl.logger.V(2).Info("rejecting a pod waiting on a deleted node", "pod", p.Namespace+"/"+p.Name, "node", name)
		wp.Reject(Name, fmt.Sprintf(ErrReasonNodeDeletedFmt, name))
	}
	pl.handle.Activate(pl.logger, again)
}
