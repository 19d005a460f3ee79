package batchquota

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"locus.dev/locus/pkg/batchquota/quota"
)

// stateData is what later extension points need of one pod.
type stateData struct {
	req  quota.Resources
	gang *quota.Gang
	// noGroup is set when the pod names a PodGroup that does not exist.
	noGroup string
	// rejection is PreFilter's verdict; nil when the quota admitted the pod.
	rejection *quota.Rejection
	// adjust is how a preemption dry run has changed the counts (pods
	// removed from nodes, or added back).
	adjust quota.Adjust
	// reclaim is set in a reclaim dry run, which judges quota itself.
	reclaim bool
}

// Clone copies the state, with its own adjust map: AddPod and RemovePod
// change it in a preemption dry run's copy of the cycle state.
func (s *stateData) Clone() fwk.StateData {
	c := *s
	c.adjust = s.adjust.Clone()
	return &c
}

// PreFilter admits the pod against its namespace's quotas (the whole gang's
// worth for a gang's first member) and checks that the gang has enough pods.
// It only computes; PostFilter records why a pod waits.
func (pl *BatchQuota) PreFilter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	if !pl.HasSynced() {
		// PostFilter remembers the pod, to bring it back once synced.
		return nil, fwk.NewStatus(fwk.Unschedulable, ErrReasonNotSynced)
	}
	s := &stateData{req: podRequests(pod)}
	cycleState.Write(stateKey, s)

	if name := pod.Labels[schedv1alpha1.PodGroupLabel]; name != "" {
		pg, err := pl.groups.PodGroups(pod.Namespace).Get(name)
		if err != nil {
			s.noGroup = name
			// The PodGroup's creation requeues the pod (EventsToRegister).
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, fmt.Sprintf(ErrReasonPodGroupNotFoundFmt, pod.Namespace, name))
		}
		if isMember(pod, pg) {
			key := gangKey(pod.Namespace, name)
			members := pl.gangPods(pod.Namespace, pg)
			s.gang = pl.gangFor(pg, members)
			if until, ok := pl.gangs.BackingOff(key, pl.clock()); ok {
				// A timer activates the gang when the backoff ends.
				return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
					fmt.Sprintf(ErrReasonGangBackoffFmt, name, until.UTC().Format(time.RFC3339)))
			}
			if pl.tooFewPods(pod.Namespace, pg, len(members)) {
				// More pods must be created (or ungated); evicting others
				// cannot help, and kube-scheduler 1.34 runs no queueing
				// hint for an unscheduled pod's creation: the member that
				// brings the gang to minMember activates this one
				// (onMemberArrived). It is remembered before the pods are
				// counted again: a member that the first count missed is
				// either in the second or, its handler running after the
				// store holds it, finds this one remembered.
				pl.short.Add(key, pod)
				members = pl.gangPods(pod.Namespace, pg)
				if n := len(members); pl.tooFewPods(pod.Namespace, pg, n) {
					return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
						fmt.Sprintf(ErrReasonGangIncompleteFmt, name, n, pg.Spec.MinMember))
				}
				pl.short.Forget(pod.UID)
				s.gang = pl.gangFor(pg, members)
			}
		}
	}
	if !pl.cache.Limited(pod.Namespace) {
		// No quota: nothing for Filter or the preemption extensions to check.
		return nil, fwk.NewStatus(fwk.Skip)
	}
	rej := pl.cache.Admit(pod.Namespace, s.req, s.gang)
	if rej != nil {
		// Catch up with deletions the informer's handlers have not
		// counted yet, then judge again.
		pl.forgetGone(pod.Namespace)
		rej = pl.cache.Admit(pod.Namespace, s.req, s.gang)
	}
	if rej != nil {
		s.rejection = rej
		klog.FromContext(ctx).V(4).Info("pod does not fit its quota", "pod", klog.KObj(pod), "reason", rej.Message)
		// Unschedulable, not Unresolvable: reclaim (PostFilter) or pods
		// finishing can make room.
		return nil, fwk.NewStatus(fwk.Unschedulable, rej.Message)
	}
	return nil, nil
}

// tooFewPods: a gang with n schedulable pods, fewer than its minMember,
// cannot be placed unless enough of its members are placed already (a gang
// that completed keeps admitting members, as a driver's executors).
func (pl *BatchQuota) tooFewPods(ns string, pg *schedv1alpha1.PodGroup, n int) bool {
	if n >= int(pg.Spec.MinMember) {
		return false
	}
	counted, complete := pl.cache.GangMembers(ns, pg.Name)
	return !complete || counted == 0
}

// gangPods lists the gang's members that can be scheduled: existing, not
// terminal, not scheduling-gated, and of the PodGroup's current run.
func (pl *BatchQuota) gangPods(ns string, pg *schedv1alpha1.PodGroup) []*v1.Pod {
	pods := pl.groupPods(ns, pg.Name)
	out := pods[:0:0]
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed &&
			len(p.Spec.SchedulingGates) == 0 && isMember(p, pg) {
			out = append(out, p)
		}
	}
	return out
}

// PreFilterExtensions returns the plugin: a preemption dry run that removes
// pods changes the quota counts, and Filter must see it.
func (pl *BatchQuota) PreFilterExtensions() framework.PreFilterExtensions { return pl }

// AddPod counts a pod added in a dry run (a nominated pod, or a victim reprieved).
func (pl *BatchQuota) AddPod(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, podInfoToAdd fwk.PodInfo, _ fwk.NodeInfo) *fwk.Status {
	return pl.adjust(cycleState, podInfoToAdd.GetPod(), 1)
}

// RemovePod uncounts a pod removed in a dry run (a preemption victim).
func (pl *BatchQuota) RemovePod(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, podInfoToRemove fwk.PodInfo, _ fwk.NodeInfo) *fwk.Status {
	return pl.adjust(cycleState, podInfoToRemove.GetPod(), -1)
}

func (pl *BatchQuota) adjust(cycleState fwk.CycleState, other *v1.Pod, sign int64) *fwk.Status {
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if !pl.cache.Limited(other.Namespace) {
		return nil // pods of namespaces without a quota change no count
	}
	if s.adjust == nil {
		s.adjust = quota.Adjust{}
	}
	s.adjust.Add(other.Namespace, podRequests(other), sign)
	return nil
}

// Filter checks the quota again only where a preemption dry run changed the
// counts; in a normal cycle it repeats PreFilter's verdict, which admitted
// the pod (a rejected pod never reaches Filter). Priority preemption may
// take pods of the pod's own namespace, and of namespaces without a quota;
// a victim of another quota is allowed only under the reclaim rules (the
// pod's quota under its min, the victim's quota left at or above its min).
func (pl *BatchQuota) Filter(_ context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ fwk.NodeInfo) *fwk.Status {
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.reclaim || (s.rejection == nil && len(s.adjust) == 0) {
		return nil
	}
	if rej := pl.cache.CheckPreemption(pod.Namespace, s.req, s.gang, s.adjust); rej != nil {
		return fwk.NewStatus(fwk.Unschedulable, rej.Message)
	}
	return nil
}

// reclaiming marks a dry run's cycle state as reclaim's, whose victim
// selection checks quota itself.
func reclaiming(cycleState fwk.CycleState) {
	if s, err := getState(cycleState); err == nil {
		s.reclaim = true
	}
}

// Reserve counts the pod against its quota. A gang's first reserved member
// brings its siblings back to the active queue: they may have been turned
// away while the gang did not fit, and no cluster event would wake them.
func (pl *BatchQuota) Reserve(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	pl.cache.AddPod(pod.UID, pod.Namespace, s.req, s.gang)
	pl.blocked.Forget(pod.UID)
	if s.gang == nil {
		return nil
	}
	pl.short.Forget(pod.UID)
	members, complete := pl.cache.GangMembers(pod.Namespace, s.gang.Name)
	if !complete {
		pl.gangs.Reserved(gangKey(pod.Namespace, s.gang.Name), members, pl.clock())
	}
	if members == 1 && !complete {
		pl.activateSiblings(ctx, pod, s.gang.Name)
	}
	return nil
}

// activateSiblings moves a pod's unplaced gang siblings to the active queue.
func (pl *BatchQuota) activateSiblings(ctx context.Context, pod *v1.Pod, gangName string) {
	pods := map[string]*v1.Pod{}
	for _, p := range pl.groupPods(pod.Namespace, gangName) {
		if p.UID != pod.UID && p.Spec.NodeName == "" && pl.handle.GetWaitingPod(p.UID) == nil {
			pods[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(klog.FromContext(ctx), pods)
	}
}

// Unreserve undoes Reserve, unless the informer has seen the pod bound (a
// bind that timed out on the client but succeeded). For a gang member it
// also rejects the waiting siblings: a gang is placed whole or not at all,
// and its quota and node resources are released together.
func (pl *BatchQuota) Unreserve(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) {
	if !pl.cache.Unreserve(pod.UID) {
		return
	}
	s, err := getState(cycleState)
	if err != nil || s.gang == nil {
		return
	}
	if _, complete := pl.cache.GangMembers(pod.Namespace, s.gang.Name); complete {
		return
	}
	pl.waitingMembers(pod.Namespace, s.gang.Name, func(wp framework.WaitingPod) {
		if wp.GetPod().UID != pod.UID {
			wp.Reject(Name, fmt.Sprintf(ErrReasonGangReleasedFmt, s.gang.Name, pod.Name))
		}
	})
	key := gangKey(pod.Namespace, s.gang.Name)
	if members, _ := pl.cache.GangMembers(pod.Namespace, s.gang.Name); members == 0 {
		if peak, ok := pl.gangs.Release(key); ok {
			pl.recordGangTimeout(ctx, pod, s.gang, peak)
			pl.backOffGang(ctx, pod.Namespace, s.gang.Name)
		}
	}
}

func gangKey(ns, name string) string { return ns + "/" + name }

func getState(cycleState fwk.CycleState) (*stateData, error) {
	c, err := cycleState.Read(stateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", stateKey, err)
	}
	s, ok := c.(*stateData)
	if !ok {
		return nil, fmt.Errorf("%+v cannot be converted to batchquota.stateData", c)
	}
	return s, nil
}
