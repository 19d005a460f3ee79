package integration

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
	"locus.dev/locus/test/invariants"
)

const (
	datasetCRD      = "datasets.locus.dev"
	elasticQuotaCRD = "elasticquotas.scheduling.x-k8s.io"
)

// deleteCRD deletes a CRD and waits until the API server no longer has it
// (its objects are deleted first).
func deleteCRD(ctx context.Context, t *testing.T, cfg *rest.Config, name string) {
	t.Helper()
	ext, err := apiextensionsclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{})
		return err != nil, nil
	}); err != nil {
		t.Fatalf("CRD %s still there: %v", name, err)
	}
}

// locusClient is a Dataset client (custom resources speak JSON).
func locusClient(t *testing.T, cfg *rest.Config) versioned.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeJSON
	c, err := versioned.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createDataset(ctx context.Context, c versioned.Interface, ns, name string, locs ...locusv1alpha1.DatasetLocation) error {
	_, err := c.LocusV1alpha1().Datasets(ns).Create(ctx, &locusv1alpha1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       locusv1alpha1.DatasetSpec{URI: "s3://warehouse/" + name + "/", Locations: locs},
	}, metav1.CreateOptions{})
	return err
}

func onNode(node, bytes string) locusv1alpha1.DatasetLocation {
	return locusv1alpha1.DatasetLocation{Node: node, Bytes: resource.MustParse(bytes)}
}

// readerPod creates a pod of locus that names datasets and waits until it
// is bound; it returns the pod's node. (DataLocality records a
// LocalityPlacement event only for a pod that got no locality at all, so
// the node is what tells.)
func readerPod(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name, datasets string) string {
	t.Helper()
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, CPU: "100m",
		Annotations: map[string]string{locusv1alpha1.AnnotationDatasets: datasets}}); err != nil {
		t.Fatal(err)
	}
	node, err := testenv.WaitForPodBound(ctx, c, ns, name, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return node
}

// keepScheduling creates a one-CPU-tenth pod in ns every interval until
// stopped, and then checks that every one of them was bound.
type keepScheduling struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	made []string
}

func startScheduling(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string, interval time.Duration) *keepScheduling {
	k := &keepScheduling{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(k.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-k.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			name := fmt.Sprintf("steady-%03d", i)
			if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, CPU: "10m"}); err != nil {
				t.Errorf("creating %s: %v", name, err)
				return
			}
			k.mu.Lock()
			k.made = append(k.made, name)
			k.mu.Unlock()
		}
	}()
	return k
}

// finish stops creating pods and waits until all were bound.
func (k *keepScheduling) finish(ctx context.Context, t *testing.T, c kubernetes.Interface, ns string) int {
	t.Helper()
	close(k.stop)
	<-k.done
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, name := range k.made {
		if _, err := testenv.WaitForPodBound(ctx, c, ns, name, 30*time.Second); err != nil {
			t.Error(err)
		}
	}
	return len(k.made)
}

// Fault: the Dataset CRD is missing when locus starts. Before, DataLocality's
// Dataset informer (and the scheduler's own, for the Dataset events that
// the plugin registers) never synced and locus never started. Now locus
// starts and places pods that name Datasets, with a warning naming the
// resource in its log and in the pods' DatasetNotFound events; once the CRD
// is installed, the Datasets are read (after the informer's next list) and
// pods are placed near their data.
func TestMissingDatasetCRDAtStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, logs := bufferedContext(ctx, t)
	cp := testenv.StartControlPlane(t, testenv.Options{})
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	deleteCRD(ctx, t, cp.Config, datasetCRD)
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	sched := schedClient(t, cp.Config)
	invariants.Watch(ctx, t, cp.Client, sched, invariants.Options{})
	env := &testenv.Env{ControlPlane: cp, Dynamic: dyn}
	started := make(chan *testenv.Scheduler, 1)
	go func() { started <- env.StartScheduler(ctx, t, manifests.SchedulerConfig) }()
	select {
	case env.Locus = <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("locus did not start without the Dataset CRD")
	}
	for i, zone := range []string{"zone-a", "zone-b"} {
		if _, err := testenv.CreateNode(ctx, cp.Client, testenv.NodeSpec{Name: fmt.Sprintf("node-%d", i), CPU: "8", Memory: "16Gi",
			Labels: map[string]string{v1.LabelTopologyZone: zone}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.CreateNamespace(ctx, cp.Client, "data", nil); err != nil {
		t.Fatal(err)
	}

	warning, err := logs.waitFor(ctx, 10*time.Second, "does not serve this resource", `resource="`+locusv1alpha1.DatasetResource+`"`)
	if err != nil {
		t.Fatalf("no warning naming %s in the scheduler's log: %v", locusv1alpha1.DatasetResource, err)
	}
	t.Logf("log: %s", warning)
	t.Logf("a pod naming Dataset sales bound to %s", readerPod(ctx, t, cp.Client, "data", "before", "sales"))
	event, err := testenv.WaitForPodEvent(ctx, cp.Client, "data", "before", locusv1alpha1.EventReasonDatasetNotFound, "does not serve "+datasetCRD, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("event: %s", event)

	// The CRD arrives: the Datasets are read once the informer lists again.
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	installed := time.Now()
	if err := createDataset(ctx, locusClient(t, cp.Config), "data", "sales", onNode("node-1", "1Ti")); err != nil {
		t.Fatal(err)
	}
	seen := env.Locus.Informers.InformerFor(&locusv1alpha1.Dataset{}, nil).GetStore()
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 120*time.Second, true, func(context.Context) (bool, error) {
		_, ok, err := seen.GetByKey("data/sales")
		return ok, err
	}); err != nil {
		t.Fatalf("locus never read Dataset data/sales after the CRD was installed: %v", err)
	}
	t.Logf("Dataset read %v after the CRD was installed", time.Since(installed).Round(100*time.Millisecond))
	if _, err := logs.waitFor(ctx, 10*time.Second, "serves this resource again", `resource="`+datasetCRD+`"`); err != nil {
		t.Errorf("no log line saying that Datasets are served again: %v", err)
	}
	if node := readerPod(ctx, t, cp.Client, "data", "after", "sales"); node != "node-1" {
		t.Errorf("a pod naming Dataset sales (on node-1) bound to %s", node)
	}
}

func schedClient(t *testing.T, cfg *rest.Config) schedclient.Interface {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	cfg.ContentType = runtime.ContentTypeJSON
	c, err := schedclient.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Fault: the Dataset CRD, then the ElasticQuota CRD, deleted while locus
// runs and places pods (a pod every 200 ms in a namespace without quota).
// Deleting a CRD deletes its objects first: the Datasets and quotas are
// gone, and locus places pods as without them. It keeps running and
// placing every pod; its log names each resource once it is no longer
// served; the invariant checker stays green. Quota accounting survives:
// the pods counted before, and those bound while there was no quota, count
// once the CRD and a quota are back.
func TestCRDDeletedWhileRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ctx, logs := bufferedContext(ctx, t)
	e := startQuotaEnv(ctx, t, 2, "16")
	c := e.Client
	locus := locusClient(t, e.Config)
	for _, ns := range []string{"data", "steady"} {
		if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	steady := startScheduling(ctx, t, c, "steady", 200*time.Millisecond)

	// The Dataset CRD.
	if err := createDataset(ctx, locus, "data", "sales", onNode("node-1", "1Ti")); err != nil {
		t.Fatal(err)
	}
	seen := e.Locus.Informers.InformerFor(&locusv1alpha1.Dataset{}, nil).GetStore()
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		_, ok, err := seen.GetByKey("data/sales")
		return ok, err
	}); err != nil {
		t.Fatal(err)
	}
	if node := readerPod(ctx, t, c, "data", "before", "sales"); node != "node-1" {
		t.Errorf("before the deletion: a pod naming Dataset sales (on node-1) bound to %s", node)
	}
	deleteCRD(ctx, t, e.Config, datasetCRD)
	deleted := time.Now()
	line, err := logs.waitFor(ctx, 60*time.Second, "does not serve this resource", `resource="`+datasetCRD+`"`)
	if err != nil {
		t.Errorf("no warning naming %s after its CRD was deleted: %v", datasetCRD, err)
	}
	t.Logf("%v after the deletion, log: %s", time.Since(deleted).Round(100*time.Millisecond), line)
	t.Logf("after the deletion, a pod naming Dataset sales bound to %s", readerPod(ctx, t, c, "data", "after", "sales"))
	if event, err := testenv.WaitForPodEvent(ctx, c, "data", "after", locusv1alpha1.EventReasonDatasetNotFound, "Dataset sales not found", 10*time.Second); err != nil {
		t.Error(err)
	} else {
		t.Logf("event: %s", event)
	}

	// The ElasticQuota CRD.
	e.quota(ctx, t, "team", "4", "4")
	createPods(ctx, t, c, "team", "counted", 3, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, c, "team", "", 3, 30*time.Second)
	if err := e.waitUsedCPU(ctx, "team", "3", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	deleteCRD(ctx, t, e.Config, elasticQuotaCRD)
	deleted = time.Now()
	line, err = logs.waitFor(ctx, 60*time.Second, "does not serve this resource", `resource="`+elasticQuotaCRD+`"`)
	if err != nil {
		t.Errorf("no warning naming %s after its CRD was deleted: %v", elasticQuotaCRD, err)
	}
	t.Logf("%v after the deletion, log: %s", time.Since(deleted).Round(100*time.Millisecond), line)
	// No quota now: the namespace is not limited.
	createPods(ctx, t, c, "team", "unlimited", 2, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, c, "team", "", 5, 30*time.Second)

	// The CRD and a quota of 6 come back: the 5 bound pods count.
	if err := testenv.InstallCRDs(ctx, e.Config); err != nil {
		t.Fatal(err)
	}
	installed := time.Now()
	if _, err := e.sched.SchedulingV1alpha1().ElasticQuotas("team").Create(ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("6")},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("6")},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.waitUsedCPU(ctx, "team", "5", 120*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("the recreated quota shows used 5 CPUs %v after the CRD was installed again", time.Since(installed).Round(100*time.Millisecond))
	createPods(ctx, t, c, "team", "over", 3, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, c, "team", "", 6, 30*time.Second)
	time.Sleep(3 * time.Second)
	if pods, _ := boundPods(ctx, c, "team", ""); len(pods) != 6 {
		t.Errorf("%d pods bound in team under a quota of 6 CPUs, want 6", len(pods))
	}
	if err := e.waitUsedCPU(ctx, "team", "6", 10*time.Second); err != nil {
		t.Error(err)
	}
	n := steady.finish(ctx, t, c, "steady")
	t.Logf("%d pods created every 200 ms throughout, all bound", n)
}
