package bench

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/component-base/metrics/legacyregistry"
)

// schedulerWork counts what a scheduler did, from its own metrics in the
// process's registry: scheduling attempts, and the nodes that
// NodeResourcesFit (in every profile) filtered and scored. Per pod, these
// tell an arm that does more work (more attempts, more nodes looked at)
// from one whose work costs more, which CPU time alone cannot.
type schedulerWork struct {
	Attempts      float64 `json:"attempts"`
	NodesFiltered float64 `json:"nodesFiltered"`
	NodesScored   float64 `json:"nodesScored"`
	// APIRequests counts the API server's requests by verb and resource
	// ("PATCH pods"), from every client of the process: the scheduler's,
	// and the harness's few (it creates pods before the start and deletes
	// them after the end, outside the interval); and the watch events it
	// sent, by resource ("watch events pods").
	APIRequests map[string]float64 `json:"apiRequests,omitempty"`
}

const (
	attemptsMetric   = "scheduler_schedule_attempts_total"
	requestsMetric   = "apiserver_request_total"
	watchMetric      = "apiserver_watch_events_total"
	evaluationMetric = "scheduler_plugin_evaluation_total"
	workPlugin       = "NodeResourcesFit"
)

// readSchedulerWork sums the counters over every profile and result; the
// counters live as long as the process, so an arm's work is the difference
// of two readings.
func readSchedulerWork() (schedulerWork, error) {
	families, err := legacyregistry.DefaultGatherer.Gather()
	if err != nil {
		return schedulerWork{}, fmt.Errorf("reading the scheduler's metrics: %w", err)
	}
	w := schedulerWork{APIRequests: map[string]float64{}}
	for _, f := range families {
		switch f.GetName() {
		case requestsMetric:
			for _, m := range f.GetMetric() {
				key := label(m, "verb") + " " + label(m, "resource")
				if sub := label(m, "subresource"); sub != "" {
					key += "/" + sub
				}
				w.APIRequests[key] += m.GetCounter().GetValue()
			}
		case watchMetric:
			// Events the API server sent to all watchers: every watch of a
			// resource (a scheduler's informers, the harness's) gets each.
			for _, m := range f.GetMetric() {
				w.APIRequests["watch events "+label(m, "resource")] += m.GetCounter().GetValue()
			}
		case attemptsMetric:
			for _, m := range f.GetMetric() {
				w.Attempts += m.GetCounter().GetValue()
			}
		case evaluationMetric:
			for _, m := range f.GetMetric() {
				if label(m, "plugin") != workPlugin {
					continue
				}
				switch label(m, "extension_point") {
				case "Filter":
					w.NodesFiltered += m.GetCounter().GetValue()
				case "Score":
					w.NodesScored += m.GetCounter().GetValue()
				}
			}
		}
	}
	return w, nil
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// perPod is the work between two readings, per pod.
func (w schedulerWork) perPod(before schedulerWork, pods int) schedulerWork {
	n := float64(max(pods, 1))
	out := schedulerWork{
		Attempts:      (w.Attempts - before.Attempts) / n,
		NodesFiltered: (w.NodesFiltered - before.NodesFiltered) / n,
		NodesScored:   (w.NodesScored - before.NodesScored) / n,
		APIRequests:   map[string]float64{},
	}
	for k, v := range w.APIRequests {
		// Below one request per hundred pods is background (leases,
		// endpoints), not the arm's.
		if d := (v - before.APIRequests[k]) / n; d >= 0.01 {
			out.APIRequests[k] = d
		}
	}
	return out
}

func (w *schedulerWork) text() string {
	if w == nil {
		return ""
	}
	var reqs []string
	for _, k := range slices.Sorted(maps.Keys(w.APIRequests)) {
		reqs = append(reqs, fmt.Sprintf("%s %.2f", k, w.APIRequests[k]))
	}
	return fmt.Sprintf("; per pod: %.2f attempts, %.0f nodes filtered, %.0f scored; API requests per pod: %s",
		w.Attempts, w.NodesFiltered, w.NodesScored, strings.Join(reqs, ", "))
}

// filtered and scored read a possibly absent count as 0, for the tables.
func (w *schedulerWork) filtered() float64 {
	if w == nil {
		return 0
	}
	return w.NodesFiltered
}

func (w *schedulerWork) scored() float64 {
	if w == nil {
		return 0
	}
	return w.NodesScored
}
