// Package compliance holds the Compliance plugin: regulated pods run only on
// nodes that hold a valid certification for each standard they need, and
// inside their data-residency region group. It fails closed: a pod whose
// requirements cannot be read is never placed.
package compliance

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	corelisters "k8s.io/client-go/listers/core/v1"
	compbasemetrics "k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"
	"k8s.io/kubernetes/pkg/scheduler/util"
	"k8s.io/utils/clock"

	"locus.dev/locus/apis/config"
	configvalidation "locus.dev/locus/apis/config/validation"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/metrics"
)

// Compliance is the Compliance plugin.
type Compliance struct {
	logger   klog.Logger
	handle   framework.Handle
	args     config.ComplianceArgs
	nsLister corelisters.NamespaceLister
	nodes    corelisters.NodeLister
	clock    clock.PassiveClock
	certs    *certCache
}

var _ framework.PreFilterPlugin = &Compliance{}
var _ framework.FilterPlugin = &Compliance{}
var _ framework.PreScorePlugin = &Compliance{}
var _ framework.ScorePlugin = &Compliance{}
var _ framework.PostBindPlugin = &Compliance{}
var _ framework.EnqueueExtensions = &Compliance{}

const (
	// Name is the plugin's name in a KubeSchedulerConfiguration.
	Name = "Compliance"

	preFilterStateKey = "PreFilter" + Name
	preScoreStateKey  = "PreScore" + Name

	// ErrReasonMissingFmt is the Filter reason for a node without the certification.
	ErrReasonMissingFmt = "missing certification %s"
	// ErrReasonExpiredFmt is the Filter reason for an expired certification.
	ErrReasonExpiredFmt = "certification %s expired %s"
	// ErrReasonInvalidFmt is the Filter reason for a certification label value
	// that is neither "true" nor a date: it certifies nothing.
	ErrReasonInvalidFmt = "certification %s has invalid value %q"
	// ErrReasonResidencyFmt is the Filter reason for a node outside the residency group.
	ErrReasonResidencyFmt = "outside data residency %s"
)

// Name returns the plugin's name.
func (pl *Compliance) Name() string { return Name }

// New builds the plugin from its args.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	args, ok := obj.(*config.ComplianceArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type ComplianceArgs, got %T", obj)
	}
	if err := configvalidation.ValidateComplianceArgs(nil, args); err != nil {
		return nil, err
	}
	metrics.Register()
	informers := h.SharedInformerFactory().Core().V1()
	return &Compliance{
		logger:   klog.FromContext(ctx).WithValues("plugin", Name),
		handle:   h,
		args:     *args,
		nsLister: informers.Namespaces().Lister(),
		nodes:    informers.Nodes().Lister(),
		clock:    clock.RealClock{},
		certs:    &certCache{prefix: args.CertificationLabelPrefix},
	}, nil
}

// EventsToRegister lists the events that can make a pod rejected by this
// plugin schedulable: a node gaining a certification or entering a region
// (label changes), a new node, and the pod's own annotations changing.
func (pl *Compliance) EventsToRegister(_ context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel}, QueueingHintFn: pl.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.Pod, ActionType: fwk.Update}, QueueingHintFn: pl.isSchedulableAfterPodUpdate},
		{Event: fwk.ClusterEvent{Resource: namespacesGVK, ActionType: fwk.Add | fwk.Update}, QueueingHintFn: pl.isSchedulableAfterNamespaceChange},
	}, nil
}

// namespacesGVK makes the framework watch namespaces through its dynamic
// informers (<resource>.<version>.<group>, the core group being empty).
const namespacesGVK fwk.EventResource = "namespaces.v1."

// isSchedulableAfterNamespaceChange queues the pod when its namespace
// appears or its compliance annotations change.
func (pl *Compliance) isSchedulableAfterNamespaceChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldNS, err := asNamespace(oldObj)
	if err != nil {
		return fwk.Queue, err
	}
	newNS, err := asNamespace(newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if newNS == nil || newNS.Name != pod.Namespace {
		return fwk.QueueSkip, nil
	}
	if oldNS == nil {
		return fwk.Queue, nil
	}
	for _, key := range []string{locusv1alpha1.AnnotationCompliance, locusv1alpha1.AnnotationDataResidency} {
		if oldNS.Annotations[key] != newNS.Annotations[key] {
			logger.V(4).Info("namespace's compliance annotations changed", "pod", klog.KObj(pod), "namespace", newNS.Name, "annotation", key)
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// asNamespace reads a namespace from a typed or unstructured object (dynamic
// informers deliver unstructured ones); nil stays nil.
func asNamespace(obj interface{}) (*v1.Namespace, error) {
	switch o := obj.(type) {
	case nil:
		return nil, nil
	case *v1.Namespace:
		return o, nil
	case *unstructured.Unstructured:
		ns := &v1.Namespace{}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, ns); err != nil {
			return nil, err
		}
		return ns, nil
	default:
		return nil, fmt.Errorf("want a Namespace, got %T", obj)
	}
}

// isSchedulableAfterNodeChange queues the pod when a node that did not meet
// its requirements now does.
func (pl *Compliance) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldNode, newNode, err := util.As[*v1.Node](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	req, err := pl.requirements(pod)
	if err != nil {
		// A malformed annotation is resolved only by changing the pod.
		return fwk.QueueSkip, nil
	}
	now := pl.clock.Now()
	if req.Check(newNode, pl.args.CertificationLabelPrefix, now) != nil {
		logger.V(5).Info("node does not meet the pod's compliance requirements", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
		return fwk.QueueSkip, nil
	}
	if oldNode != nil && req.Check(oldNode, pl.args.CertificationLabelPrefix, now) == nil {
		// It met them before, so this update changes nothing for the pod.
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("node now meets the pod's compliance requirements", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.Queue, nil
}

// isSchedulableAfterPodUpdate queues the pod when its own compliance
// annotations change (the way out of a malformed annotation).
func (pl *Compliance) isSchedulableAfterPodUpdate(logger klog.Logger, pod *v1.Pod, oldObj, newObj interface{}) (fwk.QueueingHint, error) {
	oldPod, newPod, err := util.As[*v1.Pod](oldObj, newObj)
	if err != nil {
		return fwk.Queue, err
	}
	if newPod.UID != pod.UID {
		return fwk.QueueSkip, nil
	}
	for _, key := range []string{locusv1alpha1.AnnotationCompliance, locusv1alpha1.AnnotationDataResidency} {
		if oldPod.Annotations[key] != newPod.Annotations[key] {
			logger.V(4).Info("pod's compliance annotations changed", "pod", klog.KObj(pod), "annotation", key)
			return fwk.Queue, nil
		}
	}
	return fwk.QueueSkip, nil
}

// requirements reads the pod's effective requirements from the pod and its
// namespace, both from informer caches. A namespace not yet in the cache is
// an error, not an empty set of requirements: failing closed keeps a pod
// from escaping its namespace's requirements.
func (pl *Compliance) requirements(pod *v1.Pod) (*Requirements, error) {
	ns, err := pl.nsLister.Get(pod.Namespace)
	if err != nil {
		return nil, fmt.Errorf("cannot read the compliance requirements of namespace %s: %w", pod.Namespace, err)
	}
	req, err := ParseRequirements(pod, ns, pl.args.Residency)
	if err != nil {
		return nil, err
	}
	for _, std := range req.Standards {
		if errs := validation.IsQualifiedName(pl.args.CertificationLabelPrefix + std); len(errs) != 0 {
			return nil, fmt.Errorf("invalid standard %q in %s: %s%s is not a valid label key",
				std, locusv1alpha1.AnnotationCompliance, pl.args.CertificationLabelPrefix, std)
		}
	}
	return req, nil
}

// preFilterState is what Filter needs for one pod, computed once.
type preFilterState struct {
	req *Requirements
	now time.Time
	// rejections holds the pod's rejection counters, resolved once here
	// rather than looked up by label on every rejected node.
	rejections map[[2]string]compbasemetrics.CounterMetric
}

func newPreFilterState(req *Requirements, now time.Time) *preFilterState {
	s := &preFilterState{req: req, now: now, rejections: map[[2]string]compbasemetrics.CounterMetric{}}
	for _, std := range req.Standards {
		for _, kind := range []string{metrics.RejectMissing, metrics.RejectExpired, metrics.RejectInvalid} {
			s.rejections[[2]string{std, kind}] = metrics.ComplianceRejections.WithLabelValues(std, kind)
		}
	}
	if req.Residency != "" {
		s.rejections[[2]string{req.Residency, metrics.RejectResidency}] = metrics.ComplianceRejections.WithLabelValues(req.Residency, metrics.RejectResidency)
	}
	return s
}

func (s *preFilterState) countRejection(v *Violation) {
	if c, ok := s.rejections[[2]string{v.Standard, v.Kind}]; ok {
		c.Inc()
		return
	}
	metrics.ComplianceRejections.WithLabelValues(v.Standard, v.Kind).Inc()
}

// Clone returns the state itself: it does not change with added or removed pods.
func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter reads the pod's requirements once. Pods without any skip Filter.
func (pl *Compliance) PreFilter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
	req, err := pl.requirements(pod)
	if err != nil {
		metrics.ComplianceRejections.WithLabelValues("", metrics.RejectInvalid).Inc()
		klog.FromContext(ctx).V(4).Info("pod has malformed compliance requirements", "pod", klog.KObj(pod), "err", err)
		// Fail closed. Preemption cannot fix an annotation, so the pod is
		// unresolvable until the pod itself changes.
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if req.Empty() {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	cycleState.Write(preFilterStateKey, newPreFilterState(req, pl.clock.Now()))
	return nil, nil
}

// PreFilterExtensions returns nil: the state does not depend on other pods.
func (pl *Compliance) PreFilterExtensions() framework.PreFilterExtensions { return nil }

// Filter rejects a node that lacks a valid certification for a required
// standard, or that lies outside the pod's residency group.
func (pl *Compliance) Filter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return fwk.AsStatus(err)
	}
	v := s.req.Check(nodeInfo.Node(), pl.args.CertificationLabelPrefix, s.now)
	if v == nil {
		return nil
	}
	s.countRejection(v)
	// Evicting pods does not certify a node or move it to another region, so
	// preemption cannot help.
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, v.Message)
}

// preScoreState is what Score needs for one pod.
type preScoreState struct {
	required []string
	now      time.Time
}

// Clone returns the state itself: it does not change with added or removed pods.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore prepares the preserveCertifiedCapacity score.
func (pl *Compliance) PreScore(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if !pl.args.PreserveCertifiedCapacity {
		return fwk.NewStatus(fwk.Skip)
	}
	s := &preScoreState{now: pl.clock.Now()}
	if pf, err := getPreFilterState(cycleState); err == nil {
		s.required, s.now = pf.req.Standards, pf.now
	}
	cycleState.Write(preScoreStateKey, s)
	return nil
}

// Score counts the valid certifications a node holds beyond what the pod
// needs; NormalizeScore reverses it, so that nodes with the least certified
// capacity to spare score highest and certified nodes stay free for
// regulated work.
func (pl *Compliance) Score(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	c, err := cycleState.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(fmt.Errorf("reading %q from cycle state: %w", preScoreStateKey, err))
	}
	s := c.(*preScoreState)
	return int64(pl.certs.validCertifications(nodeInfo.Node(), s.required, s.now)), nil
}

// NormalizeScore maps the counts to 0..100, fewest spare certifications highest.
func (pl *Compliance) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *fwk.Status {
	return helper.DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
}

// ScoreExtensions returns the plugin, for NormalizeScore.
func (pl *Compliance) ScoreExtensions() framework.ScoreExtensions { return pl }

// PostBind records the audit event of a regulated pod's placement: the node,
// each certification it matched with its expiry, and the residency region.
func (pl *Compliance) PostBind(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeName string) {
	s, err := getPreFilterState(cycleState)
	if err != nil {
		return // not a regulated pod
	}
	var labels map[string]string
	if node, err := pl.nodes.Get(nodeName); err == nil {
		labels = node.Labels
	} else if ni, err := pl.handle.SnapshotSharedLister().NodeInfos().Get(nodeName); err == nil {
		labels = ni.Node().Labels
	}
	note := AuditNote(s.req, nodeName, labels, pl.args.CertificationLabelPrefix)
	pl.handle.EventRecorder().Eventf(pod, nil, v1.EventTypeNormal, locusv1alpha1.EventReasonCompliantPlacement, "Scheduled", "%s", note)
	for _, std := range s.req.Standards {
		metrics.CompliancePlacements.WithLabelValues(std).Inc()
	}
	klog.FromContext(ctx).V(4).Info("compliant placement", "pod", klog.KObj(pod), "node", nodeName, "audit", note)
}

// AuditNote describes a placement for the audit trail:
// "node n1 holds pci-dss (expires 2026-12-31), hipaa (no expiry); data residency eu: region eu-west-1".
func AuditNote(req *Requirements, nodeName string, nodeLabels map[string]string, labelPrefix string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s", nodeName)
	if len(req.Standards) > 0 {
		parts := make([]string, 0, len(req.Standards))
		for _, std := range req.Standards {
			value := nodeLabels[labelPrefix+std]
			if value == "true" {
				parts = append(parts, std+" (no expiry)")
			} else {
				parts = append(parts, fmt.Sprintf("%s (expires %s)", std, value))
			}
		}
		fmt.Fprintf(&b, " holds %s", strings.Join(parts, ", "))
	}
	if req.Residency != "" {
		fmt.Fprintf(&b, "; data residency %s: region %s", req.Residency, nodeLabels[v1.LabelTopologyRegion])
	}
	return b.String()
}

func getPreFilterState(cycleState fwk.CycleState) (*preFilterState, error) {
	c, err := cycleState.Read(preFilterStateKey)
	if err != nil {
		return nil, fmt.Errorf("reading %q from cycle state: %w", preFilterStateKey, err)
	}
	s, ok := c.(*preFilterState)
	if !ok {
		return nil, fmt.Errorf("%+v cannot be converted to compliance.preFilterState", c)
	}
	return s, nil
}
