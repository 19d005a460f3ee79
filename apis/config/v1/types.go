package v1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ComplianceArgs holds the arguments of the Compliance plugin.
type ComplianceArgs struct {
	metav1.TypeMeta `json:",inline"`

	// CertificationLabelPrefix is prepended to a standard's name to form the
	// node label that certifies a node for it. Defaults to
	// "node-restriction.kubernetes.io/compliance.", a prefix that kubelets
	// cannot set on their own Node (NodeRestriction admission).
	CertificationLabelPrefix *string `json:"certificationLabelPrefix,omitempty"`
	// Residency maps a data-residency group (the value of the
	// locus.dev/data-residency annotation) to the regions that belong to it.
	Residency map[string][]string `json:"residency,omitempty"`
	// ResidencyLabel is the node label whose value is matched against the
	// regions of a residency group. Defaults to "topology.kubernetes.io/region".
	// Kubelets may set that label on their own Node; a label under
	// "node-restriction.kubernetes.io/" (for example
	// "node-restriction.kubernetes.io/region") cannot be set by a kubelet.
	ResidencyLabel *string `json:"residencyLabel,omitempty"`
	// PreserveCertifiedCapacity makes pods without compliance requirements
	// prefer uncertified nodes. Defaults to true.
	PreserveCertifiedCapacity *bool `json:"preserveCertifiedCapacity,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// DataLocalityArgs holds the arguments of the DataLocality plugin.
type DataLocalityArgs struct {
	metav1.TypeMeta `json:",inline"`

	// ZoneWeight is the weight of bytes that live in a node's zone. Defaults to 0.5.
	ZoneWeight *float64 `json:"zoneWeight,omitempty"`
	// RegionWeight is the weight of bytes that live in a node's region. Defaults to 0.1.
	RegionWeight *float64 `json:"regionWeight,omitempty"`
	// DefaultLocalityWait applies to pods without the locus.dev/locality-wait
	// annotation. Defaults to 0 (off).
	DefaultLocalityWait *metav1.Duration `json:"defaultLocalityWait,omitempty"`
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BatchQuotaArgs holds the arguments of the BatchQuota plugin.
type BatchQuotaArgs struct {
	metav1.TypeMeta `json:",inline"`

	// DefaultScheduleTimeoutSeconds is how long Permit holds a gang's members
	// when their PodGroup does not set scheduleTimeoutSeconds. Defaults to 60.
	DefaultScheduleTimeoutSeconds *int32 `json:"defaultScheduleTimeoutSeconds,omitempty"`
	// StatusUpdateInterval is how often ElasticQuota and PodGroup status is
	// written back. Defaults to 1s.
	StatusUpdateInterval *metav1.Duration `json:"statusUpdateInterval,omitempty"`
}
