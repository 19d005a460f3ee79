package explain

import (
	"context"
	"fmt"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

// Verdict is what became of a simulated pod.
type Verdict string

const (
	// Placed: the pod would be bound to Node.
	Placed Verdict = "placed"
	// HeldForGang: the pod is reserved on Node and waits in Permit for the
	// rest of its gang, which did not all fit.
	HeldForGang Verdict = "held"
	// Waits: the pod would stay pending; Reason says why.
	Waits Verdict = "waits"
)

// Outcome is what became of one simulated pod.
type Outcome struct {
	Pod     *v1.Pod
	Verdict Verdict
	Node    string
	// Reason says why the pod waits or is held; for a placed pod, it is empty.
	Reason string
	// Evaluation is the pod's scheduling cycle, node by node.
	Evaluation *Evaluation
}

// Simulate schedules the pods one after another in the order of the
// profile's queue sort (BatchQuota's: priority, gangs together, fair share,
// age), as the scheduler would pop them from its queue now. Each pod that
// fits is reserved on its best node and passes Permit, so that it takes its
// node's resources and its quota for the pods after it; a gang's members
// wait in Permit until minMember of them are reserved, then are placed
// together. Nothing is preempted.
//
// The pods must be unbound pods of the state that the engine was built on
// (State.Apply them before New): gangs count their members through the
// informers. Pods without a creation time are queued in the order given.
func (e *Engine) Simulate(ctx context.Context, pods []*v1.Pod) ([]Outcome, error) {
	queue := make([]*framework.QueuedPodInfo, 0, len(pods))
	start := time.Now()
	for i, p := range pods {
		if _, err := e.pods.Pods(p.Namespace).Get(p.Name); err != nil {
			return nil, fmt.Errorf("pod %s/%s is not in the engine's state: %w", p.Namespace, p.Name, err)
		}
		pi, err := framework.NewPodInfo(p)
		if err != nil {
			return nil, err
		}
		ts := p.CreationTimestamp.Time
		if ts.IsZero() {
			ts = start.Add(time.Duration(i) * time.Microsecond)
		}
		queue = append(queue, &framework.QueuedPodInfo{PodInfo: pi, Timestamp: ts})
	}
	less := e.fw.QueueSortFunc()

	outcomes := make([]Outcome, 0, len(pods))
	// held are the indexes of outcomes waiting in Permit for their gang.
	held := map[int]bool{}
	for len(queue) > 0 {
		// The head of the queue now: the fair-share order changes as
		// quotas fill.
		next := 0
		for i := 1; i < len(queue); i++ {
			if less(queue[i], queue[next]) {
				next = i
			}
		}
		pod := queue[next].Pod
		queue = append(queue[:next], queue[next+1:]...)

		out, err := e.place(ctx, pod)
		if err != nil {
			return nil, err
		}
		outcomes = append(outcomes, out)
		switch out.Verdict {
		case HeldForGang:
			held[len(outcomes)-1] = true
		case Placed:
			// A gang's last member lets its waiting siblings through.
			for i := range held {
				o := &outcomes[i]
				wp := e.fw.GetWaitingPod(o.Pod.UID)
				if wp == nil || len(wp.GetPendingPlugins()) > 0 {
					continue
				}
				if st := e.fw.WaitOnPermit(ctx, e.assumed[string(o.Pod.UID)]); !st.IsSuccess() {
					continue
				}
				if err := e.bind(ctx, e.assumed[string(o.Pod.UID)]); err != nil {
					return nil, err
				}
				o.Verdict, o.Reason = Placed, ""
				delete(held, i)
			}
		}
	}
	for i := range held {
		outcomes[i].Reason = e.gangReason(outcomes[i].Pod, outcomes)
	}
	return outcomes, nil
}

// place runs one pod's scheduling cycle up to Permit.
func (e *Engine) place(ctx context.Context, pod *v1.Pod) (Outcome, error) {
	ev, err := e.Evaluate(ctx, pod)
	if err != nil {
		return Outcome{}, fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	out := Outcome{Pod: pod, Evaluation: ev}
	if ev.Best == "" {
		out.Verdict, out.Reason = Waits, ev.Reason()
		return out, nil
	}
	node := ev.Best
	assumed := pod.DeepCopy()
	assumed.Spec.NodeName = node
	e.assumed[string(pod.UID)] = assumed
	e.resnapshot()

	state := ev.state
	if st := e.fw.RunReservePluginsReserve(ctx, state, assumed, node); !st.IsSuccess() {
		e.release(ctx, state, assumed)
		out.Verdict, out.Reason = Waits, statusReason("Reserve", st)
		return out, nil
	}
	st := e.fw.RunPermitPlugins(ctx, state, assumed, node)
	switch {
	case st.IsWait():
		out.Verdict, out.Node, out.Reason = HeldForGang, node, statusReason("Permit", st)
		return out, nil
	case !st.IsSuccess():
		e.release(ctx, state, assumed)
		out.Verdict, out.Reason = Waits, statusReason("Permit", st)
		return out, nil
	}
	if err := e.bind(ctx, assumed); err != nil {
		return Outcome{}, err
	}
	out.Verdict, out.Node = Placed, node
	return out, nil
}

func statusReason(point string, st *fwk.Status) string {
	plugin := st.Plugin()
	if plugin == "" {
		plugin = point
	}
	return plugin + ": " + st.Message()
}

// release undoes a reservation that Reserve or Permit turned down.
func (e *Engine) release(ctx context.Context, state fwk.CycleState, assumed *v1.Pod) {
	e.fw.RunReservePluginsUnreserve(ctx, state, assumed, assumed.Spec.NodeName)
	delete(e.assumed, string(assumed.UID))
	e.resnapshot()
}

// bind makes the pod bound in the engine's informers, as the binding would
// in the cluster: BatchQuota counts bound gang siblings, for instance.
func (e *Engine) bind(ctx context.Context, assumed *v1.Pod) error {
	if _, err := e.client.CoreV1().Pods(assumed.Namespace).Update(ctx, assumed, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("binding %s/%s in memory: %w", assumed.Namespace, assumed.Name, err)
	}
	return wait.PollUntilContextTimeout(ctx, 2*time.Millisecond, syncTimeout, true, func(context.Context) (bool, error) {
		p, err := e.pods.Pods(assumed.Namespace).Get(assumed.Name)
		return err == nil && p.Spec.NodeName != "", nil
	})
}

// gangReason says why a gang member is still held at the end.
func (e *Engine) gangReason(pod *v1.Pod, outcomes []Outcome) string {
	gang := pod.Labels[schedv1alpha1.PodGroupLabel]
	reserved := 0
	for _, o := range outcomes {
		if o.Pod.Namespace == pod.Namespace && o.Pod.Labels[schedv1alpha1.PodGroupLabel] == gang && o.Verdict != Waits {
			reserved++
		}
	}
	min := "?"
	timeout := "its scheduleTimeoutSeconds"
	for _, pg := range e.state.PodGroups {
		if pg.Namespace == pod.Namespace && pg.Name == gang {
			min = fmt.Sprint(pg.Spec.MinMember)
			if pg.Spec.ScheduleTimeoutSeconds != nil {
				timeout = fmt.Sprintf("%ds", *pg.Spec.ScheduleTimeoutSeconds)
			}
		}
	}
	return fmt.Sprintf("gang %s: %d of minMember %s members could be reserved; they hold their nodes and quota for up to %s, then are all released",
		gang, reserved, min, timeout)
}
