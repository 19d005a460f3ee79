package explain

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"locus.dev/locus/pkg/batchquota"
	"locus.dev/locus/pkg/compliance"
	"locus.dev/locus/pkg/datalocality"
)

// NewTabWriter aligns columns as kubectl does.
func NewTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 6, 4, 3, ' ', 0)
}

// locusPlugins get a score column of their own; kube-scheduler's in-tree
// plugins share one (OTHER) unless the table is wide.
var locusPlugins = map[string]bool{compliance.Name: true, datalocality.Name: true, batchquota.Name: true}

// TableOptions tune WriteNodeTable.
type TableOptions struct {
	// Wide gives every Score plugin its own column.
	Wide bool
	// Current is the node that the pod is bound to, marked in the table.
	Current string
}

// Verdicts in the node table.
const (
	VerdictBest     = "best"
	VerdictFeasible = "feasible"
	VerdictRejected = "rejected"
)

// verdict is a node's verdict for the table.
func (ev *Evaluation) verdict(r *NodeResult, current string) string {
	v := VerdictRejected
	switch {
	case r.Node == ev.Best:
		v = VerdictBest
	case r.Feasible() && ev.PreFilter == nil:
		v = VerdictFeasible
	}
	if r.Node == current {
		v += ",current"
	}
	return v
}

// WriteNodeTable writes one row per node: the verdict, the weighted score of
// each Score plugin and their total for feasible nodes, and every Filter
// plugin that rejects the others, with its reason.
func WriteNodeTable(w io.Writer, ev *Evaluation, opts TableOptions) error {
	var cols []string
	other := false
	for _, p := range ev.ScorePlugins {
		if opts.Wide || locusPlugins[p] {
			cols = append(cols, p)
		} else {
			other = true
		}
	}
	tw := NewTabWriter(w)
	header := []string{"NODE", "VERDICT"}
	for _, c := range cols {
		header = append(header, strings.ToUpper(c))
	}
	if other {
		header = append(header, "OTHER")
	}
	if len(ev.ScorePlugins) > 0 {
		header = append(header, "TOTAL")
	}
	header = append(header, "FAILED")
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	if ev.PreFilter != nil && ev.PreFilter.Unresolvable && len(ev.Nodes) > 1 {
		// Rejected before any node was looked at: one row says it for all.
		fmt.Fprintf(tw, "(all %d)\t%s\t%s\n", len(ev.Nodes), VerdictRejected, ev.PreFilter)
		return tw.Flush()
	}
	for i := range ev.Nodes {
		r := &ev.Nodes[i]
		row := []string{r.Node, ev.verdict(r, opts.Current)}
		scored := r.Scores != nil
		for _, c := range cols {
			row = append(row, scoreCell(scored, r.Scores[c]))
		}
		if other {
			var sum int64
			for p, s := range r.Scores {
				if !containsString(cols, p) {
					sum += s
				}
			}
			row = append(row, scoreCell(scored, sum))
		}
		if len(ev.ScorePlugins) > 0 {
			row = append(row, scoreCell(scored, r.Total))
		}
		failed := make([]string, len(r.Failures))
		for j, f := range r.Failures {
			failed[j] = f.String()
		}
		row = append(row, strings.Join(failed, "; "))
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func scoreCell(scored bool, v int64) string {
	if !scored {
		return "-"
	}
	return fmt.Sprint(v)
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// WriteOutcomes writes one row per simulated pod, in the order they were
// scheduled: its verdict, its node, and why it waits.
func WriteOutcomes(w io.Writer, outcomes []Outcome) error {
	tw := NewTabWriter(w)
	fmt.Fprintln(tw, "#\tPOD\tVERDICT\tNODE\tREASON")
	for i, o := range outcomes {
		node := o.Node
		if node == "" {
			node = "-"
		}
		reason := o.Reason
		if o.Verdict == Placed && o.Evaluation != nil {
			if r := o.Evaluation.Node(o.Node); r != nil {
				reason = fmt.Sprintf("score %d, %s", r.Total, BestOf(o.Evaluation.Feasible()))
			}
		}
		fmt.Fprintf(tw, "%d\t%s/%s\t%s\t%s\t%s\n", i+1, o.Pod.Namespace, o.Pod.Name, o.Verdict, node, reason)
	}
	return tw.Flush()
}

// BestOf says how the chosen node compares.
func BestOf(feasible int) string {
	if feasible == 1 {
		return "the only feasible node"
	}
	return fmt.Sprintf("best of %d feasible nodes", feasible)
}
