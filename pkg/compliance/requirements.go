package compliance

import (
	"fmt"
	"sort"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/message"
	"locus.dev/locus/pkg/metrics"
)

// dateLayout is the layout of a certification label's expiry date.
const dateLayout = "2006-01-02"

// Requirements are a pod's effective compliance requirements: the union of
// its own and its namespace's standards, and at most one residency group.
type Requirements struct {
	// Standards is sorted and free of duplicates.
	Standards []string
	// Residency is the residency group, "" for none.
	Residency string
	// Regions are the regions of the residency group.
	Regions sets.Set[string]
	// RegionLabel is the node label that holds the node's region (the
	// residencyLabel arg); "" means topology.kubernetes.io/region.
	RegionLabel string

	// missing[i] is the reason for a node without Standards[i], made once
	// per pod rather than once per rejected node.
	missing []string
	// labelKeys[i] is keyPrefix+Standards[i], made once per pod so that
	// checking a node allocates nothing (see withLabelKeys).
	keyPrefix string
	labelKeys []string
	// outside is the residency reason, made once per pod.
	outside string
}

// withLabelKeys makes the certification label keys of the standards under
// prefix once, for Check.
func (r *Requirements) withLabelKeys(prefix string) *Requirements {
	r.keyPrefix, r.labelKeys = prefix, make([]string, len(r.Standards))
	for i, std := range r.Standards {
		r.labelKeys[i] = prefix + std
	}
	return r
}

func (r *Requirements) labelKey(i int, prefix string) string {
	if i < len(r.labelKeys) && r.keyPrefix == prefix {
		return r.labelKeys[i]
	}
	return prefix + r.Standards[i]
}

// Empty reports whether the pod has no requirement at all.
func (r *Requirements) Empty() bool {
	return len(r.Standards) == 0 && r.Residency == ""
}

// ParseRequirements computes the effective requirements of a pod in a
// namespace (ns may be nil when no namespace annotations apply). An error
// names the bad value; a pod with such an error must not be placed.
func ParseRequirements(pod *v1.Pod, ns *v1.Namespace, residency map[string][]string) (*Requirements, error) {
	var nsAnn map[string]string
	if ns != nil {
		nsAnn = ns.Annotations
	}
	standards := sets.New[string]()
	for _, src := range []struct {
		what string
		ann  map[string]string
	}{{"pod", pod.Annotations}, {"namespace", nsAnn}} {
		value, ok := src.ann[locusv1alpha1.AnnotationCompliance]
		if !ok {
			continue
		}
		for _, s := range strings.Split(value, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if errs := validation.IsDNS1123Label(s); len(errs) != 0 {
				return nil, fmt.Errorf("invalid standard %q in %s annotation %s: must be a lowercase DNS label such as pci-dss",
					message.Clip(s), src.what, locusv1alpha1.AnnotationCompliance)
			}
			standards.Insert(s)
		}
	}
	req := &Requirements{Standards: sets.List(standards)}
	for _, std := range req.Standards {
		req.missing = append(req.missing, fmt.Sprintf(ErrReasonMissingFmt, std))
	}

	podGroup, podHas := pod.Annotations[locusv1alpha1.AnnotationDataResidency]
	nsGroup, nsHas := nsAnn[locusv1alpha1.AnnotationDataResidency]
	podGroup, nsGroup = strings.TrimSpace(podGroup), strings.TrimSpace(nsGroup)
	switch {
	case podHas && nsHas && podGroup != nsGroup:
		return nil, fmt.Errorf("conflicting %s: pod says %q, namespace %s says %q",
			locusv1alpha1.AnnotationDataResidency, message.Clip(podGroup), pod.Namespace, message.Clip(nsGroup))
	case podHas:
		req.Residency = podGroup
	case nsHas:
		req.Residency = nsGroup
	}
	if podHas || nsHas {
		regions, ok := residency[req.Residency]
		if !ok {
			known := make([]string, 0, len(residency))
			for g := range residency {
				known = append(known, g)
			}
			sort.Strings(known)
			return nil, fmt.Errorf("unknown data residency group %q in %s (known: %s)",
				message.Clip(req.Residency), locusv1alpha1.AnnotationDataResidency, strings.Join(known, ", "))
		}
		req.Regions = sets.New(regions...)
		req.outside = fmt.Sprintf(ErrReasonResidencyFmt, req.Residency)
	}
	return req, nil
}

// CertState is what a node's label says about one standard.
type CertState int

const (
	// CertMissing means the node has no label for the standard.
	CertMissing CertState = iota
	// CertValid means "true" or an expiry date not yet passed.
	CertValid
	// CertExpired means an expiry date in the past.
	CertExpired
	// CertInvalid means a value that is neither "true" nor a date.
	CertInvalid
)

// Certification reads the certification of a node for one standard, at now.
// A date is valid through the end of that day, UTC. It returns the label
// value as well, for reasons and audit events.
func Certification(nodeLabels map[string]string, labelPrefix, standard string, now time.Time) (CertState, string) {
	value, ok := nodeLabels[labelPrefix+standard]
	if !ok {
		return CertMissing, ""
	}
	return certificationValue(value, now), value
}

func certificationValue(value string, now time.Time) CertState {
	return parseCertification("", value).state(now)
}

// Violation is the first requirement a node fails, or nil.
type Violation struct {
	// Standard is the standard, or the residency group for Reason residency.
	Standard string
	// Kind is one of the metrics reject reasons: missing, expired, invalid, residency.
	Kind string
	// Message is the short, user-facing reason.
	Message string
}

// Check returns the first requirement that the node fails, or nil.
func (r *Requirements) Check(node *v1.Node, labelPrefix string, now time.Time) *Violation {
	if v, failed := r.check(node, labelPrefix, now); failed {
		return &v
	}
	return nil
}

// check is Check without allocating for a node that qualifies, or that
// lacks a certification or sits outside the residency (their messages are
// made once per pod).
func (r *Requirements) check(node *v1.Node, labelPrefix string, now time.Time) (Violation, bool) {
	for i, std := range r.Standards {
		value, ok := node.Labels[r.labelKey(i, labelPrefix)]
		if !ok {
			msg := ""
			if i < len(r.missing) {
				msg = r.missing[i]
			} else {
				msg = fmt.Sprintf(ErrReasonMissingFmt, std)
			}
			return Violation{Standard: std, Kind: metrics.RejectMissing, Message: msg}, true
		}
		switch certificationValue(value, now) {
		case CertValid:
			continue
		case CertExpired:
			return Violation{Standard: std, Kind: metrics.RejectExpired, Message: fmt.Sprintf(ErrReasonExpiredFmt, std, value)}, true
		default:
			return Violation{Standard: std, Kind: metrics.RejectInvalid, Message: fmt.Sprintf(ErrReasonInvalidFmt, std, value)}, true
		}
	}
	if r.Residency != "" && !r.Regions.Has(node.Labels[r.regionLabel()]) {
		msg := r.outside
		if msg == "" {
			msg = fmt.Sprintf(ErrReasonResidencyFmt, r.Residency)
		}
		return Violation{Standard: r.Residency, Kind: metrics.RejectResidency, Message: msg}, true
	}
	return Violation{}, false
}

// regionLabel is the node label that Check matches the residency regions against.
func (r *Requirements) regionLabel() string {
	if r.RegionLabel == "" {
		return v1.LabelTopologyRegion
	}
	return r.RegionLabel
}
