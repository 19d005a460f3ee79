package datalocality

import (
	"math"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	locuslisters "locus.dev/locus/pkg/generated/listers/locus/v1alpha1"
)

const (
	testNS  = "ml"
	annData = locusv1alpha1.AnnotationDatasets
	annWait = locusv1alpha1.AnnotationLocalityWait
	gi      = int64(1) << 30
	ti      = int64(1) << 40
)

func node(name, zone, region string) *v1.Node {
	w := st.MakeNode().Name(name).Label(v1.LabelHostname, name)
	if zone != "" {
		w = w.Label(v1.LabelTopologyZone, zone)
	}
	if region != "" {
		w = w.Label(v1.LabelTopologyRegion, region)
	}
	return w.Obj()
}

// testNodes: n1 and n2 in zone a, n3 in zone b (all region r1), n4 in zone
// c of region r2, and h5 whose hostname label differs from its name.
func testNodes() []*v1.Node {
	h5 := node("n5", "c", "r2")
	h5.Labels[v1.LabelHostname] = "host-5"
	return []*v1.Node{node("n1", "a", "r1"), node("n2", "a", "r1"), node("n3", "b", "r1"), node("n4", "c", "r2"), h5}
}

type loc struct {
	node, zone, region string
	bytes              string
}

func dataset(name string, locs ...loc) *locusv1alpha1.Dataset {
	ds := &locusv1alpha1.Dataset{ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: name}}
	for _, l := range locs {
		ds.Spec.Locations = append(ds.Spec.Locations, locusv1alpha1.DatasetLocation{
			Node: l.node, Zone: l.zone, Region: l.region, Bytes: resource.MustParse(l.bytes),
		})
	}
	return ds
}

// testDatasets live in testNS.
func testDatasets() []*locusv1alpha1.Dataset {
	return []*locusv1alpha1.Dataset{
		dataset("cached", loc{node: "n1", bytes: "100Gi"}, loc{zone: "a", bytes: "1Ti"}, loc{region: "r1", bytes: "2Ti"}),
		dataset("zonal", loc{zone: "b", bytes: "1Ti"}),
		dataset("regional", loc{region: "r2", bytes: "1Ti"}),
		dataset("stale-cache", loc{node: "gone", bytes: "100Gi"}, loc{zone: "b", bytes: "10Gi"}),
		dataset("empty", loc{zone: "a", bytes: "0"}),
	}
}

func boundPVC(name, volume, capacity string) *v1.PersistentVolumeClaim {
	pvc := st.MakePersistentVolumeClaim().Name(name).Namespace(testNS).VolumeName(volume).Obj()
	if capacity != "" {
		pvc.Status.Capacity = v1.ResourceList{v1.ResourceStorage: resource.MustParse(capacity)}
	}
	return pvc
}

// testVolumes are claims in testNS and their volumes.
func testVolumes() ([]*v1.PersistentVolumeClaim, []*v1.PersistentVolume) {
	requested := boundPVC("requested", "zonal-pv", "")
	requested.Spec.Resources.Requests = v1.ResourceList{v1.ResourceStorage: resource.MustParse("20Gi")}
	byName := st.MakePersistentVolume().Name("by-name-pv").Capacity(v1.ResourceList{v1.ResourceStorage: resource.MustParse("5Gi")}).Obj()
	byName.Spec.NodeAffinity = &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
		MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{"n2"}}},
	}}}}
	return []*v1.PersistentVolumeClaim{
			boundPVC("local", "local-pv", "50Gi"),
			boundPVC("zonal", "zonal-pv", "200Gi"),
			boundPVC("two-zones", "two-zones-pv", "300Gi"),
			boundPVC("legacy", "legacy-pv", "1Gi"),
			boundPVC("regional", "regional-pv", "2Gi"),
			boundPVC("network", "network-pv", "3Gi"),
			boundPVC("by-name", "by-name-pv", ""),
			requested,
			st.MakePersistentVolumeClaim().Name("pending").Namespace(testNS).Obj(),
			boundPVC("p-scratch", "zonal-pv", "7Gi"),
		}, []*v1.PersistentVolume{
			st.MakePersistentVolume().Name("local-pv").NodeAffinityIn(v1.LabelHostname, []string{"host-5"}).Obj(),
			st.MakePersistentVolume().Name("zonal-pv").Label(v1.LabelTopologyZone, "c").Obj(),
			st.MakePersistentVolume().Name("two-zones-pv").NodeAffinityIn(v1.LabelTopologyZone, []string{"a", "b"}).Label(v1.LabelTopologyZone, "ignored").Obj(),
			st.MakePersistentVolume().Name("legacy-pv").Label(legacyZoneLabel, "a__b").Obj(),
			st.MakePersistentVolume().Name("regional-pv").NodeAffinityIn(v1.LabelTopologyRegion, []string{"r2"}).Obj(),
			st.MakePersistentVolume().Name("network-pv").Obj(),
			byName,
		}
}

func testGatherer(t *testing.T) *gatherer {
	t.Helper()
	dsIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	for _, ds := range testDatasets() {
		if err := dsIndexer.Add(ds); err != nil {
			t.Fatal(err)
		}
	}
	pvcIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	pvIndexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	pvcs, pvs := testVolumes()
	for _, pvc := range pvcs {
		if err := pvcIndexer.Add(pvc); err != nil {
			t.Fatal(err)
		}
	}
	for _, pv := range pvs {
		if err := pvIndexer.Add(pv); err != nil {
			t.Fatal(err)
		}
	}
	return &gatherer{
		datasets: locuslisters.NewDatasetLister(dsIndexer),
		claims:   corelisters.NewPersistentVolumeClaimLister(pvcIndexer),
		volumes:  corelisters.NewPersistentVolumeLister(pvIndexer),
	}
}

func dataPod(datasets string) *st.PodWrapper {
	w := st.MakePod().Name("p").Namespace(testNS).UID("p")
	if datasets != "" {
		w = w.Annotation(annData, datasets)
	}
	return w
}

func TestGather(t *testing.T) {
	tests := []struct {
		name        string
		pod         *v1.Pod
		want        *Data
		wantMissing []string
	}{
		{name: "no data", pod: dataPod("").Obj(), want: &Data{}},
		{
			name: "a dataset at every level",
			pod:  dataPod("cached").Obj(),
			want: &Data{Nodes: map[string]int64{"n1": 100 * gi}, Zones: map[string]int64{"a": ti}, Regions: map[string]int64{"r1": 2 * ti}},
		},
		{
			name: "datasets add up, blanks and repeats in the annotation are ignored",
			pod:  dataPod(" cached, zonal,,cached ,stale-cache").Obj(),
			want: &Data{
				Nodes:   map[string]int64{"n1": 100 * gi, "gone": 100 * gi},
				Zones:   map[string]int64{"a": ti, "b": ti + 10*gi},
				Regions: map[string]int64{"r1": 2 * ti},
			},
		},
		{
			name:        "missing datasets are reported, the rest still counts",
			pod:         dataPod("nope,zonal,also-nope").Obj(),
			want:        &Data{Zones: map[string]int64{"b": ti}},
			wantMissing: []string{"nope", "also-nope"},
		},
		{
			name:        "datasets are looked up in the pod's namespace",
			pod:         dataPod("zonal").Namespace("other").Obj(),
			want:        &Data{},
			wantMissing: []string{"zonal"},
		},
		{name: "an entry with zero bytes counts for nothing", pod: dataPod("empty").Obj(), want: &Data{}},
		{
			name: "a node-local volume counts on its host, with the claim's capacity",
			pod:  dataPod("").PVC("local").Obj(),
			want: &Data{Hostnames: map[string]int64{"host-5": 50 * gi}},
		},
		{
			name: "a volume without node affinity counts in its labelled zone",
			pod:  dataPod("").PVC("zonal").Obj(),
			want: &Data{Zones: map[string]int64{"c": 200 * gi}},
		},
		{
			name: "node affinity wins over labels; each zone of the volume counts",
			pod:  dataPod("").PVC("two-zones").Obj(),
			want: &Data{Zones: map[string]int64{"a": 300 * gi, "b": 300 * gi}},
		},
		{
			name: "a legacy multi-zone label",
			pod:  dataPod("").PVC("legacy").Obj(),
			want: &Data{Zones: map[string]int64{"a": gi, "b": gi}},
		},
		{
			name: "a regional volume",
			pod:  dataPod("").PVC("regional").Obj(),
			want: &Data{Regions: map[string]int64{"r2": 2 * gi}},
		},
		{
			name: "a volume pinned by node name, sized by the volume",
			pod:  dataPod("").PVC("by-name").Obj(),
			want: &Data{Nodes: map[string]int64{"n2": 5 * gi}},
		},
		{
			name: "a claim without capacity yet counts what it requested",
			pod:  dataPod("").PVC("requested").Obj(),
			want: &Data{Zones: map[string]int64{"c": 20 * gi}},
		},
		{
			name: "a generic ephemeral volume's claim; unknown, pending and unlocated claims add nothing",
			pod: dataPod("").PVC("pending").PVC("network").PVC("no-such-claim").
				Volume(v1.Volume{Name: "scratch", VolumeSource: v1.VolumeSource{Ephemeral: &v1.EphemeralVolumeSource{}}}).Obj(),
			want: &Data{Zones: map[string]int64{"c": 7 * gi}},
		},
		{
			name: "datasets and volumes together",
			pod:  dataPod("zonal").PVC("zonal").PVC("zonal").Obj(),
			want: &Data{Zones: map[string]int64{"b": ti, "c": 200 * gi}},
		},
	}
	g := testGatherer(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := g.gather(tt.pod)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("data (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantMissing, missing); diff != "" {
				t.Errorf("missing (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestDataLevelAndScore(t *testing.T) {
	d := &Data{
		Nodes:     map[string]int64{"n1": 100},
		Hostnames: map[string]int64{"host-5": 40},
		Zones:     map[string]int64{"a": 1000, "c": 10},
		Regions:   map[string]int64{"r1": 2000},
	}
	nodes := testNodes()
	tests := []struct {
		node      *v1.Node
		wantLevel Level
		wantScore float64
	}{
		{node: nodes[0], wantLevel: LevelNode, wantScore: 100 + 0.5*1000 + 0.1*2000},
		{node: nodes[1], wantLevel: LevelZone, wantScore: 0.5*1000 + 0.1*2000},
		{node: nodes[2], wantLevel: LevelRegion, wantScore: 0.1 * 2000},
		{node: nodes[3], wantLevel: LevelZone, wantScore: 0.5 * 10},
		{node: nodes[4], wantLevel: LevelNode, wantScore: 40 + 0.5*10},
		{node: st.MakeNode().Name("bare").Obj(), wantLevel: LevelNone, wantScore: 0},
	}
	for _, tt := range tests {
		t.Run(tt.node.Name, func(t *testing.T) {
			if got := d.LevelOf(tt.node); got != tt.wantLevel {
				t.Errorf("LevelOf() = %v, want %v", got, tt.wantLevel)
			}
			if got := d.Score(tt.node, 0.5, 0.1); math.Abs(got-tt.wantScore) > 1e-9 {
				t.Errorf("Score() = %v, want %v", got, tt.wantScore)
			}
		})
	}
	var nilData *Data
	if !nilData.Empty() || nilData.LevelOf(nodes[0]) != LevelNone {
		t.Errorf("nil data must be empty and near nothing")
	}
}

func TestAddSaturates(t *testing.T) {
	d := &Data{}
	d.add(&d.Zones, "a", math.MaxInt64-1)
	d.add(&d.Zones, "a", 10)
	if got := d.Zones["a"]; got != math.MaxInt64 {
		t.Errorf("bytes = %d, want them capped at MaxInt64", got)
	}
}

func TestPlacementNote(t *testing.T) {
	d := &Data{
		Nodes:   map[string]int64{"worker-7": 400 << 30},
		Zones:   map[string]int64{"us-east-1a": 1 << 40},
		Regions: map[string]int64{"us-east-1": 1 << 40},
	}
	tests := []struct {
		node *v1.Node
		want string
	}{
		{
			node: st.MakeNode().Name("worker-7").Label(v1.LabelTopologyZone, "us-east-1a").Label(v1.LabelTopologyRegion, "us-east-1").Obj(),
			want: "node-level locality on worker-7: 400Gi on the node, 1Ti in its zone, 1Ti in its region",
		},
		{
			node: st.MakeNode().Name("worker-9").Label(v1.LabelTopologyZone, "us-east-1b").Label(v1.LabelTopologyRegion, "us-east-1").Obj(),
			want: "region-level locality on worker-9: 1Ti in its region",
		},
		{
			node: st.MakeNode().Name("far").Label(v1.LabelTopologyRegion, "eu-west-1").Obj(),
			want: "no locality on far: none of the pod's data is on the node, in its zone or in its region",
		},
	}
	for _, tc := range tests {
		if got := PlacementNote(d, tc.node, d.LevelOf(tc.node)); got != tc.want {
			t.Errorf("PlacementNote(%s) = %q, want %q", tc.node.Name, got, tc.want)
		}
	}
}

// The nodes holding data are the Dataset entries' nodes and the nodes whose
// hostname a local volume names.
func TestNodesHolding(t *testing.T) {
	for _, tc := range []struct {
		name string
		data *Data
		want []string
	}{
		{name: "dataset nodes", data: &Data{Nodes: map[string]int64{"n1": 1, "n3": 1}, Zones: map[string]int64{"a": 1}}, want: []string{"n1", "n3"}},
		{name: "a local volume's hostname", data: &Data{Nodes: map[string]int64{"n1": 1}, Hostnames: map[string]int64{"host-5": 1}}, want: []string{"n1", "n5"}},
		{name: "zones only", data: &Data{Zones: map[string]int64{"a": 1}}, want: []string{}},
		{name: "no data", data: nil, want: []string{}},
	} {
		if got := sets.List(tc.data.nodesHolding(nodeInfos())); !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}
