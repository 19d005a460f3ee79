package batchquota

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/metrics"
)

// Permit holds a gang's members until minMember of them are reserved, then
// lets them all through. A member that waits longer than the PodGroup's
// scheduleTimeoutSeconds is rejected by the framework, and its Unreserve
// releases the rest. Members that arrive once the gang is complete (a Spark
// driver's executors) pass at once.
func (pl *BatchQuota) Permit(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) (*fwk.Status, time.Duration) {
	s, err := getState(cycleState)
	if err != nil {
		return fwk.AsStatus(err), 0
	}
	if s.gang == nil {
		return nil, 0
	}
	members, complete := pl.cache.GangMembers(pod.Namespace, s.gang.Name)
	if !complete {
		klog.FromContext(ctx).V(4).Info("gang member waits for its siblings", "pod", klog.KObj(pod), "gang", s.gang.Name, "reserved", members, "minMember", s.gang.MinMember)
		return fwk.NewStatus(fwk.Wait, fmt.Sprintf("gang %s has %d of %d members reserved", s.gang.Name, members, s.gang.MinMember)), pl.scheduleTimeout(pod.Namespace, s.gang.Name)
	}
	key := gangKey(pod.Namespace, s.gang.Name)
	if start, ok := pl.gangs.Completed(key); ok {
		metrics.GangWaitSeconds.Observe(pl.clock().Sub(start).Seconds())
	}
	pl.allowWaiting(pod.Namespace, s.gang.Name)
	return nil, 0
}

func (pl *BatchQuota) scheduleTimeout(ns, name string) time.Duration {
	if pg, err := pl.groups.PodGroups(ns).Get(name); err == nil && pg.Spec.ScheduleTimeoutSeconds != nil && *pg.Spec.ScheduleTimeoutSeconds > 0 {
		return time.Duration(*pg.Spec.ScheduleTimeoutSeconds) * time.Second
	}
	return time.Duration(pl.args.DefaultScheduleTimeoutSeconds) * time.Second
}

// backOffGang keeps a released gang out for one schedule timeout, so that
// the node resources and quota it released go to other work rather than to
// its own next doomed attempt, then activates its members.
func (pl *BatchQuota) backOffGang(ctx context.Context, ns, name string) {
	d := pl.scheduleTimeout(ns, name)
	pl.gangs.BackOff(gangKey(ns, name), pl.clock().Add(d))
	time.AfterFunc(d, func() {
		pods := map[string]*v1.Pod{}
		for _, p := range pl.groupPods(ns, name) {
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

// recordWaiting records, once per change of reason, why a pod waits: a
// QuotaExceeded event naming the numbers, or PodGroupNotFound. Called from
// PostFilter, so that PreFilter stays free of side effects.
func (pl *BatchQuota) recordWaiting(pod *v1.Pod, s *stateData) {
	switch {
	case s.noGroup != "":
		msg := fmt.Sprintf(ErrReasonPodGroupNotFoundFmt, pod.Namespace, s.noGroup)
		if pl.blocked.Changed(pod, msg, false) {
			pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonPodGroupNotFound, "Scheduling", msg)
		}
	case s.rejection != nil:
		if pl.blocked.Changed(pod, s.rejection.Message, s.rejection.Aggregate) {
			pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonQuotaExceeded, "Scheduling", s.rejection.Message)
		}
	}
}
