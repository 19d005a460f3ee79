package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/metrics"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

const (
	dlRegion = "us-east-1"
	dlZoneA  = "us-east-1a"
	dlZoneB  = "us-east-1b"
	dlZoneC  = "us-east-1c"
)

// dataLocalityCluster builds 100 nodes in three zones of one region: 94
// plain nodes (8 CPUs) spread over the zones, and six one-CPU cache nodes,
// cache-1 to cache-6, all in zone b, that each scenario fills or frees on
// its own.
func dataLocalityCluster(ctx context.Context, t *testing.T, env *testenv.Env) {
	t.Helper()
	zones := []string{dlZoneA, dlZoneB, dlZoneC}
	var nodes []testenv.NodeSpec
	for i := 0; i < 94; i++ {
		nodes = append(nodes, testenv.NodeSpec{Name: fmt.Sprintf("node-%02d", i), Labels: map[string]string{
			v1.LabelTopologyRegion: dlRegion, v1.LabelTopologyZone: zones[i%3],
		}})
	}
	for i := 1; i <= 6; i++ {
		nodes = append(nodes, testenv.NodeSpec{Name: fmt.Sprintf("cache-%d", i), CPU: "1", Labels: map[string]string{
			v1.LabelTopologyRegion: dlRegion, v1.LabelTopologyZone: dlZoneB,
		}})
	}
	for _, n := range nodes {
		if _, err := testenv.CreateNode(ctx, env.Client, n); err != nil {
			t.Fatal(err)
		}
	}
}

type dlLocation struct{ node, zone, region, bytes string }

func dlLocations(locs ...dlLocation) []locusv1alpha1.DatasetLocation {
	var out []locusv1alpha1.DatasetLocation
	for _, l := range locs {
		out = append(out, locusv1alpha1.DatasetLocation{Node: l.node, Zone: l.zone, Region: l.region, Bytes: resource.MustParse(l.bytes)})
	}
	return out
}

func TestDataLocality(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	dataLocalityCluster(ctx, t, env)
	c := env.Client
	// Custom resources speak JSON, not the protobuf of the test client.
	locusConfig := rest.CopyConfig(env.Config)
	locusConfig.ContentType = runtime.ContentTypeJSON
	locus, err := versioned.NewForConfig(locusConfig)
	if err != nil {
		t.Fatal(err)
	}
	// The Datasets that locus-scheduler sees, through the informer that the
	// plugin added to its informer factory.
	seenDatasets := env.Locus.Informers.InformerFor(&locusv1alpha1.Dataset{}, nil).GetStore()

	newNS := func(t *testing.T, name string) string {
		t.Helper()
		if err := testenv.CreateNamespace(ctx, c, name, nil); err != nil {
			t.Fatal(err)
		}
		return name
	}
	// putDataset creates or updates a Dataset and waits until the
	// scheduler has seen this version of it.
	putDataset := func(t *testing.T, ns, name string, locs ...dlLocation) {
		t.Helper()
		ds := &locusv1alpha1.Dataset{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec:       locusv1alpha1.DatasetSpec{URI: "s3://warehouse/" + name + "/", Locations: dlLocations(locs...)},
		}
		datasets := locus.LocusV1alpha1().Datasets(ns)
		got, err := datasets.Create(ctx, ds, metav1.CreateOptions{})
		if err != nil {
			old, getErr := datasets.Get(ctx, name, metav1.GetOptions{})
			if getErr != nil {
				t.Fatalf("creating Dataset %s/%s: %v", ns, name, err)
			}
			old.Spec = ds.Spec
			if got, err = datasets.Update(ctx, old, metav1.UpdateOptions{}); err != nil {
				t.Fatalf("updating Dataset %s/%s: %v", ns, name, err)
			}
		}
		err = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			obj, ok, err := seenDatasets.GetByKey(ns + "/" + name)
			return ok && obj.(*locusv1alpha1.Dataset).ResourceVersion == got.ResourceVersion, err
		})
		if err != nil {
			t.Fatalf("locus-scheduler did not see Dataset %s/%s: %v", ns, name, err)
		}
	}
	dataPod := func(ns, name, datasets, localityWait string) testenv.PodSpec {
		ann := map[string]string{locusv1alpha1.AnnotationDatasets: datasets}
		if localityWait != "" {
			ann[locusv1alpha1.AnnotationLocalityWait] = localityWait
		}
		return testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, Annotations: ann, CPU: "100m"}
	}
	create := func(t *testing.T, spec testenv.PodSpec) *v1.Pod {
		t.Helper()
		p, err := testenv.CreatePod(ctx, c, spec)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	bound := func(t *testing.T, ns, name string, timeout time.Duration) string {
		t.Helper()
		node, err := testenv.WaitForPodBound(ctx, c, ns, name, timeout)
		if err != nil {
			t.Fatal(err)
		}
		return node
	}
	zoneOf := func(t *testing.T, node string) string {
		t.Helper()
		n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Labels[v1.LabelTopologyZone]
	}
	// fill takes the whole CPU of a cache node with a pod bound to it
	// directly, and waits until locus-scheduler counts it.
	fill := func(t *testing.T, ns, node string) string {
		t.Helper()
		pod := testenv.NewPod(testenv.PodSpec{Namespace: ns, Name: "filler-" + node, CPU: "1"})
		pod.Spec.NodeName = node
		if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		lister := env.Locus.Informers.Core().V1().Pods().Lister()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			_, err := lister.Pods(ns).Get(pod.Name)
			return err == nil, nil
		}); err != nil {
			t.Fatalf("locus-scheduler did not see %s: %v", pod.Name, err)
		}
		return pod.Name
	}
	placements := func(t *testing.T, level string) float64 {
		t.Helper()
		v, err := testutil.GetCounterMetricValue(metrics.LocalityPlacements.WithLabelValues(level))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	waitPlacements := func(t *testing.T, level string, want float64) {
		t.Helper()
		if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
			return placements(t, level) == want, nil
		}); err != nil {
			t.Errorf("locus_locality_placements_total{level=%q} = %v, want %v", level, placements(t, level), want)
		}
	}

	t.Run("a pod lands on the node that caches its dataset", func(t *testing.T) {
		ns := newNS(t, "analytics")
		putDataset(t, ns, "sales-2026",
			dlLocation{node: "cache-1", bytes: "400Gi"},
			dlLocation{zone: dlZoneB, bytes: "1Ti"},
			dlLocation{region: dlRegion, bytes: "1Ti"})
		before := placements(t, metrics.LevelNode)
		// One pod after another, so each sees the one before on the node.
		for i := 0; i < 3; i++ {
			name := fmt.Sprintf("report-%d", i)
			create(t, dataPod(ns, name, "sales-2026", ""))
			if node := bound(t, ns, name, 30*time.Second); node != "cache-1" {
				t.Errorf("pod %s bound to %s, want cache-1, which holds its data", name, node)
			}
		}
		waitPlacements(t, metrics.LevelNode, before+3)
	})

	t.Run("with the cache node full, pods land in the dataset's zone", func(t *testing.T) {
		ns := newNS(t, "full-cache")
		putDataset(t, ns, "clicks",
			dlLocation{node: "cache-2", bytes: "400Gi"},
			dlLocation{zone: dlZoneB, bytes: "1Ti"})
		fill(t, ns, "cache-2")
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("etl-%d", i)
			create(t, dataPod(ns, name, "clicks", ""))
			node := bound(t, ns, name, 30*time.Second)
			if node == "cache-2" {
				t.Fatalf("pod %s bound to the full node cache-2", name)
			}
			if z := zoneOf(t, node); z != dlZoneB {
				t.Errorf("pod %s bound to %s in zone %s, want the dataset's zone %s", name, node, z, dlZoneB)
			}
		}
	})

	t.Run("with a locality wait, a pod waits for its cache node and takes it when room frees", func(t *testing.T) {
		ns := newNS(t, "wait-node")
		putDataset(t, ns, "features",
			dlLocation{node: "cache-3", bytes: "400Gi"},
			dlLocation{zone: dlZoneB, bytes: "1Ti"})
		filler := fill(t, ns, "cache-3")
		created := time.Now()
		create(t, dataPod(ns, "train", "features", "5s"))
		msg, err := testenv.WaitForPodUnschedulable(ctx, c, ns, "train", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "locality wait: ") || !strings.Contains(msg, "left for node-level locality, then zone") {
			t.Errorf("unschedulable message %q does not say that the pod waits for its node", msg)
		}
		time.Sleep(time.Second)
		if err := c.CoreV1().Pods(ns).Delete(ctx, filler, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
		node := bound(t, ns, "train", 10*time.Second)
		took := time.Since(created)
		if node != "cache-3" {
			t.Errorf("bound to %s, want cache-3, where room freed within the wait", node)
		}
		// Freeing room requeues the pod; it does not sit out the wait.
		if took >= 5*time.Second {
			t.Errorf("bound %v after creation, want it within the 5s wait", took)
		}
		t.Logf("bound to %s %v after creation: %q", node, took.Round(time.Millisecond), msg)
	})

	t.Run("with a locality wait, a pod falls back to the zone when the wait runs out", func(t *testing.T) {
		ns := newNS(t, "wait-zone")
		putDataset(t, ns, "embeddings",
			dlLocation{node: "cache-4", bytes: "400Gi"},
			dlLocation{zone: dlZoneB, bytes: "1Ti"})
		fill(t, ns, "cache-4")
		created := time.Now()
		create(t, dataPod(ns, "index", "embeddings", "5s"))
		if _, err := testenv.WaitForPodUnschedulable(ctx, c, ns, "index", 5*time.Second); err != nil {
			t.Fatal(err)
		}
		node := bound(t, ns, "index", 15*time.Second)
		took := time.Since(created)
		if z := zoneOf(t, node); node == "cache-4" || z != dlZoneB {
			t.Errorf("bound to %s in zone %s, want another node of zone %s", node, z, dlZoneB)
		}
		// Not before the wait ran out; soon after it (a timer requeues the
		// pod, not the scheduler's periodic flush of unschedulable pods).
		if took < 5*time.Second || took > 9*time.Second {
			t.Errorf("bound %v after creation, want between 5s and 9s", took)
		}
		t.Logf("bound to %s %v after creation", node, took.Round(time.Millisecond))
	})

	t.Run("a zonal volume pulls its pod to that zone", func(t *testing.T) {
		ns := newNS(t, "volumes")
		claim := bindZonalVolume(ctx, t, env, ns, "warehouse", dlZoneC, "200Gi")
		before := placements(t, metrics.LevelZone)
		spec := testenv.PodSpec{Namespace: ns, Name: "query", SchedulerName: plugins.SchedulerName, CPU: "100m"}
		pod := testenv.NewPod(spec)
		pod.Spec.Volumes = []v1.Volume{{Name: "data", VolumeSource: v1.VolumeSource{
			PersistentVolumeClaim: &v1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
		}}}
		if _, err := c.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		node := bound(t, ns, "query", 30*time.Second)
		if z := zoneOf(t, node); z != dlZoneC {
			t.Errorf("bound to %s in zone %s, want the volume's zone %s", node, z, dlZoneC)
		}
		// The plugin read the volume as zone-local data.
		waitPlacements(t, metrics.LevelZone, before+1)
	})

	t.Run("a Dataset moved to another node moves the next pod", func(t *testing.T) {
		ns := newNS(t, "moving")
		putDataset(t, ns, "models", dlLocation{node: "cache-5", bytes: "50Gi"})
		create(t, dataPod(ns, "serve-1", "models", ""))
		if node := bound(t, ns, "serve-1", 30*time.Second); node != "cache-5" {
			t.Errorf("first pod bound to %s, want cache-5", node)
		}
		putDataset(t, ns, "models", dlLocation{node: "cache-6", bytes: "50Gi"})
		create(t, dataPod(ns, "serve-2", "models", ""))
		if node := bound(t, ns, "serve-2", 30*time.Second); node != "cache-6" {
			t.Errorf("pod after the move bound to %s, want cache-6", node)
		}
	})

	t.Run("a malformed locality wait keeps the pod pending and names the value", func(t *testing.T) {
		ns := newNS(t, "bad-wait")
		create(t, dataPod(ns, "eager", "", "soon"))
		if _, err := testenv.WaitForPodEvent(ctx, c, ns, "eager", "FailedScheduling", `invalid locus.dev/locality-wait "soon"`, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		p, err := c.CoreV1().Pods(ns).Get(ctx, "eager", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "" {
			t.Errorf("pod with a malformed wait bound to %s", p.Spec.NodeName)
		}
	})

	t.Run("the CRD rejects a location that names none or several of node, zone, region", func(t *testing.T) {
		ns := newNS(t, "invalid-datasets")
		for name, loc := range map[string]locusv1alpha1.DatasetLocation{
			"none": {Bytes: resource.MustParse("1Gi")},
			"two":  {Node: "cache-1", Zone: dlZoneB, Bytes: resource.MustParse("1Gi")},
			"all":  {Node: "cache-1", Zone: dlZoneB, Region: dlRegion, Bytes: resource.MustParse("1Gi")},
		} {
			ds := &locusv1alpha1.Dataset{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec:       locusv1alpha1.DatasetSpec{Locations: []locusv1alpha1.DatasetLocation{loc}},
			}
			_, err := locus.LocusV1alpha1().Datasets(ns).Create(ctx, ds, metav1.CreateOptions{})
			if err == nil || !strings.Contains(err.Error(), "a location names exactly one of node, zone or region") {
				t.Errorf("Dataset %q: error = %v, want the CRD to reject it", name, err)
			}
		}
		ok := &locusv1alpha1.Dataset{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ok"},
			Spec:       locusv1alpha1.DatasetSpec{Locations: dlLocations(dlLocation{region: dlRegion, bytes: "1Ti"})},
		}
		if _, err := locus.LocusV1alpha1().Datasets(ns).Create(ctx, ok, metav1.CreateOptions{}); err != nil {
			t.Errorf("a valid Dataset was rejected: %v", err)
		}
	})
	// Last: it adds a node.
	t.Run("an unknown dataset is neutral, with one warning event over several attempts", func(t *testing.T) {
		ns := newNS(t, "typos")
		// No node has 9 CPUs: the pod is tried, rejected, and tried again
		// when a node that fits joins.
		spec := dataPod(ns, "lost", "no-such-data", "")
		spec.CPU = "9"
		create(t, spec)
		if _, err := testenv.WaitForPodUnschedulable(ctx, c, ns, "lost", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "big-1", CPU: "16", Labels: map[string]string{
			v1.LabelTopologyRegion: dlRegion, v1.LabelTopologyZone: dlZoneA,
		}}); err != nil {
			t.Fatal(err)
		}
		if node := bound(t, ns, "lost", 30*time.Second); node != "big-1" {
			t.Errorf("bound to %s, want big-1, the only node that fits", node)
		}
		if _, err := testenv.WaitForPodEvent(ctx, c, ns, "lost", locusv1alpha1.EventReasonDatasetNotFound, "Dataset no-such-data not found in namespace typos", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		evs, err := testenv.PodEvents(ctx, c, ns, "lost", locusv1alpha1.EventReasonDatasetNotFound)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].Type != v1.EventTypeWarning || (evs[0].Series != nil && evs[0].Series.Count > 1) {
			t.Errorf("want one Warning DatasetNotFound event, got %+v", evs)
		}
	})
}

// bindZonalVolume creates a PersistentVolume whose node affinity pins it to
// zone, and a claim bound to it, as the volume controller (which does not
// run here) would bind them. It returns the claim's name.
func bindZonalVolume(ctx context.Context, t *testing.T, env *testenv.Env, ns, name, zone, size string) string {
	t.Helper()
	c := env.Client
	capacity := v1.ResourceList{v1.ResourceStorage: resource.MustParse(size)}
	pv := &v1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-" + name},
		Spec: v1.PersistentVolumeSpec{
			Capacity:                      capacity,
			AccessModes:                   []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: v1.PersistentVolumeReclaimRetain,
			PersistentVolumeSource:        v1.PersistentVolumeSource{HostPath: &v1.HostPathVolumeSource{Path: "/data/" + name}},
			NodeAffinity: &v1.VolumeNodeAffinity{Required: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
				MatchExpressions: []v1.NodeSelectorRequirement{{Key: v1.LabelTopologyZone, Operator: v1.NodeSelectorOpIn, Values: []string{zone}}},
			}}}},
		},
	}
	pvc := &v1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{
			"pv.kubernetes.io/bind-completed": "yes",
		}},
		Spec: v1.PersistentVolumeClaimSpec{
			AccessModes:      []v1.PersistentVolumeAccessMode{v1.ReadWriteOnce},
			Resources:        v1.VolumeResourceRequirements{Requests: capacity},
			StorageClassName: ptr.To(""),
			VolumeName:       pv.Name,
		},
	}
	var err error
	if pvc, err = c.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pvc.Status = v1.PersistentVolumeClaimStatus{Phase: v1.ClaimBound, AccessModes: pvc.Spec.AccessModes, Capacity: capacity}
	if _, err = c.CoreV1().PersistentVolumeClaims(ns).UpdateStatus(ctx, pvc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv.Spec.ClaimRef = &v1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: name, UID: pvc.UID}
	if pv, err = c.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pv.Status = v1.PersistentVolumeStatus{Phase: v1.VolumeBound}
	if _, err = c.CoreV1().PersistentVolumes().UpdateStatus(ctx, pv, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The scheduler must see both bound before the pod comes.
	informers := env.Locus.Informers.Core().V1()
	if err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		gotPVC, err := informers.PersistentVolumeClaims().Lister().PersistentVolumeClaims(ns).Get(name)
		if err != nil || gotPVC.Status.Phase != v1.ClaimBound {
			return false, nil
		}
		gotPV, err := informers.PersistentVolumes().Lister().Get(pv.Name)
		return err == nil && gotPV.Status.Phase == v1.VolumeBound, nil
	}); err != nil {
		t.Fatalf("locus-scheduler did not see the bound volume: %v", err)
	}
	return name
}
