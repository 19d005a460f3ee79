package validation

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"locus.dev/locus/apis/config"
)

var argsPath = field.NewPath("profiles").Index(0).Child("pluginConfig").Index(2).Child("args")

func TestValidateComplianceArgs(t *testing.T) {
	good := func() *config.ComplianceArgs {
		return &config.ComplianceArgs{
			CertificationLabelPrefix: "node-restriction.kubernetes.io/compliance.",
			Residency:                map[string][]string{"eu": {"eu-west-1"}},
			ResidencyLabel:           "topology.kubernetes.io/region",
		}
	}
	tests := []struct {
		name   string
		mutate func(*config.ComplianceArgs)
		want   string
	}{
		{name: "valid", mutate: func(*config.ComplianceArgs) {}},
		{name: "empty prefix", mutate: func(a *config.ComplianceArgs) { a.CertificationLabelPrefix = "" },
			want: "profiles[0].pluginConfig[2].args.certificationLabelPrefix: Required value"},
		{name: "prefix with two slashes", mutate: func(a *config.ComplianceArgs) { a.CertificationLabelPrefix = "a.io/b/c." },
			want: `profiles[0].pluginConfig[2].args.certificationLabelPrefix: Invalid value: "a.io/b/c."`},
		{name: "protected residency label", mutate: func(a *config.ComplianceArgs) { a.ResidencyLabel = "node-restriction.kubernetes.io/region" }},
		{name: "empty residency label", mutate: func(a *config.ComplianceArgs) { a.ResidencyLabel = "" },
			want: "profiles[0].pluginConfig[2].args.residencyLabel: Required value"},
		{name: "residency label not a label key", mutate: func(a *config.ComplianceArgs) { a.ResidencyLabel = "region of/the node" },
			want: `profiles[0].pluginConfig[2].args.residencyLabel: Invalid value: "region of/the node": must be a label key`},
		{name: "uppercase group", mutate: func(a *config.ComplianceArgs) { a.Residency["EU"] = []string{"x"} },
			want: `profiles[0].pluginConfig[2].args.residency[EU]: Invalid value: "EU"`},
		{name: "group without regions", mutate: func(a *config.ComplianceArgs) { a.Residency["us"] = nil },
			want: "profiles[0].pluginConfig[2].args.residency[us]: Required value"},
		{name: "empty region", mutate: func(a *config.ComplianceArgs) { a.Residency["eu"] = []string{"eu-west-1", ""} },
			want: "profiles[0].pluginConfig[2].args.residency[eu][1]: Required value"},
		{name: "region not a label value", mutate: func(a *config.ComplianceArgs) { a.Residency["eu"] = []string{"eu west"} },
			want: `profiles[0].pluginConfig[2].args.residency[eu][0]: Invalid value: "eu west"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := good()
			tc.mutate(args)
			checkErr(t, ValidateComplianceArgs(argsPath, args), tc.want)
		})
	}
}

func TestValidateDataLocalityArgs(t *testing.T) {
	tests := []struct {
		name string
		args config.DataLocalityArgs
		want string
	}{
		{name: "defaults", args: config.DataLocalityArgs{ZoneWeight: 0.5, RegionWeight: 0.1}},
		{name: "bounds", args: config.DataLocalityArgs{ZoneWeight: 1, RegionWeight: 0}},
		{name: "zone weight above 1", args: config.DataLocalityArgs{ZoneWeight: 2, RegionWeight: 0.1},
			want: "profiles[0].pluginConfig[2].args.zoneWeight: Invalid value: 2: must be between 0 and 1"},
		{name: "negative region weight", args: config.DataLocalityArgs{ZoneWeight: 0.5, RegionWeight: -0.1},
			want: "profiles[0].pluginConfig[2].args.regionWeight: Invalid value: -0.1: must be between 0 and 1"},
		{name: "region weight above zone weight", args: config.DataLocalityArgs{ZoneWeight: 0.2, RegionWeight: 0.3},
			want: "profiles[0].pluginConfig[2].args.regionWeight: Invalid value: 0.3: must not exceed zoneWeight"},
		{name: "negative wait", args: config.DataLocalityArgs{ZoneWeight: 0.5, RegionWeight: 0.1, DefaultLocalityWait: metav1.Duration{Duration: -time.Second}},
			want: "profiles[0].pluginConfig[2].args.defaultLocalityWait: Invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, ValidateDataLocalityArgs(argsPath, &tc.args), tc.want)
		})
	}
}

func TestValidateBatchQuotaArgs(t *testing.T) {
	tests := []struct {
		name string
		args config.BatchQuotaArgs
		want string
	}{
		{name: "defaults", args: config.BatchQuotaArgs{DefaultScheduleTimeoutSeconds: 60, StatusUpdateInterval: metav1.Duration{Duration: time.Second}}},
		{name: "zero timeout", args: config.BatchQuotaArgs{StatusUpdateInterval: metav1.Duration{Duration: time.Second}},
			want: "profiles[0].pluginConfig[2].args.defaultScheduleTimeoutSeconds: Invalid value: 0: must be greater than 0"},
		{name: "zero interval", args: config.BatchQuotaArgs{DefaultScheduleTimeoutSeconds: 1},
			want: "profiles[0].pluginConfig[2].args.statusUpdateInterval: Invalid value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkErr(t, ValidateBatchQuotaArgs(argsPath, &tc.args), tc.want)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not contain %q", err, want)
	}
}
