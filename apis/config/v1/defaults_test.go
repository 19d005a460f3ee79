package v1

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
)

func TestDefaults(t *testing.T) {
	tests := []struct {
		name string
		in   runtime.Object
		want runtime.Object
	}{
		{
			name: "empty ComplianceArgs",
			in:   &ComplianceArgs{},
			want: &ComplianceArgs{CertificationLabelPrefix: ptr.To(DefaultCertificationLabelPrefix), PreserveCertifiedCapacity: ptr.To(true), ResidencyLabel: ptr.To(DefaultResidencyLabel)},
		},
		{
			name: "ComplianceArgs keep set values",
			in: &ComplianceArgs{CertificationLabelPrefix: ptr.To("example.com/cert."), PreserveCertifiedCapacity: ptr.To(false),
				ResidencyLabel: ptr.To("node-restriction.kubernetes.io/region")},
			want: &ComplianceArgs{CertificationLabelPrefix: ptr.To("example.com/cert."), PreserveCertifiedCapacity: ptr.To(false),
				ResidencyLabel: ptr.To("node-restriction.kubernetes.io/region")},
		},
		{
			name: "empty DataLocalityArgs",
			in:   &DataLocalityArgs{},
			want: &DataLocalityArgs{ZoneWeight: ptr.To(0.5), RegionWeight: ptr.To(0.1), DefaultLocalityWait: &metav1.Duration{}},
		},
		{
			name: "DataLocalityArgs keep an explicit zero",
			in:   &DataLocalityArgs{ZoneWeight: ptr.To(0.0)},
			want: &DataLocalityArgs{ZoneWeight: ptr.To(0.0), RegionWeight: ptr.To(0.1), DefaultLocalityWait: &metav1.Duration{}},
		},
		{
			name: "empty BatchQuotaArgs",
			in:   &BatchQuotaArgs{},
			want: &BatchQuotaArgs{DefaultScheduleTimeoutSeconds: ptr.To[int32](60), StatusUpdateInterval: &metav1.Duration{Duration: time.Second}},
		},
	}
	scheme := runtime.NewScheme()
	if err := AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			scheme.Default(tc.in)
			if diff := cmp.Diff(tc.want, tc.in); diff != "" {
				t.Errorf("defaults (-want,+got):\n%s", diff)
			}
		})
	}
}
