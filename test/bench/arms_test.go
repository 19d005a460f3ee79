package bench

import (
	"k8s.io/client-go/rest"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// profile is a scheduler that an arm starts: a KubeSchedulerConfiguration
// with one profile, and the out-of-tree plugins it needs.
type profile struct {
	schedulerName string
	config        []byte
	registry      frameworkruntime.Registry
	// kubeConfig is what plugins get from handle.KubeConfig().
	kubeConfig func(*cluster) *rest.Config
}

var (
	defaultProfile = &profile{
		schedulerName: "default-scheduler",
		config:        []byte(testenv.DefaultSchedulerConfig),
		registry:      frameworkruntime.Registry{},
		kubeConfig:    func(c *cluster) *rest.Config { return c.cp.Config },
	}
	// locusProfile is exactly what the deployment ships.
	locusProfile = &profile{
		schedulerName: plugins.SchedulerName,
		config:        manifests.SchedulerConfig,
		registry:      plugins.Registry(),
		kubeConfig:    func(c *cluster) *rest.Config { return c.cp.Config },
	}
	// peerProfile is scheduler-plugins' Coscheduling plus
	// CapacityScheduling. It is set by peer_test.go, which builds only with
	// the bench_peer tag and the module file that run.sh writes: this
	// module's go.sum lacks what those plugins import.
	peerProfile *profile
)

// arm is a scheduler profile on a workload; the benchmark measures each arm
// once per round.
type arm struct {
	// short names the arm in run and namespace names, and in LOCUS_BENCH_ARMS.
	short    string
	profile  *profile
	workload workload
}

func (a arm) name() string { return a.short + " (" + a.workload.name + ")" }

func allArms() []arm {
	arms := []arm{
		{short: "default", profile: defaultProfile, workload: plainWorkload},
		{short: "locus", profile: locusProfile, workload: plainWorkload},
		{short: "locus-features", profile: locusProfile, workload: featuresWorkload},
		{short: "default-affinity", profile: defaultProfile, workload: affinityWorkload},
		{short: "locus-gang", profile: locusProfile, workload: gangWorkload},
	}
	if peerProfile != nil {
		arms = append(arms, arm{short: "peer-gang", profile: peerProfile, workload: gangWorkload})
	}
	return arms
}

// comparison is a ratio of two arms' median pods per second, with the
// target set for it at 5,000 nodes and, where it differs, at 15,000
// (docs/benchmarks.md, Targets).
type comparison struct {
	name        string
	numerator   string
	denominator string
	target      float64
	// targetLarge is the target at largeNodes and above; 0: the same.
	targetLarge float64
}

var comparisons = []comparison{
	{name: "plain pods: locus / default", numerator: "locus", denominator: "default", target: 0.95},
	{name: "compliance+locality pods under locus / plain pods under default", numerator: "locus-features", denominator: "default", target: 0.90, targetLarge: 0.85},
	{name: "compliance+locality: locus / the same rules as nodeAffinity under default", numerator: "locus-features", denominator: "default-affinity", target: 1.0, targetLarge: 0.85},
	{name: "gang+quota pods under locus / plain pods under default", numerator: "locus-gang", denominator: "default", target: 0.8},
	{name: "gang+quota: locus / scheduler-plugins", numerator: "locus-gang", denominator: "peer-gang", target: 3.0},
}

// largeNodes is the cluster size of the second set of targets.
const largeNodes = 15000

// targetAt is the comparison's target for a cluster of n nodes.
func (c comparison) targetAt(n int) float64 {
	if n >= largeNodes && c.targetLarge > 0 {
		return c.targetLarge
	}
	return c.target
}

// specNodes is the cluster size at which the targets are set (README,
// Performance).
const specNodes = 5000

// roundOrder orders the arms of round r. Rounds come in mirrored pairs:
// round 2k runs the list rotated by k, round 2k+1 the same order reversed.
// The process slows down as a run goes on (the API server's watch caches
// and etcd's history grow until they level off), so an arm that always ran
// early would gain; within each pair every arm's two positions add up to
// the same, so a steady drift weighs on every arm alike, and the rotation
// changes who runs first from pair to pair.
func roundOrder(arms []arm, r int) []arm {
	n := len(arms)
	out := make([]arm, n)
	for i := range arms {
		out[i] = arms[(i+r/2)%n]
	}
	if r%2 == 1 {
		for i, j := 0, n-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out
}
