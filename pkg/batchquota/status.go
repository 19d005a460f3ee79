package batchquota

import (
	"context"
	"fmt"
	"strconv"
	"time"

	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
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
// scheduling path.
func (pl *BatchQuota) runStatusWriter(ctx context.Context) {
	interval := pl.args.StatusUpdateInterval.Duration
	wait.UntilWithContext(ctx, func(ctx context.Context) {
		if !pl.hasSynced() {
			return
		}
		pl.writeQuotaStatus(ctx)
		pl.writePodGroupStatus(ctx)
	}, interval)
}

func (pl *BatchQuota) writeQuotaStatus(ctx context.Context) {
	logger := klog.FromContext(ctx)
	for _, ns := range pl.cache.TakeDirty() {
		st, ok := pl.cache.Get(ns)
		if !ok {
			continue
		}
		setGauges(st)
		eq, err := pl.quotas.ElasticQuotas(ns).Get(st.Name)
		if err != nil {
			continue
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

func setGauges(st quota.Status) {
	for r, v := range st.Used {
		metrics.QuotaUsed.WithLabelValues(st.Namespace, st.Name, string(r)).Set(gaugeValue(v))
	}
	for r, v := range st.Min {
		metrics.QuotaMin.WithLabelValues(st.Namespace, st.Name, string(r)).Set(gaugeValue(v))
	}
	for r, v := range st.Max {
		metrics.QuotaMax.WithLabelValues(st.Namespace, st.Name, string(r)).Set(gaugeValue(v))
	}
}

// gaugeValue turns milli-units into units (cores, bytes).
func gaugeValue(milli int64) float64 { return float64(milli) / 1000 }

// quantitiesEqual compares two resource lists by value, ignoring zeros.
func quantitiesEqual(a, b v1.ResourceList) bool {
	return quota.FromList(a).Equal(quota.FromList(b))
}

// writePodGroupStatus keeps each PodGroup's phase, running count and
// schedule start time current.
func (pl *BatchQuota) writePodGroupStatus(ctx context.Context) {
	groups, err := pl.groups.List(labels.Everything())
	if err != nil {
		return
	}
	for _, pg := range groups {
		pl.writeScheduledCount(ctx, pg)
		want := pl.podGroupStatus(pg)
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

// writeScheduledCount keeps the PodGroup's locus.dev/scheduled annotation at
// the number of its members bound now. The v1alpha1 PodGroup status has no
// field for it (scheduler-plugins removed status.scheduled), and the CRD is
// the upstream one, so it is an annotation.
func (pl *BatchQuota) writeScheduledCount(ctx context.Context, pg *schedv1alpha1.PodGroup) {
	bound, _ := pl.gangCounts(pg)
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
func (pl *BatchQuota) gangCounts(pg *schedv1alpha1.PodGroup) (bound, running int32) {
	for _, p := range pl.groupPods(pg.Namespace, pg.Name) {
		if p.Spec.NodeName != "" {
			bound++
		}
		if p.Status.Phase == v1.PodRunning {
			running++
		}
	}
	return bound, running
}

func (pl *BatchQuota) podGroupStatus(pg *schedv1alpha1.PodGroup) schedv1alpha1.PodGroupStatus {
	st := pg.Status
	bound, running := pl.gangCounts(pg)
	reserved, _ := pl.cache.GangMembers(pg.Namespace, pg.Name)
	st.Running = running
	placed := st.Phase == PodGroupScheduled || st.Phase == schedv1alpha1.PodGroupRunning
	switch {
	case running >= pg.Spec.MinMember && pg.Spec.MinMember > 0:
		st.Phase = schedv1alpha1.PodGroupRunning
	case bound >= pg.Spec.MinMember && pg.Spec.MinMember > 0:
		st.Phase = PodGroupScheduled
	case placed:
		// Members finishing leave the pod informer: a placed gang does not
		// go back to Scheduling or Pending for that.
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
