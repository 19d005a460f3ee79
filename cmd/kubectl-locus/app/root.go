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
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"

	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/explain/report"
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
  completion SHELL   the shell completion script (bash, zsh, fish, powershell)

It only reads from the cluster. explain and simulate run locus-scheduler's
profile in this process on a copy of the cluster's state. Every command
prints -o json or -o yaml: a locus.dev/v1alpha1 object, documented in
docs/kubectl-locus.md.`,
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

	_ = cmd.RegisterFlagCompletionFunc("namespace", o.completeNamespaces)
	_ = cmd.RegisterFlagCompletionFunc("context", o.completeContexts)

	cmd.AddCommand(newExplainCommand(o), newQuotaCommand(o), newDatasetsCommand(o), newSimulateCommand(o), newVersionCommand(o))
	return cmd
}

// completeProgram is the name under which kubectl (1.26 and later) runs a
// plugin's completion: `kubectl_complete-locus __complete ARGS`. A link of
// that name to kubectl-locus on the PATH completes `kubectl locus ...`.
const completeProgram = "kubectl_complete-locus"

// programArgs are the command's arguments: run as kubectl_complete-locus,
// kubectl's completion helper, it answers cobra's __complete request for
// the words after `kubectl locus`.
func programArgs(program string, args []string) []string {
	if strings.TrimSuffix(filepath.Base(program), ".exe") == completeProgram {
		return append([]string{cobra.ShellCompRequestCmd}, args...)
	}
	return args
}

// Main runs the command on the process's streams and exits with its status:
// 0, 1 on an error, 2 when simulate --fail-on-pending finds pods that would
// stay pending.
func Main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := NewCommand(streams)
	cmd.SetArgs(programArgs(os.Args[0], os.Args[1:]))
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(streams.ErrOut, "error:", err)
		os.Exit(ExitCode(err))
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
// could not read. namespaces are where the command's pods live: what may
// not be listed in all namespaces is listed there.
func (o *Options) loadState(ctx context.Context, cfg *rest.Config, namespaces ...string) (*explain.State, error) {
	s, err := explain.LoadWith(ctx, cfg, explain.LoadOptions{Namespaces: namespaces})
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
	out := newOutputFlags(false)
	cmd := &cobra.Command{
		Use:               "version",
		Short:             "Print the locus and Kubernetes versions kubectl-locus is built on",
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(*cobra.Command, []string) error {
			p, err := out.printer()
			if err != nil {
				return err
			}
			if p == nil {
				_, err := fmt.Fprintln(o.Out, version.String("kubectl-locus"))
				return err
			}
			v := report.NewVersion()
			v.Locus, v.Kubernetes = version.Locus(), version.Kubernetes()
			return p.PrintObj(v, o.Out)
		},
	}
	out.addFlags(cmd)
	return cmd
}

// completeNamespaces completes -n with the cluster's namespaces, when the
// user may list them.
func (o *Options) completeNamespaces(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	_, client, err := o.clients()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := client.CoreV1().Namespaces().List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, ns := range list.Items {
		if strings.HasPrefix(ns.Name, toComplete) {
			names = append(names, ns.Name)
		}
	}
	return names, cobra.ShellCompDirectiveNoFileComp
}

// completeContexts completes --context with the kubeconfig's contexts.
func (o *Options) completeContexts(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	cfg, err := o.ConfigFlags.ToRawKubeConfigLoader().RawConfig()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for name := range cfg.Contexts {
		if strings.HasPrefix(name, toComplete) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}
