package v1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	// DefaultCertificationLabelPrefix is under node-restriction.kubernetes.io/,
	// which the NodeRestriction admission plugin forbids kubelets to set.
	DefaultCertificationLabelPrefix = "node-restriction.kubernetes.io/compliance."
	// DefaultResidencyLabel is the well-known region label. Kubelets may set
	// it on their own Node, unlike labels under node-restriction.kubernetes.io/.
	DefaultResidencyLabel = "topology.kubernetes.io/region"
	// DefaultZoneWeight is the weight of bytes in a node's zone.
	DefaultZoneWeight = 0.5
	// DefaultRegionWeight is the weight of bytes in a node's region.
	DefaultRegionWeight = 0.1
	// DefaultScheduleTimeoutSeconds is how long a gang may wait in Permit.
	DefaultScheduleTimeoutSeconds int32 = 60
	// DefaultStatusUpdateInterval is how often status is written back.
	DefaultStatusUpdateInterval = time.Second
)

// SetDefaults_ComplianceArgs sets the default Compliance args.
func SetDefaults_ComplianceArgs(obj *ComplianceArgs) {
	if obj.CertificationLabelPrefix == nil {
		obj.CertificationLabelPrefix = ptr.To(DefaultCertificationLabelPrefix)
	}
	if obj.PreserveCertifiedCapacity == nil {
		obj.PreserveCertifiedCapacity = ptr.To(true)
	}
	if obj.ResidencyLabel == nil {
		obj.ResidencyLabel = ptr.To(DefaultResidencyLabel)
	}
}

// SetDefaults_DataLocalityArgs sets the default DataLocality args.
func SetDefaults_DataLocalityArgs(obj *DataLocalityArgs) {
	if obj.ZoneWeight == nil {
		obj.ZoneWeight = ptr.To(DefaultZoneWeight)
	}
	if obj.RegionWeight == nil {
		obj.RegionWeight = ptr.To(DefaultRegionWeight)
	}
	if obj.DefaultLocalityWait == nil {
		obj.DefaultLocalityWait = &metav1.Duration{}
	}
}

// SetDefaults_BatchQuotaArgs sets the default BatchQuota args.
func SetDefaults_BatchQuotaArgs(obj *BatchQuotaArgs) {
	if obj.DefaultScheduleTimeoutSeconds == nil {
		obj.DefaultScheduleTimeoutSeconds = ptr.To(DefaultScheduleTimeoutSeconds)
	}
	if obj.StatusUpdateInterval == nil {
		obj.StatusUpdateInterval = &metav1.Duration{Duration: DefaultStatusUpdateInterval}
	}
}
