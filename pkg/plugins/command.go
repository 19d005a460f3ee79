package plugins

import (
	"context"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedulerserverconfig "k8s.io/kubernetes/cmd/kube-scheduler/app/config"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler"
)

// NewSchedulerCommand is kube-scheduler's command with locus's plugins
// registered. Before the upstream command runs (and so before it takes the
// leader lease), the file given with --config is decoded and every locus
// plugin's args are validated, so a bad value stops the binary with an error
// that names its field.
func NewSchedulerCommand() *cobra.Command {
	cmd := app.NewSchedulerCommand(AppOptions()...)
	cmd.Use = SchedulerName
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if err := ValidateConfigFile(c.Flags().Lookup("config").Value.String()); err != nil {
			return err
		}
		return run(c, args)
	}
	return cmd
}

// ValidateConfigFile decodes a KubeSchedulerConfiguration file and validates
// locus's plugin args in it. An empty path is valid (upstream defaults apply).
func ValidateConfigFile(path string) error {
	if path == "" {
		return nil
	}
	cfg, err := options.LoadConfigFromFile(klog.Background(), path)
	if err != nil {
		return err
	}
	return ValidateConfig(cfg)
}

// Setup is kube-scheduler's app.Setup with locus's plugins, preceded by the
// same args validation as the command: what the binary does up to Run.
func Setup(ctx context.Context, opts *options.Options) (*schedulerserverconfig.CompletedConfig, *scheduler.Scheduler, error) {
	if err := ValidateConfigFile(opts.ConfigFile); err != nil {
		return nil, nil, err
	}
	return app.Setup(ctx, opts, AppOptions()...)
}
