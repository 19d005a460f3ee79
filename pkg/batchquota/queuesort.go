package batchquota

import (
	"time"

	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

var _ framework.QueueSortPlugin = &BatchQuota{}

// Less orders the scheduling queue: higher priority first; then a gang's
// members together (they share every key below); then the quota that uses
// the least of its min (fair share); then the older pod or gang.
func (pl *BatchQuota) Less(a, b fwk.QueuedPodInfo) bool {
	pa, pb := a.GetPodInfo().GetPod(), b.GetPodInfo().GetPod()
	if prioA, prioB := corev1helpers.PodPriority(pa), corev1helpers.PodPriority(pb); prioA != prioB {
		return prioA > prioB
	}
	ga, gb := pa.Labels[schedv1alpha1.PodGroupLabel], pb.Labels[schedv1alpha1.PodGroupLabel]
	if pa.Namespace == pb.Namespace && ga != "" && ga == gb {
		return queuedBefore(a, b)
	}
	if sa, sb := pl.cache.Share(pa.Namespace), pl.cache.Share(pb.Namespace); sa != sb {
		return sa < sb
	}
	ta, tb := pl.groupTime(pa.Namespace, ga, a), pl.groupTime(pb.Namespace, gb, b)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	return groupKey(pa.Namespace, pa.Name, ga) < groupKey(pb.Namespace, pb.Name, gb)
}

// groupTime is a gang's PodGroup creation time, or a lone pod's first time in the queue.
func (pl *BatchQuota) groupTime(ns, gang string, p fwk.QueuedPodInfo) time.Time {
	if gang != "" {
		if pg, err := pl.groups.PodGroups(ns).Get(gang); err == nil {
			return pg.CreationTimestamp.Time
		}
	}
	return queuedTime(p)
}

func queuedTime(p fwk.QueuedPodInfo) time.Time {
	if t := p.GetInitialAttemptTimestamp(); t != nil {
		return *t
	}
	return p.GetTimestamp()
}

func queuedBefore(a, b fwk.QueuedPodInfo) bool {
	ta, tb := queuedTime(a), queuedTime(b)
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	pa, pb := a.GetPodInfo().GetPod(), b.GetPodInfo().GetPod()
	return pa.Name < pb.Name
}

func groupKey(ns, name, gang string) string {
	if gang != "" {
		return ns + "/" + gang
	}
	return ns + "/" + name
}
