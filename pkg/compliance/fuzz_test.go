package compliance

import (
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// FuzzParseRequirements: any annotation values on a pod and its namespace
// either parse into lowercase standards, or fail with an error that names a
// value given; and a node label value of any form reads as a certification
// state without panicking. The seeds run with every `go test`.
func FuzzParseRequirements(f *testing.F) {
	for _, seed := range [][4]string{
		{"pci-dss", "", "", "true"},
		{"pci-dss,soc2", "hipaa", "eu", "2026-12-31"},
		{"PCI-DSS", "", "", "2026-13-45"},
		{" , ,", "pci-dss", "moon", "yes"},
		{strings.Repeat("a", 300), "", "", ""},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	residency := map[string][]string{"eu": {"eu-west-1"}, "us": {"us-east-1"}}
	f.Fuzz(func(t *testing.T, podStd, nsStd, group, labelValue string) {
		pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", Annotations: map[string]string{
			locusv1alpha1.AnnotationCompliance: podStd, locusv1alpha1.AnnotationDataResidency: group}}}
		ns := &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ns", Annotations: map[string]string{locusv1alpha1.AnnotationCompliance: nsStd}}}
		req, err := ParseRequirements(pod, ns, residency)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		for _, std := range req.Standards {
			if std != strings.ToLower(std) || std == "" {
				t.Fatalf("standard %q accepted", std)
			}
			state, _ := Certification(map[string]string{"p/" + std: labelValue}, "p/", std, time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC))
			if state < CertMissing || state > CertInvalid {
				t.Fatalf("state %d", state)
			}
		}
	})
}
