package sandbox

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/datalocality"
)

// Placement is where one pod landed, or why it waits.
type Placement struct {
	Pod       string
	Scheduler string
	Node      string
	Why       string
}

// settled reports whether every pod is bound or was found unschedulable.
func settled(pods []v1.Pod) bool {
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			continue
		}
		if c := scheduledCondition(&p); c == nil || c.Status != v1.ConditionFalse {
			return false
		}
	}
	return true
}

func scheduledCondition(p *v1.Pod) *v1.PodCondition {
	_, c := podutil.GetPodCondition(&p.Status, v1.PodScheduled)
	return c
}

// WaitAndReport waits until every pod is bound or unschedulable (at most
// timeout), then reads each pod's placement and the scheduler's reason. A
// pod that reads Datasets and got no LocalityPlacement event (locus records
// one only for a pod that got no locality at all) gets
// the same note, computed from its Datasets and node.
func WaitAndReport(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, timeout time.Duration) ([]Placement, error) {
	var pods []v1.Pod
	// Settled for a second in a row: controllers (Jobs, CronJobs) create
	// pods after the scenario is applied.
	calm := 0
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		list, err := client.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		if len(list.Items) == len(pods) && settled(list.Items) {
			calm++
		} else {
			calm = 0
		}
		pods = list.Items
		return calm >= 5, nil
	})
	// PostBind events are recorded asynchronously; give them a moment.
	time.Sleep(time.Second)
	events, err := client.EventsV1().Events(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	byPod := map[string][]eventsv1.Event{}
	for _, e := range events.Items {
		if e.Regarding.Kind == "Pod" {
			key := e.Regarding.Namespace + "/" + e.Regarding.Name
			byPod[key] = append(byPod[key], e)
		}
	}
	var out []Placement
	for i := range pods {
		p := &pods[i]
		key := p.Namespace + "/" + p.Name
		pl := Placement{Pod: key, Scheduler: p.Spec.SchedulerName, Node: p.Spec.NodeName}
		if pl.Node == "" {
			pl.Node = "<pending>"
			if c := scheduledCondition(p); c != nil {
				pl.Why = c.Message
			} else {
				pl.Why = "not tried yet"
			}
		} else {
			evs := byPod[key]
			if note := localityNote(ctx, client, dyn, p, evs); note != "" {
				evs = append(evs, eventsv1.Event{Reason: locusv1alpha1.EventReasonLocalityPlacement, Note: note})
			}
			pl.Why = placementReason(evs)
		}
		out = append(out, pl)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Pod < out[j].Pod })
	return out, nil
}

// placementReason joins locus's own placement notes (compliance audit,
// data locality); without them it falls back to the Scheduled event.
func placementReason(events []eventsv1.Event) string {
	var why []string
	for _, reason := range []string{locusv1alpha1.EventReasonCompliantPlacement, locusv1alpha1.EventReasonLocalityPlacement} {
		for _, e := range events {
			if e.Reason == reason {
				why = append(why, e.Note)
				break
			}
		}
	}
	if len(why) == 0 {
		for _, e := range events {
			if e.Reason == "Scheduled" {
				why = append(why, e.Note)
				break
			}
		}
	}
	return strings.Join(why, "; ")
}

// localityNote is the LocalityPlacement note of a bound pod that reads
// Datasets and has no such event, "" otherwise.
func localityNote(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, pod *v1.Pod, events []eventsv1.Event) string {
	names := datalocality.DatasetNames(pod)
	if len(names) == 0 {
		return ""
	}
	for _, e := range events {
		if e.Reason == locusv1alpha1.EventReasonLocalityPlacement {
			return ""
		}
	}
	var datasets []*locusv1alpha1.Dataset
	for _, name := range names {
		u, err := dyn.Resource(locusv1alpha1.SchemeGroupVersion.WithResource("datasets")).Namespace(pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			continue
		}
		ds := &locusv1alpha1.Dataset{}
		if runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, ds) == nil {
			datasets = append(datasets, ds)
		}
	}
	node, err := client.CoreV1().Nodes().Get(ctx, pod.Spec.NodeName, metav1.GetOptions{})
	if err != nil || len(datasets) == 0 {
		return ""
	}
	d := datalocality.DataOf(datasets...)
	return datalocality.PlacementNote(d, node, d.LevelOf(node))
}

// Print writes the placements as a table.
func Print(w io.Writer, placements []Placement) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tSCHEDULER\tNODE\tWHY")
	for _, p := range placements {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", p.Pod, p.Scheduler, p.Node, p.Why)
	}
	_ = tw.Flush()
}
