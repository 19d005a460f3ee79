package batchquota

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota/quota"
)

// addHandlers registers the informer handlers and returns their HasSynced:
// an informer has synced once its store holds the initial list, but the
// counts are complete only when these handlers have counted every item.
func (pl *BatchQuota) addHandlers(eqs, pgs, pods cache.SharedIndexInformer) ([]cache.InformerSynced, error) {
	eqHandler, err := eqs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onQuota,
		UpdateFunc: func(_, obj interface{}) { pl.onQuota(obj) },
		DeleteFunc: pl.onQuotaDelete,
	})
	if err != nil {
		return nil, err
	}
	// Gang members are looked up by their PodGroup on every attempt: an
	// index keeps that from scanning every pod in the cluster.
	if err := pods.AddIndexers(cache.Indexers{podGroupIndex: podGroupIndexFunc, podUIDIndex: podUIDIndexFunc}); err != nil {
		pl.logger.Info("gang members will be found by scanning pods", "err", err)
	} else {
		pl.byGroup = pods.GetIndexer()
	}
	podHandler, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj interface{}) {
			pl.onPod(obj)
			pl.onMemberArrived(nil, obj)
		},
		UpdateFunc: func(old, obj interface{}) {
			pl.onPod(obj)
			pl.onMemberArrived(old, obj)
		},
		DeleteFunc: pl.onPodDelete,
	})
	if err != nil {
		return nil, err
	}
	pgHandler, err := pgs.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onPodGroupAdd,
		UpdateFunc: func(_, obj interface{}) { pl.onPodGroup(obj) },
		DeleteFunc: pl.onPodGroupDelete,
	})
	if err != nil {
		return nil, err
	}
	if err := pl.watchNodes(pl.handle.SharedInformerFactory().Core().V1().Nodes().Informer()); err != nil {
		return nil, err
	}
	return []cache.InformerSynced{eqHandler.HasSynced, pgHandler.HasSynced, podHandler.HasSynced}, nil
}

// onQuota tracks an ElasticQuota. An invalid one (max below min, negative
// amounts) is still tracked with what it says (negative amounts as zero),
// after an event naming the bad value: refusing it would silently lift the
// namespace's limit.
func (pl *BatchQuota) onQuota(obj interface{}) {
	eq, ok := obj.(*schedv1alpha1.ElasticQuota)
	if !ok {
		return
	}
	if msg := invalidQuota(eq); msg != "" {
		pl.logger.Info("ElasticQuota has invalid values", "elasticQuota", klog.KObj(eq), "problem", msg)
		if pl.leading() {
			pl.handle.EventRecorder().Eventf(eq, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonInvalidQuota, "Validate", msg)
		}
	}
	changed := pl.cache.SetQuota(&quota.Quota{
		Namespace: eq.Namespace, Name: eq.Name,
		Min: quota.LimitsFromList(eq.Spec.Min), Max: quota.LimitsFromList(eq.Spec.Max),
	})
	if !changed {
		return // a status update or a resync
	}
	// A new quota or a new min or max can let pods in: of its namespace,
	// and, as a min adds to the cluster's guaranteed total, those waiting
	// for that total. The scheduler's own event for this quota comes
	// through another informer and may requeue them before this cache holds
	// the change; they would then be judged against the old quota and wait
	// for the periodic flush.
	if pods := pl.blocked.Freed(eq.Namespace, true); len(pods) > 0 {
		pl.handle.Activate(pl.logger, pods)
	}
}

func invalidQuota(eq *schedv1alpha1.ElasticQuota) string {
	for _, r := range slices.Sorted(maps.Keys(eq.Spec.Min)) {
		q := eq.Spec.Min[r]
		if q.Sign() < 0 {
			return fmt.Sprintf("spec.min.%s is negative (%s)", r, q.String())
		}
		if max, ok := eq.Spec.Max[r]; ok && max.Cmp(q) < 0 {
			return fmt.Sprintf("spec.max.%s (%s) is below spec.min.%s (%s)", r, max.String(), r, q.String())
		}
	}
	for _, r := range slices.Sorted(maps.Keys(eq.Spec.Max)) {
		if q := eq.Spec.Max[r]; q.Sign() < 0 {
			return fmt.Sprintf("spec.max.%s is negative (%s)", r, q.String())
		}
	}
	return ""
}

func (pl *BatchQuota) onQuotaDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	eq, ok := obj.(*schedv1alpha1.ElasticQuota)
	if !ok {
		return
	}
	pl.cache.DeleteQuota(eq.Namespace, eq.Name)
	pl.warned.Delete(eq.UID)
	deleteGauges(eq.Namespace, eq.Name)
	// The namespace may have lost its tightest limit: its waiting pods
	// try again.
	if pods := pl.blocked.Freed(eq.Namespace, false); len(pods) > 0 {
		pl.handle.Activate(pl.logger, pods)
	}
}

// onPod counts pods that are bound, whichever scheduler bound them.
// Terminal pods never reach here: the scheduler's pod informer excludes them,
// and a pod turning terminal arrives as a delete.
func (pl *BatchQuota) onPod(obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	req := podRequests(pod)
	if pl.cache.CountedBound(pod.UID, pod.Namespace, req) {
		return // status updates of a pod already counted
	}
	pl.forgetQueuedShare(pod)
	g, _ := pl.gangOf(pod)
	pl.cache.AddBoundPod(pod.UID, pod.Namespace, req, g)
	pl.blocked.Forget(pod.UID)
	pl.short.Forget(pod.UID)
}

// onMemberArrived activates the members of a gang that were turned away
// because it had fewer pods than its minMember, once a new member (created,
// or its last scheduling gate removed) brings it there. Neither the
// scheduler (no queueing hint runs for an unscheduled pod's creation) nor a
// reservation brings them back otherwise: a member turned away after the
// gang's first reservation (its pods replaced meanwhile, say) would wait
// until the gang timed out.
func (pl *BatchQuota) onMemberArrived(old, obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName != "" || len(pod.Spec.SchedulingGates) > 0 {
		return
	}
	if was, ok := old.(*v1.Pod); ok && len(was.Spec.SchedulingGates) == 0 {
		return // a member already, updated
	}
	name := pod.Labels[schedv1alpha1.PodGroupLabel]
	key := gangKey(pod.Namespace, name)
	if name == "" || !pl.short.Waiting(key) {
		return
	}
	pg, err := pl.groups.PodGroups(pod.Namespace).Get(name)
	if err != nil || len(pl.gangPods(pod.Namespace, pg)) < int(pg.Spec.MinMember) {
		return
	}
	if pods := pl.short.Take(key); len(pods) > 0 {
		pl.logger.V(4).Info("a new member completes the gang's pods; members turned away for too few pods try again", "pod", klog.KObj(pod), "gang", name, "members", len(pods))
		pl.handle.Activate(pl.logger, pods)
	}
}

func (pl *BatchQuota) onPodDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	ns, counted := pl.cache.Counted(pod.UID)
	pl.cache.RemovePod(pod.UID)
	pl.blocked.Forget(pod.UID)
	pl.short.Forget(pod.UID)
	pl.forgetQueuedShare(pod)
	if !counted {
		return
	}
	// Quota was freed in ns. The scheduler's own handler for this delete
	// may have requeued the pods turned away for quota before this handler
	// uncounted the pod, so they would be judged against the old count and
	// then wait for another event: bring back the ones it can help (of ns,
	// or waiting for the guaranteed total if ns has a quota), not every
	// blocked pod of the cluster.
	if pods := pl.blocked.Freed(ns, pl.cache.Limited(ns)); len(pods) > 0 {
		pl.handle.Activate(pl.logger, pods)
	}
}

// onPodGroup counts, with their gang, bound members counted before the
// PodGroup was known, and applies minMember and minResources changes.
func (pl *BatchQuota) onPodGroup(obj interface{}) {
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	pods := pl.groupPods(pg.Namespace, pg.Name)
	g := pl.gangFor(pg, pods)
	pl.cache.SetGang(pg.Namespace, g)
	for _, p := range pods {
		if p.Spec.NodeName != "" && isMember(p, pg) {
			pl.cache.AddBoundPod(p.UID, p.Namespace, podRequests(p), g)
		}
	}
	// A lowered minMember may complete a gang whose members wait at Permit.
	if n, complete := pl.cache.GangMembers(pg.Namespace, pg.Name); complete && n > 0 {
		pl.allowWaiting(pg.Namespace, pg.Name)
	}
}

// onPodGroupAdd is onPodGroup for a PodGroup created while the scheduler
// runs, whose pending members then go back to the active queue. They were
// turned away while it did not exist, and the scheduler's own PodGroup
// event, which brings them back through the queueing hint, comes from
// another informer than the lister PreFilter reads: a member tried again on
// it may not find the PodGroup yet, and the PodGroup's later status updates
// do not requeue it. (Before the counts are complete, the pods turned away
// are brought back once they are.)
func (pl *BatchQuota) onPodGroupAdd(obj interface{}) {
	pl.onPodGroup(obj)
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok || !pl.HasSynced() {
		return
	}
	pods := map[string]*v1.Pod{}
	for _, p := range pl.groupPods(pg.Namespace, pg.Name) {
		if pending(p) {
			pods[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(pl.logger, pods)
	}
}

// allowWaiting lets a complete gang's members waiting at Permit through.
func (pl *BatchQuota) allowWaiting(ns, name string) {
	pl.waitingMembers(ns, name, func(wp framework.WaitingPod) { wp.Allow(Name) })
}

// waitingMembers calls f for each pod of the gang that waits at Permit. It
// looks the waiting pods up from the gang's own pods (an index of the pod
// informer) rather than walking every waiting pod of the scheduler: with
// many gangs assembling at once, that walk ran on every member's cycle and
// grew with the number of gangs.
func (pl *BatchQuota) waitingMembers(ns, name string, f func(framework.WaitingPod)) {
	for _, p := range pl.groupPods(ns, name) {
		wp := pl.handle.GetWaitingPod(p.UID)
		if wp == nil {
			continue
		}
		// The copy that waits is the one Permit judged; it must still be
		// the gang's.
		if wpod := wp.GetPod(); wpod.Namespace == ns && wpod.Labels[schedv1alpha1.PodGroupLabel] == name {
			f(wp)
		}
	}
}

// ErrReasonPodGroupDeletedFmt: a member waiting at Permit is rejected
// because its PodGroup was deleted.
const ErrReasonPodGroupDeletedFmt = "PodGroup %s/%s was deleted while this member waited at Permit for its gang"

// onPodGroupDelete forgets the gang: what it held is released and its
// members count as lone pods until they go. Its members waiting at Permit
// wait for a gang that no longer exists: they are sent back at once, their
// reservations released, to wait for their PodGroup or join the one created
// in its place (a new gang), rather than hold their nodes for the schedule
// timeout and then, timing out, release a new gang of the same name.
func (pl *BatchQuota) onPodGroupDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	pl.cache.DropGang(pg.Namespace, pg.Name)
	pl.gangs.Forget(gangKey(pg.Namespace, pg.Name))
	pl.short.ForgetGang(gangKey(pg.Namespace, pg.Name))
	pl.queuedShares.Delete(newShareKey(pg.Namespace, "", pg.Name))
	pl.waitingMembers(pg.Namespace, pg.Name, func(wp framework.WaitingPod) {
		wp.Reject(Name, fmt.Sprintf(ErrReasonPodGroupDeletedFmt, pg.Namespace, pg.Name))
	})
}

// podUIDIndex indexes pods by UID, to tell whether a counted pod still
// exists.
const podUIDIndex = "locus.dev/uid"

func podUIDIndexFunc(obj interface{}) ([]string, error) {
	if pod, ok := obj.(*v1.Pod); ok {
		return []string{string(pod.UID)}, nil
	}
	return nil, nil
}

// forgetGone uncounts the namespace's counted pods that the pod informer no
// longer holds. The informer's store drops a deleted pod before any handler
// hears of it, and the scheduler's own handler may requeue the pods waiting
// for quota before this plugin's handler uncounts the pod: without this
// catch-up (what onPodDelete will do anyway), they would be judged on the
// old count, and a priority preemption would pick a second victim for room
// that the first one already freed.
func (pl *BatchQuota) forgetGone(ns string) {
	if pl.byGroup == nil {
		return
	}
	for _, uid := range pl.cache.PodsOf(ns) {
		if objs, err := pl.byGroup.ByIndex(podUIDIndex, string(uid)); err == nil && len(objs) == 0 {
			pl.cache.RemovePod(uid)
		}
	}
}

// podGroupIndex indexes pods by "namespace/pod-group".
const podGroupIndex = "locus.dev/pod-group"

func podGroupIndexFunc(obj interface{}) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	if g := pod.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
		return []string{pod.Namespace + "/" + g}, nil
	}
	return nil, nil
}

// groupPods returns every pod (any phase the informer holds) labelled for a gang.
func (pl *BatchQuota) groupPods(ns, name string) []*v1.Pod {
	if pl.byGroup != nil {
		objs, err := pl.byGroup.ByIndex(podGroupIndex, ns+"/"+name)
		if err == nil {
			pods := make([]*v1.Pod, 0, len(objs))
			for _, o := range objs {
				if p, ok := o.(*v1.Pod); ok {
					pods = append(pods, p)
				}
			}
			return pods
		}
	}
	pods, err := pl.pods.Pods(ns).List(labels.SelectorFromSet(labels.Set{schedv1alpha1.PodGroupLabel: name}))
	if err != nil {
		return nil
	}
	return pods
}

// podRequests is what a pod counts against its quota.
func podRequests(pod *v1.Pod) quota.Resources {
	return quota.FromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
}

// errNoPodGroup: the pod is labelled for a PodGroup that does not exist.
var errNoPodGroup = errors.New("PodGroup not found")

// gangOf returns the pod's gang, or nil for a lone pod. A pod labelled for a
// PodGroup that does not exist has no gang and errNoPodGroup; a pod bound
// before its PodGroup was created belongs to an earlier run of the same
// name and is counted alone.
func (pl *BatchQuota) gangOf(pod *v1.Pod) (*quota.Gang, error) {
	name := pod.Labels[schedv1alpha1.PodGroupLabel]
	if name == "" {
		return nil, nil
	}
	pg, err := pl.groups.PodGroups(pod.Namespace).Get(name)
	if err != nil {
		return nil, errNoPodGroup
	}
	if !isMember(pod, pg) {
		return nil, nil
	}
	return pl.gangFor(pg, nil), nil
}

// isMember: a pod bound before its PodGroup was created ran under an
// earlier PodGroup of the same name, and is not a member of this one. A
// pending pod is a member whenever it was created (a pod may be created
// before its PodGroup).
func isMember(pod *v1.Pod, pg *schedv1alpha1.PodGroup) bool {
	return pod.Spec.NodeName == "" || pod.CreationTimestamp.IsZero() || !pod.CreationTimestamp.Before(&pg.CreationTimestamp)
}

// gangFor describes a PodGroup to the cache. Its need is minResources when
// set; else, when pods is given, the requests of minMember of its members
// (per resource, the largest minMember requests, so that members of
// different sizes are covered); else left to the cache (minMember times a
// member's requests).
func (pl *BatchQuota) gangFor(pg *schedv1alpha1.PodGroup, pods []*v1.Pod) *quota.Gang {
	g := &quota.Gang{Name: pg.Name, MinMember: pg.Spec.MinMember, UID: pg.UID}
	if len(pg.Spec.MinResources) > 0 {
		g.Need, g.Keep = quota.FromList(pg.Spec.MinResources), true
		return g
	}
	if len(pods) > 0 {
		g.Need = largestRequests(pods, int(pg.Spec.MinMember))
	}
	return g
}

// largestRequests sums, per resource, the n largest requests among pods.
func largestRequests(pods []*v1.Pod, n int) quota.Resources {
	if n < 1 {
		n = 1
	}
	per := map[v1.ResourceName][]int64{}
	for _, p := range pods {
		for r, v := range podRequests(p) {
			per[r] = append(per[r], v)
		}
	}
	var out quota.Resources
	for r, vs := range per {
		sort.Slice(vs, func(i, j int) bool { return vs[i] > vs[j] })
		if len(vs) > n {
			vs = vs[:n]
		}
		for _, v := range vs {
			out.Add(quota.Resources{r: v})
		}
	}
	return out
}
