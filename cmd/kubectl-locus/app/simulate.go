package app

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"

	"locus.dev/locus/pkg/explain"
)

type simulateOptions struct {
	*Options
	profile profileFlags
	file    string
	details bool
	wide    bool
}

func newSimulateCommand(o *Options) *cobra.Command {
	so := &simulateOptions{Options: o}
	var output string
	cmd := &cobra.Command{
		Use:   "simulate -f FILE",
		Short: "Where these pods would land now, and which would wait and why, without creating them",
		Long: `Schedules the pods of the file in this process, with locus-scheduler's profile,
on a copy of the cluster's state: one by one in the order of locus-scheduler's
queue (priority, gangs together, fair share between quotas, age), each placed
pod taking its node's resources and its quota for the pods after it. A gang's
members are placed together once minMember of them fit. Nothing is created and
nothing is preempted.

Deployments, ReplicaSets, StatefulSets, Jobs and CronJobs stand for the pods
they would create now (replicas; a Job's parallel pods). The file may also hold
Namespaces, Nodes, ElasticQuotas, PodGroups and Datasets: they are layered over
the cluster's (an ElasticQuota replaces its namespace's). Other kinds are
skipped. Objects without a namespace go to -n, else the context's namespace.`,
		Example: `  kubectl locus simulate -f nightly-gang.yaml
  kubectl locus simulate -f payments.yaml --details     # every pod's node table
  cat pods.yaml | kubectl locus simulate -f -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch output {
			case "":
			case "wide":
				so.wide = true
			default:
				return fmt.Errorf("--output: want wide, got %q", output)
			}
			if so.file == "" {
				return fmt.Errorf("-f is required: a file of pod manifests, or - for stdin")
			}
			return so.run(cmd.Context())
		},
	}
	so.profile.add(cmd)
	cmd.Flags().StringVarP(&so.file, "filename", "f", "", "manifests to simulate (YAML or JSON; - for stdin)")
	cmd.Flags().BoolVar(&so.details, "details", false, "print each pod's node table")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide shows every score plugin in the node tables")
	return cmd
}

func (o *simulateOptions) run(ctx context.Context) error {
	objs, err := o.readFile()
	if err != nil {
		return err
	}
	cfg, client, err := o.clients()
	if err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	prof, source, err := o.profile.load(ctx, client)
	if err != nil {
		return err
	}
	state, err := o.loadState(ctx, cfg)
	if err != nil {
		return err
	}
	pods, err := layer(state, objs, ns, o.ErrOut)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		return fmt.Errorf("%s holds no pods or workloads to simulate", o.file)
	}
	for _, p := range pods {
		if p.Spec.SchedulerName != prof.SchedulerName {
			fmt.Fprintf(o.ErrOut, "note: pod %s/%s has schedulerName %q; simulating it with profile %q\n",
				p.Namespace, p.Name, p.Spec.SchedulerName, prof.SchedulerName)
		}
	}

	engine, err := explain.New(ctx, prof, state)
	if err != nil {
		return err
	}
	defer engine.Close()
	outcomes, err := engine.Simulate(ctx, pods)
	if err != nil {
		return err
	}
	return writeSimulation(o.Out, outcomes, simulationOptions{Source: source, Profile: prof.SchedulerName, Nodes: len(state.Nodes), Details: o.details, Wide: o.wide})
}

func (o *simulateOptions) readFile() ([]runtime.Object, error) {
	var r io.Reader = o.In
	if o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	objs, err := explain.DecodeManifests(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.file, err)
	}
	return objs, nil
}

// layer puts the file's objects over the cluster's state and returns the
// pods to simulate, prepared as the API server would store them: the file's
// pods, and the pods that its workloads (Deployments, StatefulSets, Jobs,
// ...) would create. Kinds that scheduling does not read are skipped, with
// a note.
func layer(state *explain.State, objs []runtime.Object, defaultNamespace string, notes io.Writer) ([]*v1.Pod, error) {
	var pods []*v1.Pod
	// Everything else first: a pod's priority class or namespace may come
	// from the file too.
	for _, obj := range objs {
		if m, err := meta.Accessor(obj); err == nil && m.GetNamespace() == "" && namespaced(obj) {
			m.SetNamespace(defaultNamespace)
		}
		if pod, isPod := obj.(*v1.Pod); isPod {
			pods = append(pods, pod)
			continue
		}
		if wp, ok := explain.WorkloadPods(obj); ok {
			pods = append(pods, wp...)
			continue
		}
		if err := state.Apply(obj); err != nil {
			fmt.Fprintf(notes, "note: skipping %s: simulate reads Pods, workloads, Namespaces, Nodes, ElasticQuotas, PodGroups and Datasets\n", describe(obj))
		}
	}
	for _, pod := range pods {
		if err := state.PreparePod(pod, defaultNamespace); err != nil {
			return nil, err
		}
		if err := state.Apply(pod); err != nil {
			return nil, err
		}
	}
	return pods, nil
}

// describe names an object as "Kind namespace/name".
func describe(obj runtime.Object) string {
	kind := obj.GetObjectKind().GroupVersionKind().Kind
	if m, err := meta.Accessor(obj); err == nil {
		if m.GetNamespace() != "" {
			return kind + " " + m.GetNamespace() + "/" + m.GetName()
		}
		return kind + " " + m.GetName()
	}
	return kind
}

func namespaced(obj runtime.Object) bool {
	switch obj.(type) {
	case *v1.Namespace, *v1.Node:
		return false
	}
	return true
}

type simulationOptions struct {
	Source, Profile string
	Nodes           int
	Details, Wide   bool
}

func writeSimulation(w io.Writer, outcomes []explain.Outcome, o simulationOptions) error {
	fmt.Fprintf(w, "Simulated %s in queue order with profile %s (from %s) on %s; nothing was created.\n\n",
		plural(len(outcomes), "pod"), o.Profile, o.Source, plural(o.Nodes, "node"))
	if err := explain.WriteOutcomes(w, outcomes); err != nil {
		return err
	}
	counts := map[explain.Verdict]int{}
	for _, out := range outcomes {
		counts[out.Verdict]++
	}
	fmt.Fprintf(w, "\n%d placed, %d would wait", counts[explain.Placed], counts[explain.Waits])
	if n := counts[explain.HeldForGang]; n > 0 {
		fmt.Fprintf(w, ", %d held for their gang", n)
	}
	fmt.Fprintln(w, ".")
	if !o.Details {
		return nil
	}
	for i, out := range outcomes {
		fmt.Fprintf(w, "\n%d. %s/%s: %s", i+1, out.Pod.Namespace, out.Pod.Name, out.Verdict)
		if out.Node != "" {
			fmt.Fprintf(w, " on %s", out.Node)
		}
		fmt.Fprintln(w)
		ev := out.Evaluation
		if ev == nil || ev.Gate != nil {
			continue
		}
		if err := explain.WriteNodeTable(w, ev, explain.TableOptions{Wide: o.Wide}); err != nil {
			return err
		}
	}
	return nil
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
