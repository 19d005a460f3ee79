package bench

import (
	"slices"
	"testing"

	"locus.dev/locus/apis/config"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/testenv"
)

// The hand-written arm must state the same residency as the shipped
// configuration, or the two compliance arms would not compare like for like.
func TestHandWrittenResidencyMatchesTheShippedConfig(t *testing.T) {
	cfg, err := testenv.LoadConfig(manifests.SchedulerConfig)
	if err != nil {
		t.Fatal(err)
	}
	for _, pc := range cfg.Profiles[0].PluginConfig {
		if args, ok := pc.Args.(*config.ComplianceArgs); ok {
			if got := args.Residency[residencyGroup]; !slices.Equal(got, residencyRegions) {
				t.Fatalf("residency %q is %v in the shipped config, %v in the hand-written arm", residencyGroup, got, residencyRegions)
			}
			if got := args.CertificationLabelPrefix + standard; got != certificationLabel {
				t.Fatalf("certification label %q in the config, %q in the hand-written arm", got, certificationLabel)
			}
			return
		}
	}
	t.Fatal("no Compliance args in the shipped config")
}
