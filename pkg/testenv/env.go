package testenv

import (
	"context"

	"k8s.io/client-go/dynamic"

	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
)

// Env is a control plane with two schedulers beside each other, as in a real
// cluster: kube-scheduler with its default profile, and locus-scheduler with
// the profile that the deployment ships.
type Env struct {
	*ControlPlane
	Dynamic dynamic.Interface
	Default *Scheduler
	Locus   *Scheduler
}

// Start brings up the control plane with locus's CRDs installed, and both
// schedulers. locusConfig is a
// KubeSchedulerConfiguration; nil means manifests/base/scheduler-config.yaml.
func Start(ctx context.Context, t TB, locusConfig []byte) *Env {
	t.Helper()
	cp := StartControlPlane(t, Options{})
	if err := InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	env := &Env{ControlPlane: cp}
	var err error
	if env.Dynamic, err = dynamic.NewForConfig(cp.Config); err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	if locusConfig == nil {
		locusConfig = manifests.SchedulerConfig
	}
	env.Default = env.StartScheduler(ctx, t, []byte(DefaultSchedulerConfig))
	env.Locus = env.StartScheduler(ctx, t, locusConfig)
	return env
}

// StartScheduler starts one more scheduler on the control plane; it stops at
// t's cleanup.
func (e *Env) StartScheduler(ctx context.Context, t TB, config []byte) *Scheduler {
	t.Helper()
	cfg, err := LoadConfig(config)
	if err != nil {
		t.Fatalf("scheduler config: %v", err)
	}
	s, err := StartSchedulerWithKubeConfig(ctx, cfg, e.Config, e.Client, e.Dynamic, plugins.Registry())
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
