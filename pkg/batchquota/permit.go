package batchquota

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"locus.dev/locus/pkg/metrics"
)

var _ framework.PermitPlugin = &BatchQuota{}

// Permit holds a gang's members until minMember of them are reserved, then
// lets them all through. A member that waits longer than the PodGroup's
// scheduleTimeoutSeconds is rejected by the framework, and its Unreserve
// releases the rest.
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
	if start, ok := pl.gangs.completed(key); ok {
		metrics.GangWaitSeconds.Observe(pl.clock().Sub(start).Seconds())
	}
	pl.handle.IterateOverWaitingPods(func(wp framework.WaitingPod) {
		p := wp.GetPod()
		if p.Namespace == pod.Namespace && p.Labels[schedv1alpha1.PodGroupLabel] == s.gang.Name {
			wp.Allow(Name)
		}
	})
	return nil, 0
}

func (pl *BatchQuota) scheduleTimeout(ns, name string) time.Duration {
	if pg, err := pl.groups.PodGroups(ns).Get(name); err == nil && pg.Spec.ScheduleTimeoutSeconds != nil && *pg.Spec.ScheduleTimeoutSeconds > 0 {
		return time.Duration(*pg.Spec.ScheduleTimeoutSeconds) * time.Second
	}
	return time.Duration(pl.args.DefaultScheduleTimeoutSeconds) * time.Second
}

// gangTracker remembers, per assembling gang, when its first member was
// reserved and how many were reserved at most, for the wait metric and the
// GangTimeout event.
type gangTracker struct {
	mu    sync.Mutex
	gangs map[string]*gangAttempt
	// backoff holds, per gang that was released, when it may try again.
	backoff map[string]time.Time
	// full holds, per gang, the pod UIDs it had when it first had enough pods.
	full map[string]string
}

type gangAttempt struct {
	start time.Time
	peak  int
}

func newGangTracker() *gangTracker {
	return &gangTracker{gangs: map[string]*gangAttempt{}, backoff: map[string]time.Time{}, full: map[string]string{}}
}

// firstFull reports whether this set of pods is new for a gang that has
// enough of them: true once per change of membership, so that siblings are
// activated when the last pod arrives without members activating each
// other in a loop.
func (g *gangTracker) firstFull(key string, uids []string) bool {
	sort.Strings(uids)
	set := strings.Join(uids, ",")
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.full[key] == set {
		return false
	}
	g.full[key] = set
	return true
}

// backOff keeps a released gang from trying again before until.
func (g *gangTracker) backOff(key string, until time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.backoff[key] = until
}

// backingOff returns until when a gang waits after a release, if it still does.
func (g *gangTracker) backingOff(key string, now time.Time) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	until, ok := g.backoff[key]
	if !ok {
		return time.Time{}, false
	}
	if !now.Before(until) {
		delete(g.backoff, key)
		return time.Time{}, false
	}
	return until, true
}

func (g *gangTracker) reserved(key string, members int, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a := g.gangs[key]
	if a == nil {
		a = &gangAttempt{start: now}
		g.gangs[key] = a
	}
	if members > a.peak {
		a.peak = members
	}
}

// completed forgets a gang that reached minMember and returns when it started.
func (g *gangTracker) completed(key string) (time.Time, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.full, key)
	a := g.gangs[key]
	if a == nil {
		return time.Time{}, false
	}
	delete(g.gangs, key)
	return a.start, true
}

// release forgets a gang whose members were all released before it
// completed, and returns how many had been reserved.
func (g *gangTracker) release(key string) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.full, key)
	a := g.gangs[key]
	if a == nil {
		return 0, false
	}
	delete(g.gangs, key)
	return a.peak, true
}
