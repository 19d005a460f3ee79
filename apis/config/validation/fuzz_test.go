package validation

import (
	"math"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"locus.dev/locus/apis/config"
)

// FuzzValidateArgs: args of any values are accepted or refused with an
// error that names the field, and never panic. Accepted weights are within
// [0, 1], accepted durations and timeouts are not negative. The seeds run
// with every `go test`; make fuzz explores further.
func FuzzValidateArgs(f *testing.F) {
	f.Add(0.5, 0.1, int64(0), int32(60), int64(time.Second), "node-restriction.kubernetes.io/compliance.", "eu", "eu-west-1", "topology.kubernetes.io/region")
	f.Add(math.NaN(), math.Inf(1), int64(-1), int32(-5), int64(0), "bad prefix", "Europe", "", "")
	f.Add(2.0, -1.0, int64(math.MaxInt64), int32(math.MaxInt32), int64(-1), "", "", "x", "a/b/c")
	f.Fuzz(func(t *testing.T, zone, region float64, wait int64, timeout int32, interval int64, prefix, group, r, label string) {
		path := field.NewPath("args")
		dl := &config.DataLocalityArgs{ZoneWeight: zone, RegionWeight: region, DefaultLocalityWait: metav1.Duration{Duration: time.Duration(wait)}}
		if err := ValidateDataLocalityArgs(path, dl); err != nil {
			mustName(t, err)
		} else if !(zone >= 0 && zone <= 1 && region >= 0 && region <= 1) || wait < 0 {
			t.Fatalf("accepted %+v", dl)
		}
		bq := &config.BatchQuotaArgs{DefaultScheduleTimeoutSeconds: timeout, StatusUpdateInterval: metav1.Duration{Duration: time.Duration(interval)}}
		if err := ValidateBatchQuotaArgs(path, bq); err != nil {
			mustName(t, err)
		} else if timeout < 0 || interval < 0 {
			t.Fatalf("accepted %+v", bq)
		}
		c := &config.ComplianceArgs{CertificationLabelPrefix: prefix, Residency: map[string][]string{group: {r}}, ResidencyLabel: label}
		if err := ValidateComplianceArgs(path, c); err != nil {
			mustName(t, err)
		}
	})
}

func mustName(t *testing.T, err error) {
	t.Helper()
	if !strings.Contains(err.Error(), "args.") {
		t.Fatalf("error %q does not name the field", err)
	}
}
