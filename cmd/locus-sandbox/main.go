// Command locus-sandbox runs a whole control plane in one process (embedded
// etcd, kube-apiserver, the default kube-scheduler and locus-scheduler, with
// simulated nodes), loads a scenario of ordinary Kubernetes manifests, and
// prints where every pod landed and why. With --keep-running it stays up and
// writes a kubeconfig for kubectl.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/klog/v2"

	"locus.dev/locus/pkg/sandbox"
	"locus.dev/locus/pkg/testenv"
)

func main() {
	os.Exit(run())
}

func run() int {
	scenario := flag.String("scenario", "", "manifests to load: Nodes, Namespaces, Pods, Jobs, ... (multi-document YAML)")
	schedConfig := flag.String("scheduler-config", "", "KubeSchedulerConfiguration for locus-scheduler (default: manifests/base/scheduler-config.yaml, built in)")
	keep := flag.Bool("keep-running", false, "stay up after the report, for kubectl, until interrupted")
	kubeconfig := flag.String("kubeconfig", "", "where to write a kubeconfig for the sandbox (default: <temp dir>/kubeconfig)")
	logFile := flag.String("log-file", "", "where component logs go (default: <temp dir>/sandbox.log)")
	timeout := flag.Duration("timeout", 60*time.Second, "how long to wait for pods to be placed")
	klogFlags := flag.NewFlagSet("klog", flag.ExitOnError)
	klog.InitFlags(klogFlags)
	flag.Parse()

	if *scenario == "" {
		fmt.Fprintln(os.Stderr, "locus-sandbox: --scenario is required")
		flag.Usage()
		return 2
	}
	data, err := os.ReadFile(*scenario)
	if err != nil {
		fmt.Fprintf(os.Stderr, "locus-sandbox: %v\n", err)
		return 1
	}
	objs, err := sandbox.Decode(data)
	if err != nil {
		fmt.Fprintf(os.Stderr, "locus-sandbox: %s: %v\n", *scenario, err)
		return 1
	}
	var locusConfig []byte
	if *schedConfig != "" {
		if locusConfig, err = os.ReadFile(*schedConfig); err != nil {
			fmt.Fprintf(os.Stderr, "locus-sandbox: %v\n", err)
			return 1
		}
	}

	p := testenv.NewProcess("locus-sandbox")
	defer p.Close()
	dir := p.TempDir()
	if *logFile == "" {
		*logFile = filepath.Join(dir, "sandbox.log")
	}
	_ = klogFlags.Set("logtostderr", "false")
	_ = klogFlags.Set("alsologtostderr", "false")
	_ = klogFlags.Set("stderrthreshold", "FATAL")
	_ = klogFlags.Set("log_file", *logFile)
	klog.LogToStderr(false)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	start := time.Now()
	fmt.Printf("locus-sandbox: starting etcd, kube-apiserver, kube-controller-manager, kube-scheduler and locus-scheduler (logs: %s)\n", *logFile)
	env := testenv.Start(ctx, p, locusConfig)
	env.StartControllerManager(ctx, p) // Jobs, CronJobs, Deployments create their pods
	// No kubelets: pods deleted gracefully (reclaim and preemption victims)
	// would stay Terminating forever; finish their deletion as a kubelet would.
	if err := testenv.StartPodReaper(ctx, env.Client); err != nil {
		fmt.Fprintf(os.Stderr, "locus-sandbox: %v\n", err)
		return 1
	}
	fmt.Printf("locus-sandbox: control plane up in %v; loading %s (%d objects)\n", time.Since(start).Round(100*time.Millisecond), *scenario, len(objs))
	if err := sandbox.Apply(ctx, env.Client, env.Dynamic, objs); err != nil {
		fmt.Fprintf(os.Stderr, "locus-sandbox: %v\n", err)
		return 1
	}
	placements, err := sandbox.WaitAndReport(ctx, env.Client, env.Dynamic, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "locus-sandbox: %v\n", err)
		return 1
	}
	fmt.Println()
	sandbox.Print(os.Stdout, placements)
	klog.Flush()

	if *keep {
		if *kubeconfig == "" {
			*kubeconfig = filepath.Join(dir, "kubeconfig")
		}
		if err := testenv.WriteKubeconfig(env.Config, *kubeconfig); err != nil {
			fmt.Fprintf(os.Stderr, "locus-sandbox: %v\n", err)
			return 1
		}
		fmt.Printf("\nlocus-sandbox: running; try  kubectl --kubeconfig %s get pods -A -o wide   (Ctrl-C to stop)\n", *kubeconfig)
		<-ctx.Done()
	}
	return 0
}
