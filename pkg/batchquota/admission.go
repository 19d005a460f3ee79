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

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota/quota"
)

var _ framework.PreFilterPlugin = &BatchQuota{}
var _ framework.PreFilterExtensions = &BatchQuota{}
var _ framework.FilterPlugin = &BatchQuota{}
var _ framework.ReservePlugin = &BatchQuota{}

const (
	// ErrReasonNotSynced: quota counts are not complete yet after a start.
	ErrReasonNotSynced = "quota counts are still being rebuilt from the cluster's pods"
	// ErrReasonGangIncompleteFmt: fewer pods exist than the gang's minMember.
	ErrReasonGangIncompleteFmt = "gang %s has %d of its minMember %d pods"
	// ErrReasonGangBackoffFmt: a released gang waits before its next try, so
	// that other work can use what it released.
	ErrReasonGangBackoffFmt = "gang %s did not assemble in time; it tries again after %s"
)

// stateData is what later extension points need of one pod.
type stateData struct {
	req  quota.Resources
	gang *quota.Gang
	// rejection is PreFilter's verdict; nil when the quota admitted the pod.
	rejection *quota.Rejection
	// adjust is how a preemption dry run has changed the usage of the pod's
	// own namespace (pods of it removed or added back on a node).
	adjust quota.Resources
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

// PreFilter admits the pod against its namespace's quota (the whole gang's
// worth for a gang's first member) and checks that the gang has enough pods.
func (pl *BatchQuota) PreFilter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	if !pl.hasSynced() {
		pl.early.add(pod)
		return nil, fwk.NewStatus(fwk.Unschedulable, ErrReasonNotSynced)
	}
	s := &stateData{req: podRequests(pod), gang: pl.gangOf(pod)}
	cycleState.Write(stateKey, s)

	var siblings []*v1.Pod
	if s.gang != nil {
		if until, ok := pl.gangs.backingOff(gangKey(pod.Namespace, s.gang.Name), pl.clock()); ok {
			// A timer activates the gang when the backoff ends.
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
				fmt.Sprintf(ErrReasonGangBackoffFmt, s.gang.Name, until.UTC().Format(time.RFC3339)))
		}
		siblings = pl.gangPods(pod.Namespace, s.gang.Name)
		if n := len(siblings); n < int(s.gang.MinMember) {
			// More pods must be created; evicting others cannot help.
			return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
				fmt.Sprintf(ErrReasonGangIncompleteFmt, s.gang.Name, n, s.gang.MinMember))
		}
		if pl.gangs.firstFull(gangKey(pod.Namespace, s.gang.Name), siblingUIDs(siblings)) {
			// The gang's last pod arrived: siblings turned away for being too
			// few try again now, whatever the quota says of this one.
			pl.activate(ctx, pod, siblings)
		}
	}
	if _, limited := pl.cache.Get(pod.Namespace); !limited {
		// No quota: nothing for Filter or the preemption extensions to check.
		return nil, fwk.NewStatus(fwk.Skip)
	}
	if rej := pl.cache.Admit(pod.Namespace, s.req, s.gang); rej != nil {
		s.rejection = rej
		klog.FromContext(ctx).V(4).Info("pod does not fit its quota", "pod", klog.KObj(pod), "reason", rej.Message)
		if pl.blocked.changed(pod, rej.Message) {
			pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonQuotaExceeded, "Scheduling", rej.Message)
		}
		// Unschedulable, not Unresolvable: reclaim (PostFilter) or pods
		// finishing can make room.
		return nil, fwk.NewStatus(fwk.Unschedulable, rej.Message)
	}
	if s.gang != nil {
		if members, _ := pl.cache.GangMembers(pod.Namespace, s.gang.Name); members == 0 {
			// The gang's first admitted member: bring its siblings along.
			pl.activate(ctx, pod, siblings)
		}
	}
	return nil, nil
}

func siblingUIDs(pods []*v1.Pod) []string {
	out := make([]string, len(pods))
	for i, p := range pods {
		out[i] = string(p.UID)
	}
	return out
}

// gangPods lists the gang's pods that exist and are not terminal.
func (pl *BatchQuota) gangPods(ns, name string) []*v1.Pod {
	pods := pl.groupPods(ns, name)
	out := pods[:0:0]
	for _, p := range pods {
		if p.DeletionTimestamp == nil && p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
			out = append(out, p)
		}
	}
	return out
}

// activate moves a pod's unplaced siblings back to the active queue: they
// may have been turned away while the gang had too few pods, and no cluster
// event would bring them back. (PodsToActivate in the cycle state would act
// only if this pod's cycle succeeds.)
func (pl *BatchQuota) activate(ctx context.Context, pod *v1.Pod, siblings []*v1.Pod) {
	pods := map[string]*v1.Pod{}
	for _, p := range siblings {
		if p.UID != pod.UID && p.Spec.NodeName == "" {
			pods[p.Namespace+"/"+p.Name] = p
		}
	}
	if len(pods) > 0 {
		pl.handle.Activate(klog.FromContext(ctx), pods)
	}
}

// PreFilterExtensions returns the plugin: a preemption dry run that removes
// pods of the pod's own namespace frees quota, and Filter must see it.
func (pl *BatchQuota) PreFilterExtensions() framework.PreFilterExtensions { return pl }

// AddPod counts a pod of the same namespace added in a dry run (a nominated
// pod, or a victim reprieved).
func (pl *BatchQuota) AddPod(_ context.Context, cycleState fwk.CycleState, podToSchedule *v1.Pod, podInfoToAdd fwk.PodInfo, _ fwk.NodeInfo) *fwk.Status {
	return pl.adjust(cycleState, podToSchedule, podInfoToAdd.GetPod(), 1)
}

// RemovePod uncounts a pod of the same namespace removed in a dry run (a
// preemption victim). Pods of other quotas are reclaim's business, with
// its own rules (PostFilter), so they change nothing here.
func (pl *BatchQuota) RemovePod(_ context.Context, cycleState fwk.CycleState, podToSchedule *v1.Pod, podInfoToRemove fwk.PodInfo, _ fwk.NodeInfo) *fwk.Status {
	return pl.adjust(cycleState, podToSchedule, podInfoToRemove.GetPod(), -1)
}

func (pl *BatchQuota) adjust(cycleState fwk.CycleState, pod, other *v1.Pod, sign int64) *fwk.Status {
	if other.Namespace != pod.Namespace {
		return nil
	}
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.adjust == nil {
		s.adjust = quota.Resources{}
	}
	s.adjust.Add(podRequests(other).Scaled(sign))
	return nil
}

// Filter checks the quota again only where a preemption dry run changed the
// namespace's usage; in a normal cycle it repeats PreFilter's verdict, which
// admitted the pod (a rejected pod never reaches Filter).
func (pl *BatchQuota) Filter(_ context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ fwk.NodeInfo) *fwk.Status {
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	if s.reclaim || (s.rejection == nil && len(s.adjust) == 0) {
		return nil
	}
	if rej := pl.cache.AdmitAdjusted(pod.Namespace, s.req, s.gang, s.adjust); rej != nil {
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

// Reserve counts the pod against its quota.
func (pl *BatchQuota) Reserve(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	pl.cache.AddPod(pod.UID, pod.Namespace, s.req, s.gang)
	pl.blocked.forget(pod.UID)
	if s.gang != nil {
		if members, complete := pl.cache.GangMembers(pod.Namespace, s.gang.Name); !complete {
			pl.gangs.reserved(gangKey(pod.Namespace, s.gang.Name), members, pl.clock())
		}
	}
	return nil
}

// Unreserve undoes Reserve. For a gang member it also rejects the waiting
// siblings: a gang is placed whole or not at all, and its quota and node
// resources are released together.
func (pl *BatchQuota) Unreserve(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) {
	pl.cache.RemovePod(pod.UID)
	s, err := getState(cycleState)
	if err != nil || s.gang == nil {
		return
	}
	if _, complete := pl.cache.GangMembers(pod.Namespace, s.gang.Name); complete {
		return
	}
	pl.handle.IterateOverWaitingPods(func(wp framework.WaitingPod) {
		p := wp.GetPod()
		if p.Namespace == pod.Namespace && p.Labels[schedv1alpha1.PodGroupLabel] == s.gang.Name && p.UID != pod.UID {
			wp.Reject(Name, fmt.Sprintf("gang %s released: member %s was not placed", s.gang.Name, pod.Name))
		}
	})
	key := gangKey(pod.Namespace, s.gang.Name)
	if members, _ := pl.cache.GangMembers(pod.Namespace, s.gang.Name); members == 0 {
		if peak, ok := pl.gangs.release(key); ok {
			pl.recordGangTimeout(ctx, pod, s.gang, peak)
			pl.backOffGang(ctx, pod.Namespace, s.gang.Name)
		}
	}
}

// backOffGang keeps a released gang out for one schedule timeout, so that
// the node resources and quota it released go to other work rather than to
// its own next doomed attempt, then activates its members.
func (pl *BatchQuota) backOffGang(ctx context.Context, ns, name string) {
	d := pl.scheduleTimeout(ns, name)
	pl.gangs.backOff(gangKey(ns, name), pl.clock().Add(d))
	time.AfterFunc(d, func() {
		pods := map[string]*v1.Pod{}
		for _, p := range pl.gangPods(ns, name) {
			if p.Spec.NodeName == "" {
				pods[p.Namespace+"/"+p.Name] = p
			}
		}
		if len(pods) > 0 {
			pl.handle.Activate(klog.FromContext(ctx), pods)
		}
	})
}

func (pl *BatchQuota) recordGangTimeout(ctx context.Context, pod *v1.Pod, g *quota.Gang, peak int) {
	pg, err := pl.groups.PodGroups(pod.Namespace).Get(g.Name)
	if err != nil {
		return
	}
	msg := fmt.Sprintf("gang %s was released before reaching minMember %d (%d members were reserved): their quota and node resources are free; it tries again in one schedule timeout",
		g.Name, g.MinMember, peak)
	klog.FromContext(ctx).V(2).Info("gang released", "podGroup", klog.KObj(pg), "reason", msg)
	pl.handle.EventRecorder().Eventf(pg, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonGangTimeout, "Permit", msg)
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
