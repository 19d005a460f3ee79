package plugins

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/apiserver/pkg/server"
	cliflag "k8s.io/component-base/cli/flag"
	"k8s.io/component-base/cli/globalflag"
	basecompatibility "k8s.io/component-base/compatibility"
	"k8s.io/component-base/featuregate"
	"k8s.io/component-base/logs"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/component-base/term"
	"k8s.io/component-base/version/verflag"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedulerserverconfig "k8s.io/kubernetes/cmd/kube-scheduler/app/config"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	"k8s.io/kubernetes/pkg/scheduler"

	"locus.dev/locus/pkg/leader"
	"locus.dev/locus/pkg/version"
)

// NewSchedulerCommand is kube-scheduler's command (upstream
// app.NewSchedulerCommand, same flags and run sequence) with locus's plugins
// registered. It differs in two places:
//   - before anything starts (and so before the leader lease), the file given
//     with --config is decoded and every locus plugin's args are validated, so
//     a bad value stops the binary with an error that names its field;
//   - the plugins learn when the process starts leading (see Setup), so a
//     standby replica writes nothing to the API server.
func NewSchedulerCommand() *cobra.Command {
	opts := options.NewOptions()

	cmd := &cobra.Command{
		Use: SchedulerName,
		Long: `locus-scheduler is kube-scheduler with locus's plugins: Compliance
(certified and resident placement), DataLocality (placement near the data a
pod reads) and BatchQuota (elastic quota and gang scheduling). Every
kube-scheduler flag works; the profile that uses the plugins is configured
with --config.`,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			// Feature gates are set before RunE.
			return opts.ComponentGlobalsRegistry.Set()
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runCommand(cmd, opts)
		},
		Args: func(cmd *cobra.Command, args []string) error {
			for _, arg := range args {
				if len(arg) > 0 {
					return fmt.Errorf("%q does not take any arguments, got %q", cmd.CommandPath(), args)
				}
			}
			return nil
		},
	}

	nfs := opts.Flags
	verflag.AddFlags(nfs.FlagSet("global"))
	globalflag.AddGlobalFlags(nfs.FlagSet("global"), cmd.Name(), logs.SkipLoggingConfigurationFlags())
	fs := cmd.Flags()
	for _, f := range nfs.FlagSets {
		fs.AddFlagSet(f)
	}

	cols, _, _ := term.TerminalSize(cmd.OutOrStdout())
	cliflag.SetUsageAndHelpFunc(cmd, *nfs, cols)

	if err := cmd.MarkFlagFilename("config", "yaml", "yml", "json"); err != nil {
		klog.Background().Error(err, "Failed to mark flag filename")
	}
	return cmd
}

// runCommand is upstream runCommand with the args validation first and
// setup in place of app.Setup.
func runCommand(cmd *cobra.Command, opts *options.Options) error {
	// --version names the locus release and the Kubernetes release it is
	// built on (kube-scheduler's own would say only "Kubernetes ...");
	// --version=raw keeps upstream's full Kubernetes build information.
	if f := cmd.Flags().Lookup("version"); f != nil && f.Value.String() == "true" {
		fmt.Fprintln(cmd.OutOrStdout(), version.String(SchedulerName))
		os.Exit(0)
	}
	verflag.PrintAndExitIfRequested()
	if err := ValidateConfigFile(opts.ConfigFile); err != nil {
		return err
	}
	fg := opts.ComponentGlobalsRegistry.FeatureGateFor(basecompatibility.DefaultKubeComponent)
	// Activate logging as soon as possible, then show the flags with the
	// final logging configuration.
	if err := logsapi.ValidateAndApply(opts.Logs, fg); err != nil {
		fmt.Fprintf(os.Stderr, "%v\n", err)
		os.Exit(1)
	}
	cliflag.PrintFlags(cmd.Flags())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-server.SetupSignalHandler()
		cancel()
	}()

	cc, sched, err := setup(ctx, opts)
	if err != nil {
		return err
	}
	// Feature enablement and component version metrics, as upstream.
	fg.(featuregate.MutableFeatureGate).AddMetrics()
	opts.ComponentGlobalsRegistry.AddMetrics()

	return app.Run(ctx, cc, sched)
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

// Setup is what the binary does up to app.Run: the args validation, then
// setup.
func Setup(ctx context.Context, opts *options.Options) (*schedulerserverconfig.CompletedConfig, *scheduler.Scheduler, error) {
	if err := ValidateConfigFile(opts.ConfigFile); err != nil {
		return nil, nil, err
	}
	return setup(ctx, opts)
}

// setup is kube-scheduler's app.Setup with locus's plugins, whose leadership
// follows the leader lock. kube-scheduler builds its plugins before it runs
// leader election, so with leader election on the plugins are given a
// leader.Elected that leads once this process takes the lock (watchLock);
// with leader election off they lead from the start.
func setup(ctx context.Context, opts *options.Options) (*schedulerserverconfig.CompletedConfig, *scheduler.Scheduler, error) {
	elected := leader.New()
	cc, sched, err := app.Setup(ctx, opts, AppOptionsFor(elected)...)
	if err != nil {
		return nil, nil, err
	}
	if cc.LeaderElection != nil {
		cc.LeaderElection.Lock = watchLock(cc.LeaderElection.Lock, elected)
	} else {
		elected.Lead()
	}
	return cc, sched, nil
}
