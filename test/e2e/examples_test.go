package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"locus.dev/locus/pkg/testenv"
)

// TestExamples applies every file in examples/ with kubectl, as a user
// would, to a control plane with kube-controller-manager, kube-scheduler and
// locus-scheduler, and checks where the seed workloads land.
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
	// The Spark gang: all five.
	nodeOf("spark", "scheduling.x-k8s.io/pod-group=nightly-aggregation", 5)
	// The CronJob and the scrape configuration exist as written.
	for _, obj := range []string{"cronjob/nightly-export -n data-platform", "clusterrole/prometheus-locus-metrics", "configmap/prometheus-locus-scrape -n monitoring"} {
		if out, err := kubectl(t, kc, append([]string{"get"}, strings.Fields(obj)...)...); err != nil {
			t.Errorf("kubectl get %s: %v\n%s", obj, err, out)
		}
	}
}
