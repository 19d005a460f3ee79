package explain

import (
	"sort"

	"locus.dev/locus/pkg/explain/report"
)

// ResultOptions tune Evaluation.Result.
type ResultOptions struct {
	// Nodes includes every node's result (report.PodResult.Nodes).
	Nodes bool
	// Current is the node the pod is bound to, marked in the nodes.
	Current string
	// NodesUnavailable is set when the nodes could not be read: a pod that
	// nothing else turns away gets the verdict unknown rather than waits.
	NodesUnavailable *report.Unavailable
}

// Result is the evaluation in the form of kubectl-locus's output
// (locus.dev/v1alpha1): the verdict, the one-line reason, the Filter
// plugins' rejections summarized over the nodes and, with opts.Nodes, every
// node's result.
func (ev *Evaluation) Result(opts ResultOptions) report.PodResult {
	r := report.PodResult{
		Pod:            report.PodRef{Namespace: ev.Pod.Namespace, Name: ev.Pod.Name},
		Verdict:        report.Waits,
		Gate:           pluginReason(ev.Gate),
		PreFilter:      pluginReason(ev.PreFilter),
		NodesEvaluated: len(ev.Nodes),
		NodesFeasible:  ev.Feasible(),
		Rejections:     ev.Rejections(),
		ScorePlugins:   append([]string(nil), ev.ScorePlugins...),
	}
	if ev.PreFilter != nil {
		// Rejected as a whole: no node is feasible, whatever Filter said.
		r.NodesFeasible = 0
	}
	switch {
	case ev.Best != "":
		r.Verdict, r.Node = report.Placed, ev.Best
		total := ev.Node(ev.Best).Total
		r.Score = &total
	case opts.NodesUnavailable != nil && ev.Gate == nil && ev.PreFilter == nil:
		r.Verdict = report.Unknown
		r.Reason = UnavailableMessage(*opts.NodesUnavailable)
	default:
		r.Reason = ev.Reason()
	}
	r.Pending = r.Verdict != report.Placed
	if opts.Nodes {
		r.Nodes = make([]report.NodeResult, 0, len(ev.Nodes))
		for i := range ev.Nodes {
			r.Nodes = append(r.Nodes, ev.nodeResult(&ev.Nodes[i], opts.Current))
		}
	}
	return r
}

func (ev *Evaluation) nodeResult(n *NodeResult, current string) report.NodeResult {
	out := report.NodeResult{Name: n.Node, Verdict: ev.verdict(n, ""), Current: current != "" && n.Node == current}
	for _, f := range n.Failures {
		out.Failures = append(out.Failures, *pluginReason(&f))
	}
	if n.Scores != nil {
		out.Scores = make(map[string]int64, len(n.Scores))
		for p, s := range n.Scores {
			out.Scores[p] = s
		}
		total := n.Total
		out.Total = &total
	}
	return out
}

// Rejections summarize the nodes' failures: one entry per plugin and
// reason with the nodes it rejects, most nodes first, then by plugin and
// reason. Every failure counts, not only each node's first.
func (ev *Evaluation) Rejections() []report.Rejection {
	type key struct{ plugin, reason string }
	byKey := map[key]*report.Rejection{}
	var keys []key
	for _, n := range ev.Nodes {
		for _, f := range n.Failures {
			k := key{f.Plugin, f.Reason}
			r, ok := byKey[k]
			if !ok {
				r = &report.Rejection{Plugin: f.Plugin, Reason: f.Reason}
				byKey[k] = r
				keys = append(keys, k)
			}
			r.Unresolvable = r.Unresolvable || f.Unresolvable
			r.Nodes = append(r.Nodes, n.Node)
		}
	}
	out := make([]report.Rejection, 0, len(keys))
	for _, k := range keys {
		r := byKey[k]
		sort.Strings(r.Nodes)
		r.NodeCount = len(r.Nodes)
		out = append(out, *r)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].NodeCount != out[j].NodeCount {
			return out[i].NodeCount > out[j].NodeCount
		}
		if out[i].Plugin != out[j].Plugin {
			return out[i].Plugin < out[j].Plugin
		}
		return out[i].Reason < out[j].Reason
	})
	if len(out) == 0 {
		return nil
	}
	return out
}

// Result is the outcome in the form of kubectl-locus's output: order is its
// place in the queue order, from 1; nodes includes every node's result.
func (o Outcome) Result(order int, nodes bool) report.PodResult {
	var r report.PodResult
	if o.Evaluation != nil {
		r = o.Evaluation.Result(ResultOptions{Nodes: nodes})
	} else {
		r.Pod = report.PodRef{Namespace: o.Pod.Namespace, Name: o.Pod.Name}
	}
	r.Order = order
	r.Node, r.Score = o.Node, nil
	switch o.Verdict {
	case Placed:
		r.Verdict, r.Reason = report.Placed, ""
	case HeldForGang:
		r.Verdict, r.Reason = report.Held, o.Reason
	default:
		r.Verdict, r.Reason = report.Waits, o.Reason
	}
	if o.Node != "" && o.Evaluation != nil {
		if n := o.Evaluation.Node(o.Node); n != nil && n.Scores != nil {
			total := n.Total
			r.Score = &total
		}
	}
	r.Pending = r.Verdict != report.Placed
	return r
}

// Summarize counts simulation results by verdict.
func Summarize(results []report.PodResult) report.SimulationSummary {
	s := report.SimulationSummary{Pods: len(results)}
	for _, r := range results {
		switch r.Verdict {
		case report.Placed:
			s.Placed++
		case report.Held:
			s.Held++
		default:
			s.Waiting++
		}
	}
	s.Unschedulable = s.Held + s.Waiting
	return s
}

func pluginReason(f *Failure) *report.PluginReason {
	if f == nil {
		return nil
	}
	return &report.PluginReason{Plugin: f.Plugin, Reason: f.Reason, Unresolvable: f.Unresolvable}
}
