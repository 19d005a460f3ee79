package batchquota

import (
	"time"

	v1 "k8s.io/api/core/v1"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

var _ framework.QueueSortPlugin = &BatchQuota{}

// Less orders the scheduling queue: higher priority first; then a gang's
// members together (they share every key below); then the quota that used
// the least of its min when the gang or pod was queued (fair share,
// queuedShare); then the older pod or gang.
func (pl *BatchQuota) Less(a, b fwk.QueuedPodInfo) bool {
	pa, pb := a.GetPodInfo().GetPod(), b.GetPodInfo().GetPod()
	if prioA, prioB := corev1helpers.PodPriority(pa), corev1helpers.PodPriority(pb); prioA != prioB {
		return prioA > prioB
	}
	ga, gb := pa.Labels[schedv1alpha1.PodGroupLabel], pb.Labels[schedv1alpha1.PodGroupLabel]
	if pa.Namespace == pb.Namespace && ga != "" && ga == gb {
		return queuedBefore(a, b)
	}
	if sa, sb := pl.queuedShare(pa.Namespace, pa.Name, ga), pl.queuedShare(pb.Namespace, pb.Name, gb); sa != sb {
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

// queuedShare is the fair share that orders a gang (or a lone pod) in the
// queue: its namespace's share of its min when the queue first compared one
// of its pods. The scheduler's queue is a heap, and a heap whose order
// changes under it pops pods out of order: with the live share, which moves
// with every placement, a burst of gangs in several namespaces came out with
// their members scattered among other gangs', and partly placed gangs piled
// up at Permit holding quota and nodes. The value is kept until the pod, or
// the gang's last pending member, is placed or deleted (forgetQueuedShare),
// so the next pods see the share of that time.
func (pl *BatchQuota) queuedShare(ns, name, gang string) float64 {
	key := newShareKey(ns, name, gang)
	if v, ok := pl.queuedShares.Load(key); ok {
		return v.(float64)
	}
	v, _ := pl.queuedShares.LoadOrStore(key, pl.cache.Share(ns))
	return v.(float64)
}

// forgetQueuedShare drops the pod's queue share once nothing of its gang
// (or the lone pod itself) waits in the queue: placed, or deleted.
func (pl *BatchQuota) forgetQueuedShare(pod *v1.Pod) {
	gang := pod.Labels[schedv1alpha1.PodGroupLabel]
	if gang != "" {
		for _, p := range pl.groupPods(pod.Namespace, gang) {
			if p.UID != pod.UID && pending(p) {
				return // a member still pending
			}
		}
	}
	pl.queuedShares.Delete(newShareKey(pod.Namespace, pod.Name, gang))
}

// pending says whether a pod still waits to be placed: not bound, not
// being deleted.
func pending(p *v1.Pod) bool { return p.Spec.NodeName == "" && p.DeletionTimestamp == nil }

// shareKey names a gang, or a lone pod, in queuedShares: a struct rather
// than groupKey's string, since Less looks it up on every comparison and
// should not build a string each time.
type shareKey struct {
	ns, name string
	gang     bool
}

func newShareKey(ns, name, gang string) shareKey {
	if gang != "" {
		return shareKey{ns: ns, name: gang, gang: true}
	}
	return shareKey{ns: ns, name: name}
}
