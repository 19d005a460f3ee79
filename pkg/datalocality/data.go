package datalocality

import (
	"math"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	fwk "k8s.io/kube-scheduler/framework"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	locuslisters "locus.dev/locus/pkg/generated/listers/locus/v1alpha1"
	"locus.dev/locus/pkg/metrics"
)

// Level is how close a node is to a pod's data. Lower is closer.
type Level int

const (
	// LevelNode: the node holds the data.
	LevelNode Level = iota
	// LevelZone: the data is in the node's zone.
	LevelZone
	// LevelRegion: the data is in the node's region.
	LevelRegion
	// LevelNone: the node is not near any of the pod's data.
	LevelNone
)

// String returns the level's name, as in metrics and reasons.
func (l Level) String() string {
	switch l {
	case LevelNode:
		return metrics.LevelNode
	case LevelZone:
		return metrics.LevelZone
	case LevelRegion:
		return metrics.LevelRegion
	default:
		return metrics.LevelNone
	}
}

// Legacy topology labels, still set by some providers and on older volumes.
const (
	legacyZoneLabel   = "failure-domain.beta.kubernetes.io/zone"
	legacyRegionLabel = "failure-domain.beta.kubernetes.io/region"
)

// Data is where a pod's data lives: bytes by place, at each level. It is
// computed once per pod and scheduling cycle, and read-only afterwards.
type Data struct {
	// Nodes holds bytes by node name (Dataset node entries).
	Nodes map[string]int64
	// Hostnames holds bytes by kubernetes.io/hostname label value
	// (node-local volumes, whose node affinity names the hostname).
	Hostnames map[string]int64
	// Zones and Regions hold bytes by topology.kubernetes.io/zone and
	// topology.kubernetes.io/region label value.
	Zones   map[string]int64
	Regions map[string]int64
}

// Empty says whether the pod reads no located data.
func (d *Data) Empty() bool {
	return d == nil || len(d.Nodes)+len(d.Hostnames)+len(d.Zones)+len(d.Regions) == 0
}

func (d *Data) add(m *map[string]int64, key string, bytes int64) {
	if key == "" || bytes <= 0 {
		return // an entry with no bytes counts for nothing
	}
	if *m == nil {
		*m = map[string]int64{}
	}
	(*m)[key] = addSaturating((*m)[key], bytes)
}

func addSaturating(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Bytes returns the bytes of the pod's data that the node holds, that are in
// its zone, and that are in its region.
func (d *Data) Bytes(node *v1.Node) (onNode, inZone, inRegion int64) {
	if d == nil || node == nil {
		return 0, 0, 0
	}
	// Score calls this for every node: read a label only when some data
	// lives at its level.
	onNode = d.Nodes[node.Name]
	if len(d.Hostnames) > 0 {
		onNode = addSaturating(onNode, d.Hostnames[hostname(node)])
	}
	if len(d.Zones) > 0 {
		if z := zone(node.Labels); z != "" {
			inZone = d.Zones[z]
		}
	}
	if len(d.Regions) > 0 {
		if r := region(node.Labels); r != "" {
			inRegion = d.Regions[r]
		}
	}
	return onNode, inZone, inRegion
}

// LevelOf returns the closest level at which the node is near the pod's data.
func (d *Data) LevelOf(node *v1.Node) Level {
	onNode, inZone, inRegion := d.Bytes(node)
	switch {
	case onNode > 0:
		return LevelNode
	case inZone > 0:
		return LevelZone
	case inRegion > 0:
		return LevelRegion
	default:
		return LevelNone
	}
}

// Closest is the closest level at which the data declares a location:
// node (a Dataset node entry or a node-local volume), zone, region, or none.
func (d *Data) Closest() Level {
	switch {
	case d == nil:
		return LevelNone
	case len(d.Nodes)+len(d.Hostnames) > 0:
		return LevelNode
	case len(d.Zones) > 0:
		return LevelZone
	case len(d.Regions) > 0:
		return LevelRegion
	default:
		return LevelNone
	}
}

// DataOf is where the given Datasets live, as the plugin reads them for a
// pod that names them (without the pod's volumes).
func DataOf(datasets ...*locusv1alpha1.Dataset) *Data {
	d := &Data{}
	for _, ds := range datasets {
		d.addDataset(ds)
	}
	return d
}

// Score is the node's weighted bytes: bytes on the node count fully, bytes
// in its zone zoneWeight, bytes in its region regionWeight.
func (d *Data) Score(node *v1.Node, zoneWeight, regionWeight float64) float64 {
	onNode, inZone, inRegion := d.Bytes(node)
	return float64(onNode) + zoneWeight*float64(inZone) + regionWeight*float64(inRegion)
}

// nodesHolding returns the names of the nodes that hold some of the data:
// the Dataset entries' node names that exist among nodes, and the nodes
// whose hostname label a local volume names (found by a walk of nodes only
// when there are such volumes).
func (d *Data) nodesHolding(nodes []fwk.NodeInfo) sets.Set[string] {
	held := sets.New[string]()
	if d == nil {
		return held
	}
	if len(d.Hostnames) == 0 {
		for name := range d.Nodes {
			held.Insert(name)
		}
		// Names of nodes that do not exist are dropped by the framework.
		return held
	}
	for _, ni := range nodes {
		if n := ni.Node(); n != nil && (d.Nodes[n.Name] > 0 || d.Hostnames[hostname(n)] > 0) {
			held.Insert(n.Name)
		}
	}
	return held
}

func hostname(node *v1.Node) string {
	if h, ok := node.Labels[v1.LabelHostname]; ok {
		return h
	}
	return node.Name
}

func zone(labels map[string]string) string {
	if z, ok := labels[v1.LabelTopologyZone]; ok {
		return z
	}
	return labels[legacyZoneLabel]
}

func region(labels map[string]string) string {
	if r, ok := labels[v1.LabelTopologyRegion]; ok {
		return r
	}
	return labels[legacyRegionLabel]
}

// DatasetNames returns the names in the pod's locus.dev/datasets annotation,
// in order, without blanks or repeats.
func DatasetNames(pod *v1.Pod) []string {
	value := pod.Annotations[locusv1alpha1.AnnotationDatasets]
	if value == "" {
		return nil
	}
	var names []string
	seen := map[string]bool{}
	for _, n := range strings.Split(value, ",") {
		n = strings.TrimSpace(n)
		if n == "" || seen[n] {
			continue
		}
		seen[n] = true
		names = append(names, n)
	}
	return names
}

// claimNames returns the names of the pod's PersistentVolumeClaims, including
// those of generic ephemeral volumes, each once.
func claimNames(pod *v1.Pod) []string {
	var names []string
	for _, vol := range pod.Spec.Volumes {
		name := ""
		switch {
		case vol.PersistentVolumeClaim != nil:
			name = vol.PersistentVolumeClaim.ClaimName
		case vol.Ephemeral != nil:
			name = pod.Name + "-" + vol.Name
		default:
			continue
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// readsData says, without any lookup, whether the pod may read located data.
func readsData(pod *v1.Pod) bool {
	if pod.Annotations[locusv1alpha1.AnnotationDatasets] != "" {
		return true
	}
	for _, vol := range pod.Spec.Volumes {
		if vol.PersistentVolumeClaim != nil || vol.Ephemeral != nil {
			return true
		}
	}
	return false
}

// gatherer reads a pod's data from informer caches.
type gatherer struct {
	datasets locuslisters.DatasetLister
	claims   corelisters.PersistentVolumeClaimLister
	volumes  corelisters.PersistentVolumeLister
}

// gather returns where the pod's data lives, and the names of the Datasets
// that the pod names but that do not exist.
func (g *gatherer) gather(pod *v1.Pod) (*Data, []string) {
	d := &Data{}
	var missing []string
	for _, name := range DatasetNames(pod) {
		ds, err := g.datasets.Datasets(pod.Namespace).Get(name)
		if err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, name)
			}
			continue
		}
		d.addDataset(ds)
	}
	for _, name := range claimNames(pod) {
		pvc, err := g.claims.PersistentVolumeClaims(pod.Namespace).Get(name)
		if err != nil || pvc.Spec.VolumeName == "" {
			continue // not bound yet: its location is not known
		}
		pv, err := g.volumes.Get(pvc.Spec.VolumeName)
		if err != nil {
			continue
		}
		d.addVolume(pv, claimBytes(pvc, pv))
	}
	return d, missing
}

func (d *Data) addDataset(ds *locusv1alpha1.Dataset) {
	for _, loc := range ds.Spec.Locations {
		bytes := quantityBytes(loc.Bytes)
		switch {
		case loc.Node != "":
			d.add(&d.Nodes, loc.Node, bytes)
		case loc.Zone != "":
			d.add(&d.Zones, loc.Zone, bytes)
		case loc.Region != "":
			d.add(&d.Regions, loc.Region, bytes)
		}
	}
}

// claimBytes is the claim's capacity: what it was given, else what it asked
// for, else the volume's size.
func claimBytes(pvc *v1.PersistentVolumeClaim, pv *v1.PersistentVolume) int64 {
	if q, ok := pvc.Status.Capacity[v1.ResourceStorage]; ok {
		return quantityBytes(q)
	}
	if q, ok := pvc.Spec.Resources.Requests[v1.ResourceStorage]; ok {
		return quantityBytes(q)
	}
	if q, ok := pv.Spec.Capacity[v1.ResourceStorage]; ok {
		return quantityBytes(q)
	}
	return 0
}

// maxBytes is the most bytes that an amount counts for.
var maxBytes = *resource.NewQuantity(math.MaxInt64, resource.DecimalSI)

// quantityBytes is q in bytes (a fraction rounded up): zero for a negative
// amount, and at most math.MaxInt64. Quantity.Value alone wraps past it
// ("9223372036854775808" reads as negative) or reads huge amounts such as
// 1e30 as zero: a location declaring that much would count for nothing.
func quantityBytes(q resource.Quantity) int64 {
	if q.Sign() <= 0 {
		return 0
	}
	if q.Cmp(maxBytes) >= 0 {
		return math.MaxInt64
	}
	return q.Value()
}

// addVolume adds a volume's bytes where the volume lives. Its node affinity
// says so most precisely: each term (terms are alternatives) counts at its
// closest level, a hostname, else a zone, else a region. A volume without
// node affinity falls back to its zone or region label (a legacy zone label
// may hold several zones joined by "__").
func (d *Data) addVolume(pv *v1.PersistentVolume, bytes int64) {
	if pv.Spec.NodeAffinity != nil && pv.Spec.NodeAffinity.Required != nil {
		found := false
		for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
			found = d.addTerm(term, bytes) || found
		}
		if found {
			return
		}
	}
	if z := zone(pv.Labels); z != "" {
		for _, z := range strings.Split(z, "__") {
			d.add(&d.Zones, z, bytes)
		}
		return
	}
	if r := region(pv.Labels); r != "" {
		d.add(&d.Regions, r, bytes)
	}
}

func (d *Data) addTerm(term v1.NodeSelectorTerm, bytes int64) bool {
	var names, hosts, zones, regions []string
	for _, f := range term.MatchFields {
		if f.Key == "metadata.name" && f.Operator == v1.NodeSelectorOpIn {
			names = append(names, f.Values...)
		}
	}
	for _, e := range term.MatchExpressions {
		if e.Operator != v1.NodeSelectorOpIn {
			continue
		}
		switch e.Key {
		case v1.LabelHostname:
			hosts = append(hosts, e.Values...)
		case v1.LabelTopologyZone, legacyZoneLabel:
			zones = append(zones, e.Values...)
		case v1.LabelTopologyRegion, legacyRegionLabel:
			regions = append(regions, e.Values...)
		}
	}
	switch {
	case len(names)+len(hosts) > 0:
		for _, n := range names {
			d.add(&d.Nodes, n, bytes)
		}
		for _, h := range hosts {
			d.add(&d.Hostnames, h, bytes)
		}
	case len(zones) > 0:
		for _, z := range zones {
			d.add(&d.Zones, z, bytes)
		}
	case len(regions) > 0:
		for _, r := range regions {
			d.add(&d.Regions, r, bytes)
		}
	default:
		return false
	}
	return true
}
