// Package compliance holds the Compliance plugin: regulated pods run only on
// nodes that hold a valid certification for each standard they need, and
// inside their data-residency region group. It fails closed: a pod whose
// requirements cannot be read is never placed.
//
// The check holds until the bind (prebind.go): PreBind checks the node again
// as it is then, and the audit trail (an event and a log line) reports what
// that check saw. Running regulated pods whose node stops qualifying get a
// CertificationLapsed warning (lapse.go); locus does not evict them.
package compliance

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	corelisters "k8s.io/client-go/listers/core/v1"
	compbasemetrics "k8s.io/component-base/metrics"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/helper"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	"k8s.io/utils/clock"

	"locus.dev/locus/apis/config"
	configvalidation "locus.dev/locus/apis/config/validation"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/leader"
	"locus.dev/locus/pkg/metrics"
)

// Compliance is the Compliance plugin.
type Compliance struct {
	logger   klog.Logger
	handle   framework.Handle
	args     config.ComplianceArgs
	nsLister corelisters.NamespaceLister
	nodes    corelisters.NodeLister
	clock    clock.WithDelayedExecution
	index    *nodeIndex
	lapses   *lapses
	elected  *leader.Elected
	// identity names this scheduler process in audit log lines: its
	// hostname, which is the pod name of a scheduler replica.
	identity string
}

var _ framework.PreFilterPlugin = &Compliance{}
var _ framework.FilterPlugin = &Compliance{}
var _ framework.PreScorePlugin = &Compliance{}
var _ framework.ScorePlugin = &Compliance{}
var _ framework.PreBindPlugin = &Compliance{}
var _ framework.PostBindPlugin = &Compliance{}
var _ framework.EnqueueExtensions = &Compliance{}

const (
	// Name is the plugin's name in a KubeSchedulerConfiguration.
	Name = "Compliance"

	preFilterStateKey = "PreFilter" + Name
	preScoreStateKey  = "PreScore" + Name
	preBindStateKey   = "PreBind" + Name

	// ErrReasonMissingFmt is the Filter reason for a node without the certification.
	ErrReasonMissingFmt = "missing certification %s"
	// ErrReasonExpiredFmt is the Filter reason for an expired certification.
	ErrReasonExpiredFmt = "certification %s expired %s"
	// ErrReasonInvalidFmt is the Filter reason for a certification label value
	// that is neither "true" nor a date: it certifies nothing.
	ErrReasonInvalidFmt = "certification %s has invalid value %q"
	// ErrReasonResidencyFmt is the Filter reason for a node outside the residency group.
	ErrReasonResidencyFmt = "outside data residency %s"
	// ErrReasonNoLongerQualifiesFmt is the PreBind reason for a node that met
	// the pod's requirements at Filter and no longer does: node, then one of
	// the reasons above.
	ErrReasonNoLongerQualifiesFmt = "node %s no longer meets the compliance requirements before binding: %s"
	// ErrReasonNodeGoneFmt is the PreBind reason for a node deleted while the
	// pod waited.
	ErrReasonNodeGoneFmt = "node %s no longer exists"

	// EventReasonCertificationLapsed warns that a regulated pod runs on a
	// node that no longer meets its requirements.
	EventReasonCertificationLapsed = "CertificationLapsed"

	// protectedLabelPrefix is the label prefix that the NodeRestriction
	// admission plugin forbids kubelets to set on their own Node.
	protectedLabelPrefix = "node-restriction.kubernetes.io/"
)

// Name returns the plugin's name.
func (pl *Compliance) Name() string { return Name }

// New builds the plugin for a scheduler without leader election: it records
// CertificationLapsed events from the start.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	return NewFactory(leader.Always())(ctx, obj, h)
}

// NewFactory returns New for a scheduler process whose leadership is e: the
// plugin records CertificationLapsed events only while e leads.
func NewFactory(e *leader.Elected) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		args, ok := obj.(*config.ComplianceArgs)
		if !ok {
			return nil, fmt.Errorf("want args of type ComplianceArgs, got %T", obj)
		}
		if err := configvalidation.ValidateComplianceArgs(nil, args); err != nil {
			return nil, err
		}
		return newPlugin(ctx, *args, h, e, clock.RealClock{}), nil
	}
}

// newPlugin wires the plugin to the handle's informers; tests pass a fake
// clock. The lapse checks run until ctx is done.
func newPlugin(ctx context.Context, args config.ComplianceArgs, h framework.Handle, e *leader.Elected, c clock.WithDelayedExecution) *Compliance {
	metrics.Register()
	if e == nil {
		e = leader.Always()
	}
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	identity, err := os.Hostname()
	if err != nil {
		identity = "unknown"
	}
	informers := h.SharedInformerFactory().Core().V1()
	pl := &Compliance{
		logger:   logger,
		handle:   h,
		args:     args,
		nsLister: informers.Namespaces().Lister(),
		nodes:    informers.Nodes().Lister(),
		clock:    c,
		index:    newNodeIndex(args.CertificationLabelPrefix, args.ResidencyLabel),
		lapses:   newLapses(),
		elected:  e,
		identity: identity,
	}
	warnUnprotectedLabels(logger, args)
	pl.watch(ctx, informers.Nodes().Informer(), informers.Pods().Informer(), informers.Namespaces().Informer(), informers.Pods().Lister())
	return pl
}

// warnUnprotectedLabels warns when a node could vouch for itself: kubelets
// may set labels outside node-restriction.kubernetes.io/ on their own Node.
func warnUnprotectedLabels(logger klog.Logger, args config.ComplianceArgs) {
	if !strings.HasPrefix(args.CertificationLabelPrefix, protectedLabelPrefix) {
		logger.Info("Warning: the certification label prefix is outside "+protectedLabelPrefix+
			"; a kubelet can set such labels on its own Node and so certify it",
			"certificationLabelPrefix", args.CertificationLabelPrefix)
	}
	if !strings.HasPrefix(args.ResidencyLabel, protectedLabelPrefix) {
		logger.Info("Warning: the residency label is outside "+protectedLabelPrefix+
			"; a kubelet can set it on its own Node and so move it into a residency group",
			"residencyLabel", args.ResidencyLabel, "protectedAlternative", protectedLabelPrefix+"region")
	}
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
	req.RegionLabel = pl.args.ResidencyLabel
	req.withLabelKeys(pl.args.CertificationLabelPrefix)
	for i, std := range req.Standards {
		if errs := validation.IsQualifiedName(req.labelKeys[i]); len(errs) != 0 {
			return nil, fmt.Errorf("invalid standard %q in %s: %s is not a valid label key",
				std, locusv1alpha1.AnnotationCompliance, req.labelKeys[i])
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

func newPreFilterState(req *Requirements, now time.Time, index *nodeIndex) *preFilterState {
	s := &preFilterState{req: req, now: now, rejections: map[[2]string]compbasemetrics.CounterMetric{}}
	for _, std := range req.Standards {
		label := index.metricStandard(std)
		for _, kind := range []string{metrics.RejectMissing, metrics.RejectExpired, metrics.RejectInvalid} {
			s.rejections[[2]string{std, kind}] = metrics.ComplianceRejections.WithLabelValues(label, kind)
		}
	}
	if req.Residency != "" {
		// Residency groups come from the args: a bounded set.
		s.rejections[[2]string{req.Residency, metrics.RejectResidency}] = metrics.ComplianceRejections.WithLabelValues(req.Residency, metrics.RejectResidency)
	}
	return s
}

// countRejection counts a violation. Every violation of the pod's
// requirements has its counter resolved in newPreFilterState, so no label
// value is made here.
func (s *preFilterState) countRejection(v *Violation) {
	if c, ok := s.rejections[[2]string{v.Standard, v.Kind}]; ok {
		c.Inc()
	}
}

// Clone returns the state itself: it does not change with added or removed pods.
func (s *preFilterState) Clone() fwk.StateData { return s }

// PreFilter reads the pod's requirements once. Pods without any skip Filter.
// When few nodes meet them (nodeIndex), it names those nodes, and the
// framework filters and scores no other; Filter still checks each of them
// as the scheduler's snapshot has it.
func (pl *Compliance) PreFilter(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*framework.PreFilterResult, *fwk.Status) {
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
	now := pl.clock.Now()
	cycleState.Write(preFilterStateKey, newPreFilterState(req, now, pl.index))
	if c := pl.index.candidates(req, now); narrowsSearch(c.Len(), len(nodes)) {
		return &framework.PreFilterResult{NodeNames: c}, nil
	}
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
	v, failed := s.req.check(nodeInfo.Node(), pl.args.CertificationLabelPrefix, s.now)
	if !failed {
		return nil
	}
	s.countRejection(&v)
	// Evicting pods does not certify a node or move it to another region, so
	// preemption cannot help.
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, v.Message)
}

// preScoreState is what Score needs for one pod: how many valid
// certifications each node holds beyond the pod's own (nodes holding none
// absent), from the node index.
type preScoreState struct {
	spare map[string]int32
}

// Clone returns the state itself: it does not change with added or removed pods.
func (s *preScoreState) Clone() fwk.StateData { return s }

// PreScore prepares the preserveCertifiedCapacity score. When no node holds
// a valid certification beyond the pod's own, every node would score the
// same, and Score is skipped.
func (pl *Compliance) PreScore(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, _ []fwk.NodeInfo) *fwk.Status {
	if !pl.args.PreserveCertifiedCapacity {
		return fwk.NewStatus(fwk.Skip)
	}
	now := pl.clock.Now()
	var required []string
	if pf, err := getPreFilterState(cycleState); err == nil {
		required, now = pf.req.Standards, pf.now
	}
	spare := pl.index.spareCounts(required, now)
	if len(spare) == 0 {
		return fwk.NewStatus(fwk.Skip)
	}
	cycleState.Write(preScoreStateKey, &preScoreState{spare: spare})
	return nil
}

// Score is the number of valid certifications a node holds beyond what the
// pod needs (a lookup: PreScore took the counts from the node index);
// NormalizeScore reverses it, so that nodes with the least certified
// capacity to spare score highest and certified nodes stay free for
// regulated work.
func (pl *Compliance) Score(ctx context.Context, cycleState fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) (int64, *fwk.Status) {
	c, err := cycleState.Read(preScoreStateKey)
	if err != nil {
		return 0, fwk.AsStatus(fmt.Errorf("reading %q from cycle state: %w", preScoreStateKey, err))
	}
	return int64(c.(*preScoreState).spare[nodeInfo.Node().Name]), nil
}

// NormalizeScore maps the counts to 0..100, fewest spare certifications highest.
func (pl *Compliance) NormalizeScore(_ context.Context, _ fwk.CycleState, _ *v1.Pod, scores framework.NodeScoreList) *fwk.Status {
	return helper.DefaultNormalizeScore(framework.MaxNodeScore, true, scores)
}

// ScoreExtensions returns the plugin, for NormalizeScore.
func (pl *Compliance) ScoreExtensions() framework.ScoreExtensions { return pl }

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
