package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/yaml"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/batchquota"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/testenv"
)

// TestExamples applies every file in examples/ with kubectl, as a user
// would, to a control plane with kube-controller-manager, kube-scheduler and
// locus-scheduler, and checks where the seed workloads land. The Spark job
// is started the way Spark starts it (runSparkJob).
func TestExamples(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	env.StartControllerManager(ctx, t)
	c := env.Client
	kc := env.KubeconfigFile(t)

	for _, n := range []testenv.NodeSpec{
		{Name: "worker-7", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1a"}},
		{Name: "worker-1", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1a"}},
		{Name: "worker-2", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1b"}},
		{Name: "worker-3", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1b"}},
		{Name: "pci-1", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1a", "node-restriction.kubernetes.io/compliance.pci-dss": "2099-01-31"}},
		{Name: "pci-2", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1b", "node-restriction.kubernetes.io/compliance.pci-dss": "true"}},
		{Name: "eu-1", Labels: map[string]string{v1.LabelTopologyRegion: "eu-west-1", v1.LabelTopologyZone: "eu-west-1a"}},
	} {
		n.CPU, n.Memory = "16", "64Gi"
		if _, err := testenv.CreateNode(ctx, c, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.CreateNamespace(ctx, c, "monitoring", nil); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"data-platform.yaml", "payments-pci.yaml", "airflow-pod-template.yaml", "dagster-run-job.yaml",
		"prefect-job.yaml", "cronjob.yaml", "spark-gang.yaml", "prometheus-scrape.yaml"} {
		if out, err := kubectl(t, kc, "apply", "-f", "../../examples/"+f); err != nil {
			t.Fatalf("kubectl apply -f examples/%s: %v\n%s", f, err, out)
		}
	}

	nodeOf := func(ns, selector string, want int) []string {
		t.Helper()
		var nodes []string
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				return false, err
			}
			nodes = nodes[:0]
			for _, p := range pods.Items {
				if p.Spec.NodeName != "" {
					nodes = append(nodes, p.Spec.NodeName)
				}
			}
			return len(nodes) == want, nil
		})
		if err != nil {
			t.Fatalf("%s pods %q: %d bound (%v), want %d: %v", ns, selector, len(nodes), nodes, want, err)
		}
		return nodes
	}

	// Airflow task: next to its data's cache.
	if got := nodeOf("data-platform", "app=airflow-worker", 1); got[0] != "worker-7" {
		t.Errorf("Airflow task on %s, want worker-7 (sales-2026's cache)", got[0])
	}
	// Dagster run: in the zone that holds clickstream.
	for _, n := range nodeOf("data-platform", "app.kubernetes.io/component=run_worker", 1) {
		if n != "worker-2" && n != "worker-3" && n != "pci-2" {
			t.Errorf("Dagster run on %s, want a node in us-east-1b", n)
		}
	}
	// Payments: only on PCI-DSS nodes, the Deployment's and Prefect's pods.
	for _, sel := range []string{"app=checkout", "job-name=prefect-flow-run-settlement"} {
		want := 1
		if sel == "app=checkout" {
			want = 3
		}
		for _, n := range nodeOf("payments", sel, want) {
			if !strings.HasPrefix(n, "pci-") {
				t.Errorf("payments pod %q on %s, not a PCI-DSS node", sel, n)
			}
		}
	}
	// The tokenizer also needs SOC 2, which no node has: it waits, saying so.
	msg, err := testenv.WaitForPodUnschedulable(ctx, c, "payments", "tokenize-batch", 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "missing certification soc2") {
		t.Errorf("tokenize-batch waits with %q, want it to name the missing soc2", msg)
	}
	runSparkJob(ctx, t, env, kc)
	// The CronJob and the scrape configuration exist as written.
	for _, obj := range []string{"cronjob/nightly-export -n data-platform", "clusterrole/prometheus-locus-metrics", "configmap/prometheus-locus-scrape -n monitoring"} {
		if out, err := kubectl(t, kc, append([]string{"get"}, strings.Fields(obj)...)...); err != nil {
			t.Errorf("kubectl get %s: %v\n%s", obj, err, out)
		}
	}
}

// The Spark example: examples/spark-gang.yaml (applied above with the other
// files) holds the namespace, the driver's RBAC, the ElasticQuota, the
// PodGroup and the Dataset; examples/spark/ holds the pod templates and the
// spark-submit command.
const (
	sparkNamespace = "spark"
	sparkGroup     = "nightly-aggregation"
	sparkDir       = "../../examples/spark/"
)

// runSparkJob starts the Spark example in the order Spark does: spark-submit
// creates the driver pod from the driver template; once the driver is bound
// (and would run), the driver creates its executors from the executor
// template. The PodGroup has minMember 1, so the driver alone completes the
// gang and holds the job's minResources; the executors, created afterwards,
// must all bind, and the quota's status.used must come to the job's
// requests. It first checks that the example agrees with itself: the
// PodGroup's minResources are the driver's and spark.executor.instances
// executors' requests.
func runSparkJob(ctx context.Context, t *testing.T, env *testenv.Env, kubeconfig string) {
	t.Helper()
	c := env.Client
	sc, err := schedclient.NewForConfig(crdconfig.JSON(env.Config))
	if err != nil {
		t.Fatal(err)
	}
	driver := podTemplate(t, sparkDir+"driver-pod-template.yaml")
	executor := podTemplate(t, sparkDir+"executor-pod-template.yaml")
	instances := executorInstances(t, sparkDir+"spark-submit.sh")
	job := resourcehelper.PodRequests(driver, resourcehelper.PodResourcesOptions{})
	for range instances {
		addResources(job, resourcehelper.PodRequests(executor, resourcehelper.PodResourcesOptions{}))
	}
	pg, err := sc.SchedulingV1alpha1().PodGroups(sparkNamespace).Get(ctx, sparkGroup, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !sameResources(pg.Spec.MinResources, job) {
		t.Fatalf("PodGroup %s minResources %s, but the pod templates and spark.executor.instances=%d ask for %s",
			sparkGroup, resourcesString(pg.Spec.MinResources), instances, resourcesString(job))
	}

	// spark-submit: the driver pod, from its template, with the name and
	// labels Spark gives it.
	driver.Name, driver.Namespace = sparkGroup+"-driver", sparkNamespace
	driver.Labels["spark-role"] = "driver"
	manifest, err := yaml.Marshal(driver)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := kubectlStdin(t, kubeconfig, string(manifest), "create", "-f", "-"); err != nil {
		t.Fatalf("kubectl create the driver pod: %v\n%s", err, out)
	}
	if _, err := testenv.WaitForPodBound(ctx, c, sparkNamespace, driver.Name, 60*time.Second); err != nil {
		msg, _ := testenv.WaitForPodUnschedulable(ctx, c, sparkNamespace, driver.Name, time.Second)
		t.Fatalf("the Spark driver, alone in its gang: %v (%s)", err, msg)
	}
	owner, err := c.CoreV1().Pods(sparkNamespace).Get(ctx, driver.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}

	// The driver: its executors, from their template, named and labelled
	// as Spark does, owned by the driver pod.
	names := []string{driver.Name}
	for i := 1; i <= instances; i++ {
		p := executor.DeepCopy()
		p.Name, p.Namespace = fmt.Sprintf("%s-exec-%d", sparkGroup, i), sparkNamespace
		p.Labels[schedv1alpha1.PodGroupLabel] = sparkGroup
		p.Labels["spark-role"], p.Labels["spark-exec-id"] = "executor", strconv.Itoa(i)
		p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "v1", Kind: "Pod", Name: owner.Name, UID: owner.UID}}
		if _, err := c.CoreV1().Pods(sparkNamespace).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating executor %s: %v", p.Name, err)
		}
		names = append(names, p.Name)
	}
	for _, name := range names {
		if _, err := testenv.WaitForPodBound(ctx, c, sparkNamespace, name, 60*time.Second); err != nil {
			msg, _ := testenv.WaitForPodUnschedulable(ctx, c, sparkNamespace, name, time.Second)
			t.Fatalf("Spark executor created after its driver: %v (%s)", err, msg)
		}
	}

	// The quota's status.used is the job's requests, and the PodGroup's
	// status says that it is placed.
	var used v1.ResourceList
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		eq, err := sc.SchedulingV1alpha1().ElasticQuotas(sparkNamespace).Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		used = eq.Status.Used
		return sameResources(used, job), nil
	})
	if err != nil {
		t.Errorf("ElasticQuota %s/quota status.used %s, want the job's requests %s: %v", sparkNamespace, resourcesString(used), resourcesString(job), err)
	}
	want := strconv.Itoa(len(names))
	var phase schedv1alpha1.PodGroupPhase
	var scheduled string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		pg, err := sc.SchedulingV1alpha1().PodGroups(sparkNamespace).Get(ctx, sparkGroup, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		phase, scheduled = pg.Status.Phase, pg.Annotations[locusv1alpha1.AnnotationScheduled]
		return phase == batchquota.PodGroupScheduled && scheduled == want, nil
	})
	if err != nil {
		t.Errorf("PodGroup %s: phase %q, %s=%q, want %q and %s: %v", sparkGroup, phase,
			locusv1alpha1.AnnotationScheduled, scheduled, batchquota.PodGroupScheduled, want, err)
	}
}

// podTemplate reads a Spark pod template file.
func podTemplate(t *testing.T, path string) *v1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pod v1.Pod
	if err := yaml.UnmarshalStrict(data, &pod); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if pod.Labels == nil {
		pod.Labels = map[string]string{}
	}
	return &pod
}

// executorInstances reads spark.executor.instances from the spark-submit
// command.
func executorInstances(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--conf spark\.executor\.instances=(\d+)`).FindSubmatch(data)
	if m == nil {
		t.Fatalf("%s sets no spark.executor.instances", path)
	}
	n, err := strconv.Atoi(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func addResources(sum, add v1.ResourceList) {
	for r, q := range add {
		cur := sum[r]
		cur.Add(q)
		sum[r] = cur
	}
}

// resourcesString renders a resource list as "cpu=9,memory=34Gi".
func resourcesString(l v1.ResourceList) string {
	parts := make([]string, 0, len(l))
	for r, q := range l {
		parts = append(parts, string(r)+"="+q.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// sameResources compares two resource lists by value, ignoring zeros.
func sameResources(a, b v1.ResourceList) bool {
	for _, pair := range [][2]v1.ResourceList{{a, b}, {b, a}} {
		for r, q := range pair[0] {
			other := pair[1][r]
			if q.Cmp(other) != 0 {
				return false
			}
		}
	}
	return true
}
