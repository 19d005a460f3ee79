package config

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// ComplianceArgs holds the arguments of the Compliance plugin.
type ComplianceArgs struct {
	metav1.TypeMeta

	// CertificationLabelPrefix is prepended to a standard's name to form the
	// node label that certifies a node for it.
	CertificationLabelPrefix string
	// Residency maps a data-residency group to the regions (values of
	// ResidencyLabel) that belong to it.
	Residency map[string][]string
	// ResidencyLabel is the node label that holds a node's region.
	ResidencyLabel string
	// PreserveCertifiedCapacity makes pods without requirements prefer
	// uncertified nodes.
	PreserveCertifiedCapacity bool
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// DataLocalityArgs holds the arguments of the DataLocality plugin.
type DataLocalityArgs struct {
	metav1.TypeMeta

	// ZoneWeight is the weight of bytes in a node's zone, in [0, 1].
	ZoneWeight float64
	// RegionWeight is the weight of bytes in a node's region, in [0, 1].
	RegionWeight float64
	// DefaultLocalityWait applies to pods without the locality-wait
	// annotation. Zero turns the wait off.
	DefaultLocalityWait metav1.Duration
}

// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object

// BatchQuotaArgs holds the arguments of the BatchQuota plugin.
type BatchQuotaArgs struct {
	metav1.TypeMeta

	// DefaultScheduleTimeoutSeconds is how long Permit holds a gang's members
	// when their PodGroup does not set scheduleTimeoutSeconds.
	DefaultScheduleTimeoutSeconds int32
	// StatusUpdateInterval is how often ElasticQuota and PodGroup status is
	// written back.
	StatusUpdateInterval metav1.Duration
}
