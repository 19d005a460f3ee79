package app

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/cli-runtime/pkg/resource"

	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/explain/report"
)

type simulateOptions struct {
	*Options
	profile       profileFlags
	files         genericclioptions.FileNameFlags
	details       bool
	failOnPending bool
	out           *outputFlags
}

func newSimulateCommand(o *Options) *cobra.Command { return newSimulateOptions(o).command() }

func newSimulateOptions(o *Options) *simulateOptions {
	return &simulateOptions{Options: o, out: newOutputFlags(true), files: genericclioptions.FileNameFlags{
		Usage:     "files or directories of manifests to simulate (YAML or JSON; - for stdin); may be repeated",
		Filenames: &[]string{},
		Kustomize: new(string),
		Recursive: new(bool),
	}}
}

func (so *simulateOptions) command() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "simulate (-f FILENAME | -k DIRECTORY)",
		Short: "Where these pods would land now, and which would wait and why, without creating them",
		Long: `Schedules the pods of the manifests in this process, with locus-scheduler's
profile, on a copy of the cluster's state: one by one in the order of
locus-scheduler's queue (priority, gangs together, fair share between quotas,
age), each placed pod taking its node's resources and its quota for the pods
after it. A gang's members are placed together once minMember of them fit.
Nothing is created and nothing is preempted.

The manifests are read as kubectl apply reads them: -f takes files,
directories (their .json, .yaml and .yml files; -R for subdirectories) and -
for stdin, and may be repeated; -k builds a kustomization directory.

Deployments, ReplicaSets, StatefulSets, Jobs and CronJobs stand for the pods
they would create now (replicas; a Job's parallel pods). The manifests may
also hold Namespaces, Nodes, ElasticQuotas, PodGroups and Datasets: they are
layered over the cluster's (an ElasticQuota replaces its namespace's). Other
kinds are skipped. Objects without a namespace go to -n, else the context's
namespace.

-o json and -o yaml print a locus.dev/v1alpha1 Simulation
(docs/kubectl-locus.md). With --fail-on-pending, simulate exits with status 2
when any pod would not be placed (it waits, or is held for a gang that does
not form), after printing its output; errors exit with status 1.`,
		Example: `  kubectl locus simulate -f nightly-gang.yaml
  kubectl locus simulate -f deploy/ -R --details      # every pod's node table
  kubectl locus simulate -k overlays/prod -o yaml
  cat pods.yaml | kubectl locus simulate -f -
  # In CI: fail the job when a pod would stay pending.
  kubectl locus simulate -f deploy/ -R --fail-on-pending
  kubectl locus simulate -f deploy/ -R -o json | jq -e '.summary.unschedulable == 0'`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := so.out.printer()
			if err != nil {
				return err
			}
			if len(*so.files.Filenames) == 0 && *so.files.Kustomize == "" {
				return fmt.Errorf("-f or -k is required: files or directories of manifests, - for stdin, or a kustomization directory")
			}
			return so.run(cmd.Context(), p)
		},
	}
	so.profile.add(cmd)
	so.files.AddFlags(cmd.Flags())
	_ = cmd.MarkFlagDirname("kustomize")
	cmd.Flags().BoolVar(&so.details, "details", false, "print each pod's node table (with -o json|yaml: each result's nodes)")
	cmd.Flags().BoolVar(&so.failOnPending, "fail-on-pending", false,
		"exit with status 2 when any pod would not be placed (errors exit with 1)")
	so.out.addFlags(cmd)
	return cmd
}

func (o *simulateOptions) run(ctx context.Context, printer printers.ResourcePrinter) error {
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	objs, err := o.readManifests()
	if err != nil {
		return err
	}
	cfg, client, err := o.clients()
	if err != nil {
		return err
	}
	prof, source, err := o.profile.load(ctx, client)
	if err != nil {
		return err
	}
	state, err := o.loadState(ctx, cfg, manifestNamespaces(objs, ns)...)
	if err != nil {
		return err
	}
	pods, skipped, err := layer(state, objs, ns, o.ErrOut)
	if err != nil {
		return err
	}
	if len(pods) == 0 {
		return fmt.Errorf("%s: no pods or workloads to simulate", o.sources())
	}
	if u := state.NodesUnavailable(); u != nil && len(state.Nodes) == 0 {
		return fmt.Errorf("%s: simulate places pods on nodes; ask for read access to nodes, or put Nodes in the manifests", explain.UnavailableMessage(*u))
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
	opts := simulationOptions{
		Source: source, Profile: prof.SchedulerName, Nodes: len(state.Nodes), Details: o.details, Wide: o.out.isWide(),
		Now: time.Now(), Skipped: skipped, Unavailable: state.Unavailable,
	}
	sim := simulationReport(outcomes, opts)
	if printer != nil {
		err = printer.PrintObj(sim, o.Out)
	} else {
		err = writeSimulation(o.Out, outcomes, opts)
	}
	if err != nil {
		return err
	}
	if o.failOnPending && sim.Summary.Unschedulable > 0 {
		return &exitError{code: 2, err: fmt.Errorf("%d of %s would not be placed (--fail-on-pending)",
			sim.Summary.Unschedulable, plural(sim.Summary.Pods, "pod"))}
	}
	return nil
}

// sources names -f and -k for messages.
func (o *simulateOptions) sources() string {
	if *o.files.Kustomize != "" {
		return *o.files.Kustomize
	}
	return strings.Join(*o.files.Filenames, ", ")
}

// manifest is an object of the manifests, and the file it came from.
type manifest struct {
	obj    runtime.Object
	source string
}

// readManifests reads -f and -k with cli-runtime's resource builder, as
// kubectl apply does, without a server: files, directories (-R: their
// subdirectories), stdin, kustomizations; Lists are flattened. The objects
// are then decoded strictly into their types; kinds that no type of
// simulate's knows are skipped, with a note.
func (o *simulateOptions) readManifests() ([]manifest, error) {
	opts := o.files.ToOptions()
	stdin := false
	files := opts.Filenames[:0:0]
	for _, f := range opts.Filenames {
		if f == "-" {
			stdin = true
			continue
		}
		files = append(files, f)
	}
	opts.Filenames = files
	b := resource.NewLocalBuilder().Unstructured().FilenameParam(false, &opts).Flatten()
	if stdin {
		// From the command's input stream rather than os.Stdin.
		b = b.Stream(o.In, "STDIN")
	}
	infos, err := b.Do().Infos()
	if err != nil {
		return nil, err
	}
	var out []manifest
	for _, info := range infos {
		u, ok := info.Object.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("%s: unexpected %T", info.Source, info.Object)
		}
		obj, err := explain.DecodeObject(u)
		if runtime.IsNotRegisteredError(err) {
			fmt.Fprintf(o.ErrOut, "note: skipping %s %s from %s: simulate reads Pods, workloads, Namespaces, Nodes, ElasticQuotas, PodGroups and Datasets\n",
				u.GetKind(), qualifiedName(u.GetNamespace(), u.GetName()), info.Source)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", info.Source, err)
		}
		out = append(out, manifest{obj: obj, source: info.Source})
	}
	return out, nil
}

// manifestNamespaces are the namespaces of the manifests' objects (and the
// default one): where to read the cluster when it may not be read whole.
func manifestNamespaces(objs []manifest, defaultNamespace string) []string {
	out := []string{defaultNamespace}
	for _, m := range objs {
		if a, err := meta.Accessor(m.obj); err == nil && a.GetNamespace() != "" {
			out = append(out, a.GetNamespace())
		}
	}
	return out
}

func qualifiedName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}

// layer puts the file's objects over the cluster's state and returns the
// pods to simulate, prepared as the API server would store them: the file's
// pods, and the pods that its workloads (Deployments, StatefulSets, Jobs,
// ...) would create. Kinds that scheduling does not read are skipped, with
// a note.
func layer(state *explain.State, objs []manifest, defaultNamespace string, notes io.Writer) ([]*v1.Pod, []report.ObjectRef, error) {
	var pods []*v1.Pod
	var skipped []report.ObjectRef
	// Everything else first: a pod's priority class or namespace may come
	// from the file too.
	for _, m := range objs {
		obj := m.obj
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
			ref := report.ObjectRef{Kind: obj.GetObjectKind().GroupVersionKind().Kind, Source: m.source}
			ref.APIVersion = obj.GetObjectKind().GroupVersionKind().GroupVersion().String()
			if a, err := meta.Accessor(obj); err == nil {
				ref.Namespace, ref.Name = a.GetNamespace(), a.GetName()
			}
			skipped = append(skipped, ref)
		}
	}
	for _, pod := range pods {
		if err := state.PreparePod(pod, defaultNamespace); err != nil {
			return nil, nil, err
		}
		if err := state.Apply(pod); err != nil {
			return nil, nil, err
		}
	}
	return pods, skipped, nil
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
	Now             time.Time
	Skipped         []report.ObjectRef
	Unavailable     []report.Unavailable
}

// simulationReport is the simulation as a locus.dev/v1alpha1 Simulation.
func simulationReport(outcomes []explain.Outcome, o simulationOptions) *report.Simulation {
	sim := report.NewSimulation()
	sim.Profile = report.Profile{SchedulerName: o.Profile, Source: o.Source}
	sim.SimulatedAt = metav1.NewTime(o.Now)
	sim.Nodes = o.Nodes
	sim.Results = make([]report.PodResult, 0, len(outcomes))
	for i, out := range outcomes {
		sim.Results = append(sim.Results, out.Result(i+1, o.Details))
	}
	sim.Summary = explain.Summarize(sim.Results)
	sim.Skipped = o.Skipped
	sim.Unavailable = o.Unavailable
	return sim
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
