package batchquota

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	basemetrics "k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/metrics"
)

// PodGroup phases that locus writes. Scheduled means minMember members are
// bound; the other values are scheduler-plugins' own.
const (
	PodGroupScheduled schedv1alpha1.PodGroupPhase = "Scheduled"
)

// runStatusWriter writes ElasticQuota status.used and PodGroup status back,
// batched every StatusUpdateInterval (never one write per pod), and keeps
// the locus_quota_* gauges current. API writes happen only here, off the
// scheduling path, and only in the leader: a standby's counts lack the
// leader's reserved pods, and two writers would make status flap.
func (pl *BatchQuota) runStatusWriter(ctx context.Context) {
	select {
	case <-pl.leader.Leading():
	case <-ctx.Done():
		return
	}
	// Counts changed while standing by were not written: write them all.
	for _, ns := range pl.cache.Namespaces() {
		pl.cache.MarkDirty(ns)
	}
	interval := pl.args.StatusUpdateInterval.Duration
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if !pl.HasSynced() {
			return
		}
		pl.writeQuotaStatus(ctx)
		pl.writePodGroupStatus(ctx)
	}, interval)
}

func (pl *BatchQuota) writeQuotaStatus(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for _, ns := range pl.cache.TakeDirty() {
		statuses := pl.cache.Statuses(ns)
		for _, st := range statuses {
			setGauges(st)
			eq, err := pl.quotas.ElasticQuotas(ns).Get(st.Name)
			if err != nil {
				continue
			}
			if len(statuses) > 1 && pl.warned.Insert(eq.UID) {
				pl.handle.EventRecorder().Eventf(eq, nil, v1.EventTypeWarning, locusv1alpha1.EventReasonMultipleQuotas, "Admit",
					fmt.Sprintf("namespace %s has %d ElasticQuotas (%s): all of them limit it, the tightest per resource", ns, len(statuses), strings.Join(pl.cache.QuotaNames(ns), ", ")))
			}
			used := st.Used.ToList()
			if quantitiesEqual(eq.Status.Used, used) {
				continue
			}
			eq = eq.DeepCopy()
			eq.Status.Used = used
			if _, err := pl.client.SchedulingV1alpha1().ElasticQuotas(ns).UpdateStatus(ctx, eq, metav1.UpdateOptions{}); err != nil {
				logger.V(2).Info("could not update ElasticQuota status; will retry", "elasticQuota", klog.KObj(eq), "err", err)
				pl.cache.MarkDirty(ns)
			}
		}
	}
}

// setGauges sets a quota's series: every resource it names, and every
// resource its namespace uses, at their values now (zero included), after
// removing the series of resources it no longer has.
func setGauges(st quota.Status) {
	deleteGauges(st.Namespace, st.Name)
	names := map[v1.ResourceName]bool{}
	for r := range st.Min {
		names[r] = true
		metrics.QuotaMin.WithLabelValues(st.Namespace, st.Name, string(r)).Set(gaugeValue(st.Min[r]))
	}
	for r := range st.Max {
		names[r] = true
		metrics.QuotaMax.WithLabelValues(st.Namespace, st.Name, string(r)).Set(gaugeValue(st.Max[r]))
	}
	for r := range st.Used {
		names[r] = true
	}
	for r := range names {
		metrics.QuotaUsed.WithLabelValues(st.Namespace, st.Name, string(r)).Set(gaugeValue(st.Used[r]))
	}
}

// deleteGauges removes a quota's series (it was deleted, or is rewritten).
func deleteGauges(ns, name string) {
	match := map[string]string{"namespace": ns, "quota": name}
	for _, g := range []*basemetrics.GaugeVec{metrics.QuotaUsed, metrics.QuotaMin, metrics.QuotaMax} {
		if g.IsCreated() {
			g.DeletePartialMatch(match)
		}
	}
}

// gaugeValue turns milli-units into units (cores, bytes).
func gaugeValue(milli int64) float64 { return float64(milli) / 1000 }

// quantitiesEqual compares two resource lists by value, ignoring zeros.
func quantitiesEqual(a, b v1.ResourceList) bool {
	return quota.FromList(a).Equal(quota.FromList(b))
}

// writePodGroupStatus keeps the phase, running count and schedule start
// time of each PodGroup whose members use this scheduler.
func (pl *BatchQuota) writePodGroupStatus(ctx context.Context) {
	groups, err := pl.groups.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pg := range groups {
		members := pl.groupPods(pg.Namespace, pg.Name)
		if !pl.ours(members) {
			continue
		}
		pl.writeScheduledCount(ctx, pg, members)
		want := pl.podGroupStatus(pg, members)
		if apiequality.Semantic.DeepEqual(pg.Status, want) {
			continue
		}
		pg = pg.DeepCopy()
		pg.Status = want
		if _, err := pl.client.SchedulingV1alpha1().PodGroups(pg.Namespace).UpdateStatus(ctx, pg, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			klog.FromContext(ctx).V(2).Info("could not update PodGroup status; will retry", "podGroup", klog.KObj(pg), "err", err)
		}
	}
}

// ours reports whether a gang's members use this scheduler's profile.
func (pl *BatchQuota) ours(members []*v1.Pod) bool {
	for _, p := range members {
		if pl.profile == "" || p.Spec.SchedulerName == pl.profile {
			return true
		}
	}
	return false
}

// writeScheduledCount keeps the PodGroup's locus.dev/scheduled annotation at
// the number of its members bound now. The v1alpha1 PodGroup status has no
// field for it (scheduler-plugins removed status.scheduled), and the CRD is
// the upstream one, so it is an annotation.
func (pl *BatchQuota) writeScheduledCount(ctx context.Context, pg *schedv1alpha1.PodGroup, members []*v1.Pod) {
	bound, _ := gangCounts(members)
	want := strconv.Itoa(int(bound))
	if pg.Annotations[locusv1alpha1.AnnotationScheduled] == want {
		return
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, locusv1alpha1.AnnotationScheduled, want)
	if _, err := pl.client.SchedulingV1alpha1().PodGroups(pg.Namespace).Patch(ctx, pg.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
		klog.FromContext(ctx).V(2).Info("could not annotate PodGroup; will retry", "podGroup", klog.KObj(pg), "err", err)
	}
}

// gangCounts counts a gang's members that are bound and that are running.
func gangCounts(members []*v1.Pod) (bound, running int32) {
	for _, p := range members {
		if p.Spec.NodeName != "" {
			bound++
		}
		if p.Status.Phase == v1.PodRunning {
			running++
		}
	}
	return bound, running
}

// podGroupStatus is the status a PodGroup should have. The scheduler's pod
// informer holds no terminal pods, so a gang whose members all ended shows
// no members: a placed gang keeps its last phase (Scheduled or Running)
// rather than going back to Pending; the Finished and Failed phases are left
// to the workload's own controller, which sees how its pods ended.
func (pl *BatchQuota) podGroupStatus(pg *schedv1alpha1.PodGroup, members []*v1.Pod) schedv1alpha1.PodGroupStatus {
	st := pg.Status
	bound, running := gangCounts(members)
	reserved, _ := pl.cache.GangMembers(pg.Namespace, pg.Name)
	st.Running = running
	placed := st.Phase == PodGroupScheduled || st.Phase == schedv1alpha1.PodGroupRunning
	switch {
	case running >= pg.Spec.MinMember && pg.Spec.MinMember > 0:
		st.Phase = schedv1alpha1.PodGroupRunning
	case bound >= pg.Spec.MinMember && pg.Spec.MinMember > 0:
		st.Phase = PodGroupScheduled
	case placed:
	case reserved > 0:
		st.Phase = schedv1alpha1.PodGroupScheduling
	default:
		st.Phase = schedv1alpha1.PodGroupPending
	}
	if st.Phase != schedv1alpha1.PodGroupPending && st.ScheduleStartTime.IsZero() {
		st.ScheduleStartTime = metav1.NewTime(pl.clock().Truncate(time.Second))
	}
	return st
}
