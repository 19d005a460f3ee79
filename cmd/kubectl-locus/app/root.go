// Package app is kubectl-locus, the kubectl plugin that shows and tries
// locus-scheduler's decisions: explain, quota, datasets, simulate. It only
// reads from the cluster: every request that is not a GET is refused before
// it leaves the process.
package app

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"

	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/version"
)

// Options are what every subcommand shares.
type Options struct {
	ConfigFlags *genericclioptions.ConfigFlags
	genericiooptions.IOStreams
}

// NewCommand returns `kubectl locus` with its subcommands. Installed on the
// PATH as kubectl-locus, kubectl runs it for `kubectl locus ...`.
func NewCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &Options{ConfigFlags: genericclioptions.NewConfigFlags(true), IOStreams: streams}
	cmd := &cobra.Command{
		Use:   "kubectl-locus",
		Short: "See and try locus-scheduler's placement decisions",
		Long: `kubectl locus shows why locus-scheduler places pods where it does.

  explain POD        why a pod is pending, or why it landed where it did: node by node, plugin by plugin
  quota              each ElasticQuota's min, max, used, borrowed, and pending pods
  datasets           where each Dataset lives, and how many pods read it
  simulate -f FILE   where these pods would land now, and which would wait and why

It only reads from the cluster. explain and simulate run locus-scheduler's
profile in this process on a copy of the cluster's state.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl locus"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.SetIn(streams.In)
	cmd.SetOut(streams.Out)
	cmd.SetErr(streams.ErrOut)
	o.ConfigFlags.AddFlags(cmd.PersistentFlags())
	// -v for the engine's and client-go's logs.
	klogFlags := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(klogFlags)
	cmd.PersistentFlags().AddGoFlag(klogFlags.Lookup("v"))

	cmd.AddCommand(newExplainCommand(o), newQuotaCommand(o), newDatasetsCommand(o), newSimulateCommand(o), newVersionCommand(o))
	return cmd
}

// Main runs the command on the process's streams and exits with its status.
func Main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := NewCommand(streams)
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", err)
		os.Exit(1)
	}
}

// restConfig is the kubeconfig's rest.Config, made read-only.
func (o *Options) restConfig() (*rest.Config, error) {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return readOnly{rt} })
	return cfg, nil
}

// clients returns the read-only rest.Config and a clientset on it.
func (o *Options) clients() (*rest.Config, kubernetes.Interface, error) {
	cfg, err := o.restConfig()
	if err != nil {
		return nil, nil, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, nil, err
	}
	return cfg, client, nil
}

// namespace is -n, else the kubeconfig context's namespace.
func (o *Options) namespace() (string, error) {
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// readOnly refuses every request that could change the cluster.
type readOnly struct{ next http.RoundTripper }

func (r readOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		return nil, fmt.Errorf("kubectl-locus is read-only: refused %s %s", req.Method, req.URL.Path)
	}
	return r.next.RoundTrip(req)
}

// profileFlags choose the KubeSchedulerConfiguration for explain and simulate.
type profileFlags struct {
	file    string
	profile string
}

func (p *profileFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&p.file, "scheduler-config", "",
		"KubeSchedulerConfiguration file to use instead of the cluster's (ConfigMap kube-system/"+explain.ConfigMapName+")")
	cmd.Flags().StringVar(&p.profile, "profile", plugins.SchedulerName, "scheduler profile (schedulerName) to evaluate with")
}

// load returns the profile and where its configuration came from.
func (p *profileFlags) load(ctx context.Context, client kubernetes.Interface) (*schedconfig.KubeSchedulerProfile, string, error) {
	var data []byte
	var source string
	if p.file != "" {
		var err error
		if data, err = os.ReadFile(p.file); err != nil {
			return nil, "", err
		}
		source = p.file
	} else {
		var err error
		if data, source, err = explain.ClusterConfig(ctx, client); err != nil {
			return nil, "", err
		}
	}
	cfg, err := explain.DecodeConfig(data)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	prof, err := explain.Profile(cfg, p.profile)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", source, err)
	}
	return prof, source, nil
}

// loadState reads the cluster's state for the engine and reports what it
// could not read.
func (o *Options) loadState(ctx context.Context, cfg *rest.Config) (*explain.State, error) {
	s, err := explain.Load(ctx, cfg)
	if err != nil {
		return nil, err
	}
	for _, w := range s.Warnings {
		fmt.Fprintln(o.ErrOut, "warning:", w)
	}
	return s, nil
}

// newVersionCommand prints the locus release and the Kubernetes release
// that kubectl-locus is built on.
func newVersionCommand(o *Options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the locus and Kubernetes versions kubectl-locus is built on",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintln(o.Out, version.String("kubectl-locus"))
			return err
		},
	}
}
