package app

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/printers"
	"k8s.io/client-go/kubernetes"
	resourcehelper "k8s.io/component-helpers/resource"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/explain/report"
)

// eventReasons are the events on a pod that tell its scheduling story.
var eventReasons = map[string]bool{
	"Scheduled":        true,
	"FailedScheduling": true,
	"Preempted":        true,
	locusv1alpha1.EventReasonCompliantPlacement: true,
	locusv1alpha1.EventReasonLocalityPlacement:  true,
	locusv1alpha1.EventReasonQuotaExceeded:      true,
	locusv1alpha1.EventReasonDatasetNotFound:    true,
}

type explainOptions struct {
	*Options
	profile profileFlags
	out     *outputFlags
}

func newExplainCommand(o *Options) *cobra.Command {
	eo := &explainOptions{Options: o, out: newOutputFlags(true)}
	cmd := &cobra.Command{
		Use:   "explain POD",
		Short: "Why a pod is pending, or why it landed where it did, node by node and plugin by plugin",
		Long: `Runs one scheduling cycle of the pod in this process, with locus-scheduler's
profile on a copy of the cluster's state, and shows every node: whether it fits,
which plugins reject it and why, and each plugin's score. A bound pod is
evaluated as if it were not yet scheduled (it does not count against its own
node or quota), next to where it is. locus's events on the pod follow.

What the user may not read does not fail explain: with read access to their
namespace only, it says what it could not see (nodes, other namespaces' pods
and quotas) and explains what it can: the pod's own annotations, its
namespace's quota, its events.

-o json and -o yaml print a locus.dev/v1alpha1 Explanation (docs/kubectl-locus.md).`,
		Example: `  kubectl locus explain payments-7f9c -n payments
  kubectl locus explain spark-exec-3 -n etl -o wide   # every score plugin in its own column
  kubectl locus explain spark-exec-3 -n etl -o json | jq -r '.result.verdict, .result.reason'`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: o.completePods,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := eo.out.printer()
			if err != nil {
				return err
			}
			return eo.run(cmd.Context(), args[0], p)
		},
	}
	eo.profile.add(cmd)
	eo.out.addFlags(cmd)
	return cmd
}

func (o *explainOptions) run(ctx context.Context, name string, printer printers.ResourcePrinter) error {
	cfg, client, err := o.clients()
	if err != nil {
		return err
	}
	ns, err := o.namespace()
	if err != nil {
		return err
	}
	pod, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if pod.Spec.SchedulerName != o.profile.profile {
		fmt.Fprintf(o.ErrOut, "note: pod %s/%s has schedulerName %q; evaluating it with profile %q\n",
			pod.Namespace, pod.Name, pod.Spec.SchedulerName, o.profile.profile)
	}
	prof, source, err := o.profile.load(ctx, client)
	if err != nil {
		return err
	}
	state, err := o.loadState(ctx, cfg, pod.Namespace)
	if err != nil {
		return err
	}
	// The pod as just read, even if it finished (finished pods are not in
	// the state); then not bound, so that it takes neither room on its
	// node nor quota.
	if err := state.Apply(pod); err != nil {
		return err
	}
	target := state.Unbind(pod)

	engine, err := explain.New(ctx, prof, state)
	if err != nil {
		return err
	}
	defer engine.Close()
	ev, err := engine.Evaluate(ctx, target)
	if err != nil {
		return err
	}
	unavailable := state.Unavailable
	events, err := podEvents(ctx, client, pod)
	if err != nil {
		u := report.Unavailable{Resource: "events", Reason: apierrors.ReasonForError(err), Message: err.Error(), Impact: "the pod's events are not shown"}
		unavailable = append(unavailable, u)
		fmt.Fprintln(o.ErrOut, "warning:", explain.UnavailableMessage(u))
	}
	opts := explanationOptions{
		Source: source, Profile: prof.SchedulerName, Wide: o.out.isWide(), Events: events, Now: time.Now(),
		NodesUnavailable: state.NodesUnavailable(), Unavailable: unavailable,
	}
	if printer != nil {
		return printer.PrintObj(explanationReport(pod, ev, opts), o.Out)
	}
	return writeExplanation(o.Out, pod, ev, opts)
}

type explanationOptions struct {
	Source, Profile string
	Wide            bool
	Events          []eventsv1.Event
	Now             time.Time
	// NodesUnavailable is set when the nodes could not be read.
	NodesUnavailable *report.Unavailable
	// Unavailable is all that could not be read.
	Unavailable []report.Unavailable
}

// writeExplanation prints the pod, the node table, the verdict and the events.
func writeExplanation(w io.Writer, pod *v1.Pod, ev *explain.Evaluation, o explanationOptions) error {
	tw := explain.NewTabWriter(w)
	fmt.Fprintf(tw, "Pod:\t%s/%s\n", pod.Namespace, pod.Name)
	fmt.Fprintf(tw, "Scheduler:\t%s\n", pod.Spec.SchedulerName)
	fmt.Fprintf(tw, "Requests:\t%s\n", orNone(quota.FromList(podRequests(pod)).String()))
	for _, a := range explainedAnnotations {
		if v, ok := pod.Annotations[a]; ok {
			fmt.Fprintf(tw, "%s:\t%s\n", a, v)
		}
	}
	if g := pod.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
		fmt.Fprintf(tw, "Gang:\t%s\n", g)
	}
	if pod.Spec.NodeName != "" {
		fmt.Fprintf(tw, "Node:\t%s\n", pod.Spec.NodeName)
	} else {
		fmt.Fprintf(tw, "Node:\t<none> (%s)\n", pendingStatus(pod))
	}
	fmt.Fprintf(tw, "Profile:\t%s, from %s\n", o.Profile, o.Source)
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	what := "Evaluated now"
	if pod.Spec.NodeName != "" {
		what += ", as if the pod were not yet scheduled,"
	}
	if o.NodesUnavailable != nil && len(ev.Nodes) == 0 {
		fmt.Fprintf(w, "%s: %s.\n", what, explain.UnavailableMessage(*o.NodesUnavailable))
	} else {
		fmt.Fprintf(w, "%s against %d nodes:\n", what, len(ev.Nodes))
	}
	if len(ev.Nodes) > 0 && ev.Gate == nil {
		if err := explain.WriteNodeTable(w, ev, explain.TableOptions{Wide: o.Wide, Current: pod.Spec.NodeName}); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Verdict: "+verdictLine(pod, ev, o.NodesUnavailable))
	if _, waits := pod.Annotations[locusv1alpha1.AnnotationLocalityWait]; waits && pod.Spec.NodeName == "" {
		fmt.Fprintln(w, "Note: the locality wait is counted here from now; the scheduler counts it from the pod's first attempt.")
	}

	fmt.Fprintln(w)
	for _, u := range o.Unavailable {
		if u.Resource == "events" {
			fmt.Fprintf(w, "Events: %s.\n", explain.UnavailableMessage(u))
			return nil
		}
	}
	if len(o.Events) == 0 {
		fmt.Fprintln(w, "Events: <none>")
		return nil
	}
	fmt.Fprintln(w, "Events:")
	tw = explain.NewTabWriter(w)
	fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tFROM\tMESSAGE")
	for _, e := range o.Events {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", age(eventTime(&e), o.Now), e.Type, e.Reason, eventSource(&e), oneLine(e.Note))
	}
	return tw.Flush()
}

// explainedAnnotations are the pod's annotations that explain shows.
var explainedAnnotations = []string{locusv1alpha1.AnnotationCompliance, locusv1alpha1.AnnotationDataResidency, locusv1alpha1.AnnotationDatasets, locusv1alpha1.AnnotationLocalityWait}

func podRequests(pod *v1.Pod) v1.ResourceList {
	return resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})
}

// explanationReport is the explanation as a locus.dev/v1alpha1 Explanation.
func explanationReport(pod *v1.Pod, ev *explain.Evaluation, o explanationOptions) *report.Explanation {
	x := report.NewExplanation()
	x.Pod = report.PodInfo{
		Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID, SchedulerName: pod.Spec.SchedulerName,
		Gang: pod.Labels[schedv1alpha1.PodGroupLabel], Node: pod.Spec.NodeName, Pending: pod.Spec.NodeName == "",
	}
	if r := podRequests(pod); len(r) > 0 {
		x.Pod.Requests = r
	}
	for _, a := range explainedAnnotations {
		if v, ok := pod.Annotations[a]; ok {
			if x.Pod.Annotations == nil {
				x.Pod.Annotations = map[string]string{}
			}
			x.Pod.Annotations[a] = v
		}
	}
	if x.Pod.Pending {
		x.Pod.PendingReason = pendingStatus(pod)
	}
	x.Profile = report.Profile{SchedulerName: o.Profile, Source: o.Source}
	x.EvaluatedAt = metav1.NewTime(o.Now)
	x.Result = ev.Result(explain.ResultOptions{Nodes: true, Current: pod.Spec.NodeName, NodesUnavailable: o.NodesUnavailable})
	if pod.Spec.NodeName != "" {
		x.Current = currentNode(pod, ev, o.NodesUnavailable)
	}
	x.Events = []report.Event{}
	for _, e := range o.Events {
		x.Events = append(x.Events, report.Event{
			LastSeen: metav1.NewTime(eventTime(&e)), Type: e.Type, Reason: e.Reason, From: eventSource(&e), Message: oneLine(e.Note),
		})
	}
	x.Unavailable = o.Unavailable
	return x
}

// currentNode says how a bound pod's node fares now.
func currentNode(pod *v1.Pod, ev *explain.Evaluation, nodesUnavailable *report.Unavailable) *report.CurrentNode {
	c := &report.CurrentNode{Name: pod.Spec.NodeName}
	switch r := ev.Node(pod.Spec.NodeName); {
	case r == nil && nodesUnavailable != nil:
		c.Status = report.CurrentUnknown
	case r == nil:
		c.Status = report.CurrentGone
	case ev.PreFilter != nil:
		c.Status = report.CurrentNotAdmitted
	case r.Feasible():
		c.Status = report.CurrentFits
		total := r.Total
		c.Score = &total
	default:
		c.Status = report.CurrentNoLongerFits
	}
	return c
}

// verdictLine says where the pod would go now, or why it would wait.
func verdictLine(pod *v1.Pod, ev *explain.Evaluation, nodesUnavailable *report.Unavailable) string {
	var now string
	switch {
	case ev.Best != "":
		now = fmt.Sprintf("would be placed on %s now (score %d, %s)", ev.Best, ev.Node(ev.Best).Total, explain.BestOf(ev.Feasible()))
	case nodesUnavailable != nil && ev.Gate == nil && ev.PreFilter == nil:
		now = "cannot tell where it would go now (" + explain.UnavailableMessage(*nodesUnavailable) +
			"); no plugin turns it away before looking at the nodes"
	default:
		now = "would wait now: " + ev.Reason()
	}
	if pod.Spec.NodeName == "" {
		return "pending; " + now + "."
	}
	var here string
	switch c := currentNode(pod, ev, nodesUnavailable); c.Status {
	case report.CurrentUnknown:
		here = "the node could not be read"
	case report.CurrentGone:
		here = "that node is gone"
	case report.CurrentNotAdmitted:
		here = "it would not be admitted now"
	case report.CurrentFits:
		here = fmt.Sprintf("score %d there now", *c.Score)
	default:
		here = "it fits there no longer"
	}
	return fmt.Sprintf("bound to %s (%s); %s.", pod.Spec.NodeName, here, now)
}

// completePods completes explain's POD with the pods of the namespace.
func (o *Options) completePods(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	_, client, err := o.clients()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ns, err := o.namespace()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	list, err := client.CoreV1().Pods(ns).List(cmd.Context(), metav1.ListOptions{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var names []string
	for _, p := range list.Items {
		if strings.HasPrefix(p.Name, toComplete) {
			names = append(names, p.Name)
		}
	}
	sort.Strings(names)
	return names, cobra.ShellCompDirectiveNoFileComp
}

// pendingStatus is the scheduler's last word on a pending pod.
func pendingStatus(pod *v1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Type == v1.PodScheduled && c.Status == v1.ConditionFalse {
			if c.Message != "" {
				return fmt.Sprintf("%s: %s", c.Reason, oneLine(c.Message))
			}
			return c.Reason
		}
	}
	return "not yet tried by the scheduler"
}

// podEvents lists the events about the pod that tell its scheduling story,
// oldest first.
func podEvents(ctx context.Context, client kubernetes.Interface, pod *v1.Pod) ([]eventsv1.Event, error) {
	sel := fields.Set{"regarding.kind": "Pod", "regarding.name": pod.Name}.AsSelector().String()
	list, err := client.EventsV1().Events(pod.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, err
	}
	return filterEvents(list.Items, pod), nil
}

func filterEvents(events []eventsv1.Event, pod *v1.Pod) []eventsv1.Event {
	var out []eventsv1.Event
	for _, e := range events {
		if !eventReasons[e.Reason] || (e.Regarding.UID != "" && e.Regarding.UID != pod.UID) {
			continue
		}
		out = append(out, e)
	}
	sort.SliceStable(out, func(i, j int) bool { return eventTime(&out[i]).Before(eventTime(&out[j])) })
	return out
}

// eventTime is when an event was last seen.
func eventTime(e *eventsv1.Event) time.Time {
	t := e.EventTime.Time
	if e.Series != nil && e.Series.LastObservedTime.After(t) {
		t = e.Series.LastObservedTime.Time
	}
	if e.DeprecatedLastTimestamp.After(t) {
		t = e.DeprecatedLastTimestamp.Time
	}
	if t.IsZero() {
		t = e.CreationTimestamp.Time
	}
	return t
}

func eventSource(e *eventsv1.Event) string {
	if e.ReportingController != "" {
		return e.ReportingController
	}
	return e.DeprecatedSource.Component
}

func age(t, now time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
