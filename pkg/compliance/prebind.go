package compliance

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/metrics"
)

// checkedCert is one certification as PreBind found it.
type checkedCert struct {
	Standard string
	// Value is the label value: "true" or the date through which it is valid.
	Value string
}

// placementAudit is what PreBind checked, the last step before binding:
// PostBind's audit event and log line report it rather than labels read
// after the fact.
type placementAudit struct {
	node        string
	certs       []checkedCert
	residency   string
	regionLabel string
	region      string
	checkedAt   time.Time
}

// Clone returns the audit itself: it is written once and only read after.
func (a *placementAudit) Clone() fwk.StateData { return a }

// newPlacementAudit records the values of the node's labels that req was
// checked against.
func newPlacementAudit(req *Requirements, node *v1.Node, labelPrefix string, now time.Time) *placementAudit {
	a := &placementAudit{node: node.Name, residency: req.Residency, checkedAt: now}
	for _, std := range req.Standards {
		a.certs = append(a.certs, checkedCert{Standard: std, Value: node.Labels[labelPrefix+std]})
	}
	if req.Residency != "" {
		a.regionLabel = req.regionLabel()
		a.region = node.Labels[a.regionLabel]
	}
	return a
}

// note describes the placement for the audit event:
// "node n1 holds pci-dss (expires 2026-12-31), hipaa (no expiry); data residency eu: region eu-west-1".
func (a *placementAudit) note() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s", a.node)
	if len(a.certs) > 0 {
		parts := make([]string, 0, len(a.certs))
		for _, c := range a.certs {
			parts = append(parts, fmt.Sprintf("%s (%s)", c.Standard, expiry(c.Value)))
		}
		fmt.Fprintf(&b, " holds %s", strings.Join(parts, ", "))
	}
	if a.residency != "" {
		fmt.Fprintf(&b, "; data residency %s: region %s", a.residency, a.region)
	}
	return b.String()
}

// expiry words a certification's label value for the audit trail.
func expiry(value string) string {
	if value == "true" {
		return "no expiry"
	}
	return "expires " + value
}

// certifications maps each standard to its expiry, for the audit log line.
func (a *placementAudit) certifications() map[string]string {
	m := make(map[string]string, len(a.certs))
	for _, c := range a.certs {
		m[c.Standard] = expiry(c.Value)
	}
	return m
}

// PreBindPreFlight tells the framework that PreBind has work only for
// regulated pods.
func (pl *Compliance) PreBindPreFlight(_ context.Context, cycleState fwk.CycleState, _ *v1.Pod, _ string) *fwk.Status {
	if _, err := getPreFilterState(cycleState); err != nil {
		return fwk.NewStatus(fwk.Skip)
	}
	return nil
}

// PreBind checks the pod's requirements again, against the node as it is now
// (the informer's copy, not the cycle's snapshot) and the time now: a gang
// member can wait at Permit, and volume binding in an earlier PreBind plugin,
// while a certification expires or is removed. A node that no longer
// qualifies sends the pod back; the framework unreserves it and requeues it.
func (pl *Compliance) PreBind(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return nil // not a regulated pod
	}
	node, err := pl.nodes.Get(nodeName)
	if apierrors.IsNotFound(err) {
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf(ErrReasonNodeGoneFmt, nodeName))
	} else if err != nil {
		return fwk.AsStatus(fmt.Errorf("reading node %s: %w", nodeName, err))
	}
	now := pl.clock.Now()
	if v := s.req.Check(node, pl.args.CertificationLabelPrefix, now); v != nil {
		s.countRejection(v)
		klog.FromContext(ctx).V(4).Info("node no longer meets the pod's compliance requirements", "pod", klog.KObj(pod), "node", nodeName, "reason", v.Message)
		// Unschedulable rather than UnschedulableAndUnresolvable: at PreBind
		// both only send the pod back, and another node may qualify.
		return fwk.NewStatus(fwk.Unschedulable, fmt.Sprintf(ErrReasonNoLongerQualifiesFmt, nodeName, v.Message))
	}
	cycleState.Write(preBindStateKey, newPlacementAudit(s.req, node, pl.args.CertificationLabelPrefix, now))
	return nil
}

// PostBind records the audit trail of a regulated pod's placement, as PreBind
// checked it: an event on the pod, and one structured log line at the
// default verbosity (events expire; shipped logs can be kept).
func (pl *Compliance) PostBind(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return // not a regulated pod
	}
	c, err := cycleState.Read(preBindStateKey)
	if err != nil {
		pl.logger.Error(err, "regulated pod bound without a PreBind check", "pod", klog.KObj(pod), "node", nodeName)
		return
	}
	a := c.(*placementAudit)
	note := a.note()
	pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeNormal, locusv1alpha1.EventReasonCompliantPlacement, "Scheduled", "%s", note)
	for _, std := range s.req.Standards {
		metrics.CompliancePlacements.WithLabelValues(pl.index.metricStandard(std)).Inc()
	}
	kv := []any{
		"pod", klog.KObj(pod), "podUID", pod.UID, "namespace", pod.Namespace, "node", nodeName,
		"certifications", a.certifications(),
	}
	if a.residency != "" {
		kv = append(kv, "residency", a.residency, "region", a.region, "regionLabel", a.regionLabel)
	}
	kv = append(kv, "checkedAt", a.checkedAt.UTC().Format(time.RFC3339),
		"scheduler", pl.identity, "profile", pod.Spec.SchedulerName)
	pl.logger.Info("Compliant placement", kv...)
}
