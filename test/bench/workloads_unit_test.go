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

// In every pair of rounds each arm runs once in each round, and its two
// positions add up to the same as every other arm's; the first arm changes
// from pair to pair.
func TestRoundOrderBalancesPositions(t *testing.T) {
	for n := 1; n <= 6; n++ {
		arms := make([]arm, n)
		for i := range arms {
			arms[i] = arm{short: string(rune('a' + i))}
		}
		firsts := map[string]bool{}
		for pair := 0; pair < n; pair++ {
			sum := map[string]int{}
			for r := 2 * pair; r <= 2*pair+1; r++ {
				order := roundOrder(arms, r)
				if len(order) != n {
					t.Fatalf("%d arms, round %d: %d in the order", n, r, len(order))
				}
				for pos, a := range order {
					sum[a.short] += pos
				}
			}
			if len(sum) != n {
				t.Fatalf("%d arms, rounds %d-%d: arms missing or repeated: %v", n, 2*pair, 2*pair+1, sum)
			}
			for a, s := range sum {
				if s != n-1 {
					t.Errorf("%d arms, rounds %d-%d: arm %s at positions adding to %d, want %d", n, 2*pair, 2*pair+1, a, s, n-1)
				}
			}
			firsts[roundOrder(arms, 2*pair)[0].short] = true
		}
		if len(firsts) != n {
			t.Errorf("%d arms: only %d different arms run first over %d pairs of rounds", n, len(firsts), n)
		}
	}
}
