package explain

import (
	"context"
	"fmt"
	"sort"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// Failure is one plugin's verdict against a pod, on one node or on all.
type Failure struct {
	Plugin string
	Reason string
	// Unresolvable: preemption cannot help (UnschedulableAndUnresolvable).
	Unresolvable bool
}

func (f Failure) String() string { return f.Plugin + ": " + f.Reason }

// NodeResult is one node's verdict for a pod.
type NodeResult struct {
	Node string
	// Failures are the Filter plugins that reject the node, in the
	// profile's order: the scheduler stops at the first, this lists all.
	Failures []Failure
	// Scores are the weighted scores of the Score plugins, by plugin, for a
	// feasible node; Total is their sum, which the scheduler maximizes.
	Scores map[string]int64
	Total  int64
}

// Feasible reports whether every Filter plugin accepts the node.
func (r *NodeResult) Feasible() bool { return len(r.Failures) == 0 }

// Evaluation is one scheduling cycle of a pod, run in memory.
type Evaluation struct {
	Pod *v1.Pod
	// Gate is set when a PreEnqueue plugin keeps the pod out of the
	// scheduling queue (scheduling gates): no cycle runs.
	Gate *Failure
	// PreFilter is set when a PreFilter plugin rejects the pod as a whole
	// (a quota, a malformed annotation, an incomplete gang).
	PreFilter *Failure
	// Nodes holds every node: the feasible ones by total score, highest
	// first, then the others by name.
	Nodes []NodeResult
	// ScorePlugins are the Score plugins that ran, in the profile's order.
	ScorePlugins []string
	// Best is the feasible node with the highest total, where the scheduler
	// would bind the pod now ("" when none is feasible). Ties go to the
	// first name; kube-scheduler picks one of the tied nodes at random.
	Best string

	state fwk.CycleState
}

// Node returns the result for one node, or nil.
func (ev *Evaluation) Node(name string) *NodeResult {
	for i := range ev.Nodes {
		if ev.Nodes[i].Node == name {
			return &ev.Nodes[i]
		}
	}
	return nil
}

// Feasible counts the feasible nodes.
func (ev *Evaluation) Feasible() int {
	n := 0
	for i := range ev.Nodes {
		if ev.Nodes[i].Feasible() {
			n++
		}
	}
	return n
}

// Reason says in one line why the pod cannot be placed now, in the manner of
// kube-scheduler's FailedScheduling message; "" when it can.
func (ev *Evaluation) Reason() string {
	switch {
	case ev.Gate != nil:
		return ev.Gate.String()
	case ev.PreFilter != nil:
		return ev.PreFilter.String()
	case ev.Best != "":
		return ""
	case len(ev.Nodes) == 0:
		return "no nodes available to schedule pods"
	}
	// Counted by each node's first failure, as the scheduler reports.
	counts := map[string]int{}
	for _, n := range ev.Nodes {
		if len(n.Failures) > 0 {
			counts[n.Failures[0].String()]++
		}
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%d %s", counts[k], k)
	}
	return fmt.Sprintf("0/%d nodes are available: %s", len(ev.Nodes), strings.Join(parts, "; "))
}

// Evaluate runs one scheduling cycle of the pod against the engine's state,
// up to and including NormalizeScore, and reports every node. It reserves
// nothing. The pod must be unbound; for a bound pod, State.Unbind it before
// New.
func (e *Engine) Evaluate(ctx context.Context, pod *v1.Pod) (*Evaluation, error) {
	if pod.Spec.NodeName != "" {
		return nil, fmt.Errorf("pod %s/%s is bound to %s: unbind it in the State first", pod.Namespace, pod.Name, pod.Spec.NodeName)
	}
	ev := &Evaluation{Pod: pod}
	for _, pl := range e.fw.PreEnqueuePlugins() {
		if st := pl.PreEnqueue(ctx, pod); !st.IsSuccess() {
			ev.Gate = &Failure{Plugin: pl.Name(), Reason: st.Message(), Unresolvable: true}
			return ev, nil
		}
	}

	state := framework.NewCycleState()
	ev.state = state
	nodes, err := e.snapshot.NodeInfos().List()
	if err != nil {
		return nil, err
	}
	result, st, pluginsWithNodes := e.fw.RunPreFilterPlugins(ctx, state, pod)
	if !st.IsSuccess() {
		if !st.IsRejected() {
			return nil, st.AsError()
		}
		ev.PreFilter = &Failure{Plugin: st.Plugin(), Reason: st.Message(), Unresolvable: st.Code() == fwk.UnschedulableAndUnresolvable}
		if ev.PreFilter.Plugin == "" {
			// The framework's own verdict: PreFilter results left no node.
			ev.PreFilter.Plugin = strings.Join(sets.List(pluginsWithNodes), ",")
		}
	}

	var feasible []fwk.NodeInfo
	for _, ni := range nodes {
		r := NodeResult{Node: ni.Node().Name}
		switch {
		case ev.PreFilter != nil && ev.PreFilter.Unresolvable:
			// The cycle stopped at PreFilter: later plugins have no state.
			r.Failures = []Failure{*ev.PreFilter}
		case result != nil && !result.AllNodes() && !result.NodeNames.Has(r.Node):
			// The scheduler looks no further at the node. The Filter
			// plugins still say why it does not qualify (Compliance narrows
			// a regulated pod to the certified nodes in PreFilter, and
			// rejects the others in Filter for the reason that counts).
			r.Failures = e.filter(ctx, state, pod, ni)
			if len(r.Failures) == 0 {
				r.Failures = []Failure{{
					Plugin:       strings.Join(sets.List(pluginsWithNodes), ","),
					Reason:       "node is not among the nodes that PreFilter allowed",
					Unresolvable: true,
				}}
			}
		default:
			r.Failures = e.filter(ctx, state, pod, ni)
			if ev.PreFilter != nil && !hasPlugin(r.Failures, ev.PreFilter.Plugin) {
				// Rejected as a whole (Unschedulable: other plugins still
				// ran, so their verdicts on the node are shown too).
				r.Failures = append([]Failure{*ev.PreFilter}, r.Failures...)
			}
		}
		if r.Feasible() {
			feasible = append(feasible, ni)
		}
		ev.Nodes = append(ev.Nodes, r)
	}

	if len(feasible) > 0 && ev.PreFilter == nil {
		if err := e.score(ctx, ev, feasible); err != nil {
			return nil, err
		}
	}
	sort.SliceStable(ev.Nodes, func(i, j int) bool {
		a, b := &ev.Nodes[i], &ev.Nodes[j]
		if a.Feasible() != b.Feasible() {
			return a.Feasible()
		}
		if a.Total != b.Total {
			return a.Total > b.Total
		}
		return a.Node < b.Node
	})
	if ev.PreFilter == nil && len(ev.Nodes) > 0 && ev.Nodes[0].Feasible() {
		ev.Best = ev.Nodes[0].Node
	}
	return ev, nil
}

// filter asks every Filter plugin that PreFilter did not skip about a node.
func (e *Engine) filter(ctx context.Context, state fwk.CycleState, pod *v1.Pod, ni fwk.NodeInfo) []Failure {
	var out []Failure
	skip := state.GetSkipFilterPlugins()
	for _, pl := range e.filters {
		if skip.Has(pl.Name()) {
			continue
		}
		st := pl.Filter(ctx, state, pod, ni)
		if st.IsSuccess() {
			continue
		}
		reason := strings.Join(st.Reasons(), ", ")
		if !st.IsRejected() {
			reason = "error: " + st.AsError().Error()
		}
		out = append(out, Failure{Plugin: pl.Name(), Reason: reason, Unresolvable: st.Code() == fwk.UnschedulableAndUnresolvable})
	}
	return out
}

// score runs PreScore, Score and NormalizeScore on the feasible nodes, as
// the framework does, and records the weighted scores.
func (e *Engine) score(ctx context.Context, ev *Evaluation, feasible []fwk.NodeInfo) error {
	if st := e.fw.RunPreScorePlugins(ctx, ev.state, ev.Pod, feasible); !st.IsSuccess() {
		if st.IsRejected() {
			ev.PreFilter = &Failure{Plugin: st.Plugin(), Reason: st.Message()}
			return nil
		}
		return fmt.Errorf("PreScore: %w", st.AsError())
	}
	scores, st := e.fw.RunScorePlugins(ctx, ev.state, ev.Pod, feasible)
	if !st.IsSuccess() {
		return fmt.Errorf("Score: %w", st.AsError())
	}
	byNode := map[string]framework.NodePluginScores{}
	for _, s := range scores {
		byNode[s.Name] = s
	}
	if len(scores) > 0 {
		for _, ps := range scores[0].Scores {
			ev.ScorePlugins = append(ev.ScorePlugins, ps.Name)
		}
	}
	for i := range ev.Nodes {
		r := &ev.Nodes[i]
		s, ok := byNode[r.Node]
		if !ok {
			continue
		}
		r.Scores = make(map[string]int64, len(s.Scores))
		for _, ps := range s.Scores {
			r.Scores[ps.Name] = ps.Score
		}
		r.Total = s.TotalScore
	}
	return nil
}

func hasPlugin(fs []Failure, plugin string) bool {
	for _, f := range fs {
		if f.Plugin == plugin {
			return true
		}
	}
	return false
}
