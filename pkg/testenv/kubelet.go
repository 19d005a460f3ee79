package testenv

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
)

// StartPodReaper stands in for the kubelets that this control plane does
// not have, in the one thing that tests of preemption need: a bound pod that
// is deleted gracefully (preemption victims, kubectl delete) stays
// Terminating until its kubelet confirms, forever here. The reaper watches
// all pods and force-deletes (grace period 0) every one that has a
// deletionTimestamp. It returns once its informer has synced and runs until
// ctx is done.
func StartPodReaper(ctx context.Context, client kubernetes.Interface) error {
	logger := klog.FromContext(ctx).WithName("pod-reaper")
	factory := informers.NewSharedInformerFactory(client, 0)
	informer := factory.Core().V1().Pods().Informer()
	reap := func(obj interface{}) {
		pod, ok := obj.(*v1.Pod)
		if !ok || pod.DeletionTimestamp == nil {
			return
		}
		// Not in the handler: deletes are API calls, and handlers of one
		// informer run one at a time.
		go func() {
			err := client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
				GracePeriodSeconds: ptr.To[int64](0),
				Preconditions:      &metav1.Preconditions{UID: &pod.UID},
			})
			switch {
			case err == nil:
				logger.V(4).Info("force-deleted a terminating pod", "pod", klog.KObj(pod))
			case apierrors.IsNotFound(err), apierrors.IsConflict(err), ctx.Err() != nil:
				// Gone already, or replaced by a pod of the same name.
			default:
				logger.Error(err, "force-deleting a terminating pod", "pod", klog.KObj(pod))
			}
		}()
	}
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    reap,
		UpdateFunc: func(_, obj interface{}) { reap(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	syncCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if !cache.WaitForCacheSync(syncCtx.Done(), informer.HasSynced) {
		return fmt.Errorf("pod reaper: pod informer did not sync")
	}
	return nil
}
