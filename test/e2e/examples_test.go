package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/yaml"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/batchquota"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/testenv"
)

// exampleFiles are the files of examples/ in the order a user applies them:
// a namespace's file before the files that put workloads into it.
// TestExamples fails if examples/ holds a file that is not listed.
var exampleFiles = []string{"data-platform.yaml", "payments-pci.yaml", "airflow-pod-template.yaml", "dagster-run-job.yaml",
	"prefect-job.yaml", "cronjob.yaml", "spark-gang.yaml", "prometheus-scrape.yaml", "prometheus-servicemonitor.yaml"}

// TestExamples applies every file in examples/ with kubectl, as a user
// would, to a control plane with kube-controller-manager, kube-scheduler and
// locus-scheduler, and checks where the seed workloads land. The Spark job
// is started the way Spark starts it (runSparkJob).
//
// The API server admits pods as a cluster's does: the ServiceAccount
// admission plugin is on (a pod's ServiceAccount must exist), and
// kube-controller-manager runs, besides the workload controllers, the
// serviceaccount-controller (the "default" ServiceAccount of every
// namespace, and nothing else) and the resourcequota-controller (so that
// ResourceQuotas are enforced at admission). Every other ServiceAccount,
// Namespace and Secret that an example refers to must come from examples/.
// The ServiceMonitor's CRD is a minimal one (testdata/servicemonitor-crd.yaml),
// so that the ServiceMonitor is checked against a schema.
func TestExamples(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := startExamplesEnv(ctx, t)
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

	// Every file of examples/ is applied.
	all, err := filepath.Glob("../../examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		if !slices.Contains(exampleFiles, filepath.Base(f)) {
			t.Errorf("examples/%s is not applied by TestExamples: add it to exampleFiles", filepath.Base(f))
		}
	}
	if out, err := kubectl(t, kc, "apply", "-f", "testdata/servicemonitor-crd.yaml"); err != nil {
		t.Fatalf("kubectl apply -f testdata/servicemonitor-crd.yaml: %v\n%s", err, out)
	}
	if out, err := kubectl(t, kc, "wait", "--for=condition=Established", "--timeout=30s", "crd/servicemonitors.monitoring.coreos.com"); err != nil {
		t.Fatalf("ServiceMonitor CRD: %v\n%s", err, out)
	}
	for _, f := range exampleFiles {
		if out, err := kubectl(t, kc, "apply", "-f", "../../examples/"+f); err != nil {
			t.Fatalf("kubectl apply -f examples/%s: %v\n%s", f, err, out)
		}
		if f == "data-platform.yaml" {
			// The resourcequota-controller has computed the new quota's
			// usage: until then the API server refuses the namespace's
			// pods ("status unknown for quota"), as in any cluster in the
			// moment after a ResourceQuota is created.
			waitForQuotaStatus(ctx, t, c, "data-platform", "data-platform-quota")
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
	// A run of the CronJob, started by hand: its pod is admitted under the
	// namespace's ResourceQuota (the LimitRange gives it limits) and stays
	// in the us residency group.
	if out, err := kubectl(t, kc, "create", "job", "nightly-export-manual", "--from=cronjob/nightly-export", "-n", "data-platform"); err != nil {
		t.Fatalf("kubectl create job --from=cronjob/nightly-export: %v\n%s", err, out)
	}
	for _, n := range nodeOf("data-platform", "job-name=nightly-export-manual", 1) {
		if n == "eu-1" {
			t.Errorf("nightly-export pod on %s, outside its us residency group", n)
		}
	}
	runSparkJob(ctx, t, env, kc)
	// The scrape configuration, the ServiceMonitor and what they refer to
	// exist as written.
	for _, obj := range []string{"clusterrolebinding/prometheus-locus-metrics", "configmap/prometheus-locus-scrape -n monitoring",
		"rolebinding/prometheus-locus-discovery -n kube-system", "servicemonitor/locus-scheduler -n monitoring",
		"service/locus-scheduler-metrics -n kube-system", "secret/locus-metrics-reader-token -n monitoring",
		"clusterrolebinding/locus-metrics-reader"} {
		if out, err := kubectl(t, kc, append([]string{"get"}, strings.Fields(obj)...)...); err != nil {
			t.Errorf("kubectl get %s: %v\n%s", obj, err, out)
		}
	}
	// The ServiceMonitor's Service selects the scheduler's pods and names
	// their metrics port; the ServiceMonitor selects the Service.
	checkServiceMonitor(t)
}

// startExamplesEnv is testenv.Start with the ServiceAccount admission plugin
// on, and kube-controller-manager with the workload controllers, the
// serviceaccount-controller and the resourcequota-controller.
func startExamplesEnv(ctx context.Context, t *testing.T) *testenv.Env {
	t.Helper()
	cp := testenv.StartControlPlane(t, testenv.Options{ServiceAccountAdmission: true})
	cp.StartControllerManager(ctx, t, "serviceaccount-controller", "resourcequota-controller")
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	env := &testenv.Env{ControlPlane: cp, Dynamic: mustDynamic(t, cp)}
	env.Default = env.StartScheduler(ctx, t, []byte(testenv.DefaultSchedulerConfig))
	env.Locus = env.StartScheduler(ctx, t, manifests.SchedulerConfig)
	return env
}

// waitForQuotaStatus waits until the resourcequota-controller has written
// the ResourceQuota's status.
func waitForQuotaStatus(ctx context.Context, t *testing.T, c kubernetes.Interface, ns, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		rq, err := c.CoreV1().ResourceQuotas(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return len(rq.Status.Hard) > 0 && len(rq.Status.Used) > 0, nil
	})
	if err != nil {
		t.Fatalf("ResourceQuota %s/%s: no status from the resourcequota-controller: %v", ns, name, err)
	}
}

// checkServiceMonitor checks examples/prometheus-servicemonitor.yaml against
// the Deployment of manifests/base: the Service selects the Deployment's
// pods and targets the port that serves /metrics, and the ServiceMonitor
// selects the Service by its labels, in the Deployment's namespace, on the
// Service's port name, with the token Secret of the same file.
func checkServiceMonitor(t *testing.T) {
	t.Helper()
	var dep appsv1.Deployment
	decodeFile(t, "../../manifests/base/deployment.yaml", &dep)
	var (
		svc v1.Service
		sm  struct {
			Metadata metav1.ObjectMeta `json:"metadata"`
			Spec     struct {
				NamespaceSelector struct {
					MatchNames []string `json:"matchNames"`
				} `json:"namespaceSelector"`
				Selector  metav1.LabelSelector `json:"selector"`
				Endpoints []struct {
					Port          string `json:"port"`
					Path          string `json:"path"`
					Scheme        string `json:"scheme"`
					Authorization struct {
						Credentials struct {
							Name string `json:"name"`
						} `json:"credentials"`
					} `json:"authorization"`
				} `json:"endpoints"`
			} `json:"spec"`
		}
		secret v1.Secret
	)
	data, err := os.ReadFile("../../examples/prometheus-servicemonitor.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			t.Fatal(err)
		}
		var into any
		switch meta.Kind {
		case "Service":
			into = &svc
		case "ServiceMonitor":
			into = &sm
		case "Secret":
			into = &secret
		default:
			continue
		}
		if err := yaml.Unmarshal([]byte(doc), into); err != nil {
			t.Fatal(err)
		}
	}

	pod := dep.Spec.Template
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(pod.Labels)) || len(svc.Spec.Selector) == 0 {
		t.Errorf("Service %s selects %v, not the scheduler's pods (labels %v)", svc.Name, svc.Spec.Selector, pod.Labels)
	}
	if svc.Namespace != dep.Namespace {
		t.Errorf("Service in %s, the scheduler in %s", svc.Namespace, dep.Namespace)
	}
	var metricsPort v1.ContainerPort
	for _, p := range pod.Spec.Containers[0].Ports {
		if p.ContainerPort == 10259 {
			metricsPort = p
		}
	}
	if metricsPort.Name == "" {
		t.Fatalf("the Deployment's container names no port 10259: %v", pod.Spec.Containers[0].Ports)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].TargetPort.String() != metricsPort.Name {
		t.Errorf("Service ports %v, want one targeting the container port %q", svc.Spec.Ports, metricsPort.Name)
	}
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	if !sel.Matches(labels.Set(svc.Labels)) {
		t.Errorf("ServiceMonitor selects %v, not the Service (labels %v)", sel, svc.Labels)
	}
	if !slices.Contains(sm.Spec.NamespaceSelector.MatchNames, svc.Namespace) {
		t.Errorf("ServiceMonitor looks in %v, the Service is in %s", sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
	}
	if len(sm.Spec.Endpoints) != 1 {
		t.Fatalf("ServiceMonitor endpoints %+v, want one", sm.Spec.Endpoints)
	}
	ep := sm.Spec.Endpoints[0]
	if len(svc.Spec.Ports) == 1 && ep.Port != svc.Spec.Ports[0].Name {
		t.Errorf("ServiceMonitor port %q, the Service's port is %q", ep.Port, svc.Spec.Ports[0].Name)
	}
	if ep.Scheme != "https" || ep.Path != "/metrics" {
		t.Errorf("ServiceMonitor scrapes %s %s, want https /metrics", ep.Scheme, ep.Path)
	}
	if ep.Authorization.Credentials.Name != secret.Name || secret.Namespace != sm.Metadata.Namespace {
		t.Errorf("ServiceMonitor %s/%s sends the token of Secret %q, the file's Secret is %s/%s",
			sm.Metadata.Namespace, sm.Metadata.Name, ep.Authorization.Credentials.Name, secret.Namespace, secret.Name)
	}
}

// decodeFile reads one Kubernetes object from a YAML file.
func decodeFile(t *testing.T, path string, into any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatalf("%s: %v", path, err)
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
