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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/client-go/kubernetes"
	resourcehelper "k8s.io/component-helpers/resource"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/explain"
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
	wide    bool
}

func newExplainCommand(o *Options) *cobra.Command {
	eo := &explainOptions{Options: o}
	var output string
	cmd := &cobra.Command{
		Use:   "explain POD",
		Short: "Why a pod is pending, or why it landed where it did, node by node and plugin by plugin",
		Long: `Runs one scheduling cycle of the pod in this process, with locus-scheduler's
profile on a copy of the cluster's state, and shows every node: whether it fits,
which plugins reject it and why, and each plugin's score. A bound pod is
evaluated as if it were not yet scheduled (it does not count against its own
node or quota), next to where it is. locus's events on the pod follow.`,
		Example: `  kubectl locus explain payments-7f9c -n payments
  kubectl locus explain spark-exec-3 -n etl -o wide   # every score plugin in its own column`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			switch output {
			case "":
			case "wide":
				eo.wide = true
			default:
				return fmt.Errorf("--output: want wide, got %q", output)
			}
			return eo.run(cmd.Context(), args[0])
		},
	}
	eo.profile.add(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide shows every score plugin in its own column")
	return cmd
}

func (o *explainOptions) run(ctx context.Context, name string) error {
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
	state, err := o.loadState(ctx, cfg)
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
	events, err := podEvents(ctx, client, pod)
	if err != nil {
		fmt.Fprintf(o.ErrOut, "warning: cannot list events of the pod: %v\n", err)
	}
	return writeExplanation(o.Out, pod, ev, explanationOptions{
		Source: source, Profile: prof.SchedulerName, Wide: o.wide, Events: events, Now: time.Now(),
	})
}

type explanationOptions struct {
	Source, Profile string
	Wide            bool
	Events          []eventsv1.Event
	Now             time.Time
}

// writeExplanation prints the pod, the node table, the verdict and the events.
func writeExplanation(w io.Writer, pod *v1.Pod, ev *explain.Evaluation, o explanationOptions) error {
	tw := explain.NewTabWriter(w)
	fmt.Fprintf(tw, "Pod:\t%s/%s\n", pod.Namespace, pod.Name)
	fmt.Fprintf(tw, "Scheduler:\t%s\n", pod.Spec.SchedulerName)
	fmt.Fprintf(tw, "Requests:\t%s\n", orNone(quota.FromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{})).String()))
	for _, a := range []string{locusv1alpha1.AnnotationCompliance, locusv1alpha1.AnnotationDataResidency, locusv1alpha1.AnnotationDatasets, locusv1alpha1.AnnotationLocalityWait} {
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
	fmt.Fprintf(w, "%s against %d nodes:\n", what, len(ev.Nodes))
	if len(ev.Nodes) > 0 && ev.Gate == nil {
		if err := explain.WriteNodeTable(w, ev, explain.TableOptions{Wide: o.Wide, Current: pod.Spec.NodeName}); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Verdict: "+verdictLine(pod, ev))
	if _, waits := pod.Annotations[locusv1alpha1.AnnotationLocalityWait]; waits && pod.Spec.NodeName == "" {
		fmt.Fprintln(w, "Note: the locality wait is counted here from now; the scheduler counts it from the pod's first attempt.")
	}

	fmt.Fprintln(w)
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

// verdictLine says where the pod would go now, or why it would wait.
func verdictLine(pod *v1.Pod, ev *explain.Evaluation) string {
	var now string
	if ev.Best != "" {
		now = fmt.Sprintf("would be placed on %s now (score %d, %s)", ev.Best, ev.Node(ev.Best).Total, explain.BestOf(ev.Feasible()))
	} else {
		now = "would wait now: " + ev.Reason()
	}
	if pod.Spec.NodeName == "" {
		return "pending; " + now + "."
	}
	var here string
	switch r := ev.Node(pod.Spec.NodeName); {
	case r == nil:
		here = "that node is gone"
	case ev.PreFilter != nil:
		here = "it would not be admitted now"
	case r.Feasible():
		here = fmt.Sprintf("score %d there now", r.Total)
	default:
		here = "it fits there no longer"
	}
	return fmt.Sprintf("bound to %s (%s); %s.", pod.Spec.NodeName, here, now)
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
