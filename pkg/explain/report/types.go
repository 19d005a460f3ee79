package report

import (
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Verdict is what would become of a pod now.
type Verdict string

const (
	// Placed: the pod would be bound to node (the feasible node with the
	// highest total score).
	Placed Verdict = "placed"
	// Held (simulate only): the pod is reserved on node but waits for the
	// rest of its gang, which did not all fit; unless they come, it is
	// released and stays pending.
	Held Verdict = "held"
	// Waits: the pod would stay pending; reason says why.
	Waits Verdict = "waits"
	// Unknown: the nodes could not be read (see unavailable), and nothing
	// that does not depend on them turns the pod away.
	Unknown Verdict = "unknown"
)

// Node verdicts in PodResult.nodes.
const (
	NodeBest     = "best"
	NodeFeasible = "feasible"
	NodeRejected = "rejected"
)

// Explanation is `kubectl locus explain POD -o json|yaml`: one scheduling
// cycle of the pod, run now in kubectl-locus on a copy of the cluster's
// state, as if the pod were not yet bound.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Explanation struct {
	metav1.TypeMeta `json:",inline"`

	// Pod is the pod as read from the cluster.
	Pod PodInfo `json:"pod"`
	// Profile is the scheduler profile that the cycle ran.
	Profile Profile `json:"profile"`
	// EvaluatedAt is when the cycle ran.
	EvaluatedAt metav1.Time `json:"evaluatedAt"`
	// Result is the cycle: where the pod would be placed now, or why it
	// would wait, node by node.
	Result PodResult `json:"result"`
	// Current is how the pod's node fares now; only for a bound pod.
	Current *CurrentNode `json:"current,omitempty"`
	// Events are the events about the pod that tell its scheduling story,
	// oldest first.
	Events []Event `json:"events"`
	// Unavailable is what kubectl-locus could not read, and what the
	// explanation lacks for it. Empty when it read everything.
	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// Simulation is `kubectl locus simulate -f FILE -o json|yaml`: the pods of
// the files scheduled one by one in the queue's order on a copy of the
// cluster's state. Nothing was created.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Simulation struct {
	metav1.TypeMeta `json:",inline"`

	// Profile is the scheduler profile that placed the pods.
	Profile Profile `json:"profile"`
	// SimulatedAt is when the simulation ran.
	SimulatedAt metav1.Time `json:"simulatedAt"`
	// Nodes is how many nodes the pods were placed on (the cluster's, with
	// the files' Nodes layered over them).
	Nodes int `json:"nodes"`
	// Summary counts the results by verdict.
	Summary SimulationSummary `json:"summary"`
	// Results are the pods in the order they were scheduled.
	Results []PodResult `json:"results"`
	// Skipped are the objects of the files that simulate does not read.
	Skipped []ObjectRef `json:"skipped,omitempty"`
	// Unavailable is what kubectl-locus could not read from the cluster.
	Unavailable []Unavailable `json:"unavailable,omitempty"`
}

// SimulationSummary counts a simulation's results.
type SimulationSummary struct {
	// Pods is how many pods were simulated.
	Pods int `json:"pods"`
	// Placed is how many would be bound.
	Placed int `json:"placed"`
	// Held is how many would be reserved for a gang that does not form.
	Held int `json:"held"`
	// Waiting is how many would stay pending.
	Waiting int `json:"waiting"`
	// Unschedulable is held + waiting: the pods that would not be bound
	// now. A CI gate checks that it is 0 (or runs simulate with
	// --fail-on-pending).
	Unschedulable int `json:"unschedulable"`
}

// PodRef names a pod.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

// ObjectRef names an object of a manifest.
type ObjectRef struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name"`
	// Source is the file it came from.
	Source string `json:"source,omitempty"`
}

// Profile is a scheduler profile and where its configuration came from.
type Profile struct {
	// SchedulerName is the profile's schedulerName.
	SchedulerName string `json:"schedulerName"`
	// Source is where the KubeSchedulerConfiguration was read: "ConfigMap
	// kube-system/locus-scheduler-config", a --scheduler-config file, or
	// the configuration built into kubectl-locus.
	Source string `json:"source"`
}

// PodInfo is a pod as read from the cluster.
type PodInfo struct {
	Namespace     string    `json:"namespace"`
	Name          string    `json:"name"`
	UID           types.UID `json:"uid,omitempty"`
	SchedulerName string    `json:"schedulerName"`
	// Requests are the pod's effective requests (containers, init
	// containers and overhead, as the scheduler counts them).
	Requests v1.ResourceList `json:"requests,omitempty"`
	// Annotations are the pod's locus.dev/ annotations.
	Annotations map[string]string `json:"annotations,omitempty"`
	// Gang is the pod's PodGroup (label scheduling.x-k8s.io/pod-group).
	Gang string `json:"gang,omitempty"`
	// Node is the node the pod is bound to; empty while pending.
	Node string `json:"node,omitempty"`
	// Pending is true when the pod is bound to no node.
	Pending bool `json:"pending"`
	// PendingReason is the scheduler's last word on a pending pod (its
	// PodScheduled condition: "Unschedulable: 0/3 nodes are available:
	// ...").
	PendingReason string `json:"pendingReason,omitempty"`
}

// CurrentNode is how a bound pod's node fares now.
type CurrentNode struct {
	Name string `json:"name"`
	// Status is one of fits (the node would still take the pod; score is
	// its total), noLongerFits (a Filter plugin rejects it now: see the
	// node in result.nodes), notAdmitted (a PreFilter plugin turns the
	// pod away as a whole, result.preFilter), gone (no such node now), or
	// unknown (the nodes could not be read).
	Status string `json:"status"`
	Score  *int64 `json:"score,omitempty"`
}

// The statuses of CurrentNode.
const (
	CurrentFits         = "fits"
	CurrentNoLongerFits = "noLongerFits"
	CurrentNotAdmitted  = "notAdmitted"
	CurrentGone         = "gone"
	CurrentUnknown      = "unknown"
)

// PodResult is one pod's scheduling cycle: explain's result, and each of
// simulate's results.
type PodResult struct {
	// Order is the pod's place in simulate's queue order, from 1; 0 (and
	// left out) in an Explanation.
	Order int    `json:"order,omitempty"`
	Pod   PodRef `json:"pod"`
	// Verdict is placed, held, waits or unknown.
	Verdict Verdict `json:"verdict"`
	// Pending is true unless the verdict is placed: the pod would not be
	// bound now.
	Pending bool `json:"pending"`
	// Node is where the pod would be placed (placed) or is reserved (held).
	Node string `json:"node,omitempty"`
	// Score is the pod's total score on Node.
	Score *int64 `json:"score,omitempty"`
	// Reason says in one line why the pod would wait or is held, in the
	// manner of kube-scheduler's FailedScheduling message ("0/3 nodes are
	// available: 2 Compliance: missing certification pci-dss; 1
	// NodeResourcesFit: Insufficient cpu"), or why the verdict is unknown.
	Reason string `json:"reason,omitempty"`
	// Gate is set when a PreEnqueue plugin keeps the pod out of the
	// scheduling queue: no cycle ran.
	Gate *PluginReason `json:"gate,omitempty"`
	// PreFilter is set when a PreFilter plugin turns the pod away as a
	// whole (its quota, a malformed annotation, an incomplete gang).
	PreFilter *PluginReason `json:"preFilter,omitempty"`
	// NodesEvaluated and NodesFeasible count the nodes of the cycle.
	NodesEvaluated int `json:"nodesEvaluated"`
	NodesFeasible  int `json:"nodesFeasible"`
	// Rejections summarize the Filter plugins' verdicts over the nodes: one
	// entry per plugin and reason, with the nodes it rejects, most nodes
	// first. Every failing plugin of every node counts, not only the first.
	Rejections []Rejection `json:"rejections,omitempty"`
	// ScorePlugins are the Score plugins that ran, in the profile's order.
	ScorePlugins []string `json:"scorePlugins,omitempty"`
	// Nodes are the nodes one by one: the feasible ones by total score,
	// highest first, then the others by name. Always in an Explanation; in
	// a Simulation with --details.
	Nodes []NodeResult `json:"nodes,omitempty"`
}

// PluginReason is one plugin's verdict.
type PluginReason struct {
	Plugin string `json:"plugin"`
	Reason string `json:"reason"`
	// Unresolvable: preemption would not help (UnschedulableAndUnresolvable).
	Unresolvable bool `json:"unresolvable,omitempty"`
}

// Rejection is one plugin's reason to reject nodes, and those nodes.
type Rejection struct {
	Plugin       string `json:"plugin"`
	Reason       string `json:"reason"`
	Unresolvable bool   `json:"unresolvable,omitempty"`
	// NodeCount is len(nodes).
	NodeCount int      `json:"nodeCount"`
	Nodes     []string `json:"nodes"`
}

// NodeResult is one node's verdict for a pod.
type NodeResult struct {
	Name string `json:"name"`
	// Verdict is best (where the pod would go), feasible or rejected.
	Verdict string `json:"verdict"`
	// Current is true for the node the pod is bound to (explain).
	Current bool `json:"current,omitempty"`
	// Failures are the Filter plugins that reject the node, in the
	// profile's order (the scheduler stops at the first).
	Failures []PluginReason `json:"failures,omitempty"`
	// Scores are the weighted scores of the Score plugins, by plugin, and
	// Total their sum; only for feasible nodes.
	Scores map[string]int64 `json:"scores,omitempty"`
	Total  *int64           `json:"total,omitempty"`
}

// Event is an event about the pod.
type Event struct {
	LastSeen metav1.Time `json:"lastSeen"`
	Type     string      `json:"type"`
	Reason   string      `json:"reason"`
	// From is the component that reported it.
	From    string `json:"from,omitempty"`
	Message string `json:"message"`
}

// Unavailable is something that kubectl-locus could not read, and what its
// answer lacks for it.
type Unavailable struct {
	// Resource is what could not be listed or read: "nodes", "pods",
	// "elasticquotas.scheduling.x-k8s.io", "events", ...
	Resource string `json:"resource"`
	// ReadNamespaces, when set, are the namespaces where the resource was
	// read instead, after listing it in all namespaces was refused.
	ReadNamespaces []string `json:"readNamespaces,omitempty"`
	// Reason is the API server's reason (Forbidden, NotFound, ...).
	Reason metav1.StatusReason `json:"reason"`
	// Message is the API server's message.
	Message string `json:"message"`
	// Impact says what the answer lacks for it.
	Impact string `json:"impact"`
}

// QuotaReport is `kubectl locus quota -o json|yaml`.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type QuotaReport struct {
	metav1.TypeMeta `json:",inline"`

	// Items are the ElasticQuotas by namespace and name.
	Items []QuotaUsage `json:"items"`
}

// QuotaUsage is one ElasticQuota, with only the resources that it limits.
type QuotaUsage struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Min is guaranteed, Max never exceeded.
	Min v1.ResourceList `json:"min,omitempty"`
	Max v1.ResourceList `json:"max,omitempty"`
	// Used is status.used (locus-scheduler keeps it current), Borrowed the
	// part of it beyond min.
	Used     v1.ResourceList `json:"used,omitempty"`
	Borrowed v1.ResourceList `json:"borrowed,omitempty"`
	// PendingPods counts the namespace's pending pods of locus-scheduler.
	PendingPods int `json:"pendingPods"`
}

// DatasetReport is `kubectl locus datasets -o json|yaml`.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type DatasetReport struct {
	metav1.TypeMeta `json:",inline"`

	// Items are the Datasets by namespace and name.
	Items []DatasetUsage `json:"items"`
	// Missing are the Datasets that pods name but that do not exist.
	Missing []DatasetUsage `json:"missing,omitempty"`
}

// DatasetUsage is a Dataset and the pods that read it.
type DatasetUsage struct {
	Namespace string            `json:"namespace"`
	Name      string            `json:"name"`
	Locations []DatasetLocation `json:"locations,omitempty"`
	// Pods counts the unfinished pods that name the Dataset in their
	// locus.dev/datasets annotation, PendingPods those of them not bound.
	Pods        int `json:"pods"`
	PendingPods int `json:"pendingPods"`
}

// DatasetLocation is where a share of a Dataset lives: one of node, zone
// and region.
type DatasetLocation struct {
	Node   string            `json:"node,omitempty"`
	Zone   string            `json:"zone,omitempty"`
	Region string            `json:"region,omitempty"`
	Bytes  resource.Quantity `json:"bytes"`
	// NodeMissing is true when node names a node that does not exist
	// (the location counts for nothing).
	NodeMissing bool `json:"nodeMissing,omitempty"`
}

// Version is `kubectl locus version -o json|yaml`.
//
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Version struct {
	metav1.TypeMeta `json:",inline"`

	// Locus is the locus release of kubectl-locus.
	Locus string `json:"locus"`
	// Kubernetes is the Kubernetes release it is built on.
	Kubernetes string `json:"kubernetes"`
}

// NewExplanation returns an Explanation with its apiVersion and kind set.
func NewExplanation() *Explanation { return &Explanation{TypeMeta: typeMeta(KindExplanation)} }

// NewSimulation returns a Simulation with its apiVersion and kind set.
func NewSimulation() *Simulation { return &Simulation{TypeMeta: typeMeta(KindSimulation)} }

// NewQuotaReport returns a QuotaReport with its apiVersion and kind set.
func NewQuotaReport() *QuotaReport {
	return &QuotaReport{TypeMeta: typeMeta(KindQuotaReport), Items: []QuotaUsage{}}
}

// NewDatasetReport returns a DatasetReport with its apiVersion and kind set.
func NewDatasetReport() *DatasetReport {
	return &DatasetReport{TypeMeta: typeMeta(KindDatasetReport), Items: []DatasetUsage{}}
}

// NewVersion returns a Version with its apiVersion and kind set.
func NewVersion() *Version { return &Version{TypeMeta: typeMeta(KindVersion)} }
