package integration

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/cmd/kubectl-locus/app"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// kubectlLocus runs `kubectl locus ARGS` in this process against the
// kubeconfig and returns what it printed on stdout.
func kubectlLocus(ctx context.Context, t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := app.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	t.Logf("$ kubectl locus %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), err
}

// squash collapses runs of blanks, so that assertions do not depend on
// column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// row returns the first line of a table whose first field is key, as fields.
func row(out, key string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key {
			return f
		}
	}
	return nil
}

func TestKubectlLocus(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	c := env.Client
	kubeconfig := env.KubeconfigFile(t)
	jsonCfg := rest.CopyConfig(env.Config)
	jsonCfg.ContentType = "application/json"
	sched, err := schedclient.NewForConfig(jsonCfg)
	if err != nil {
		t.Fatal(err)
	}
	locus, err := versioned.NewForConfig(jsonCfg)
	if err != nil {
		t.Fatal(err)
	}

	// general: 4 CPUs, uncertified. vault: certified for pci-dss, one CPU.
	for _, n := range []testenv.NodeSpec{
		{Name: "general", CPU: "4", Labels: map[string]string{v1.LabelTopologyZone: "zone-a"}},
		{Name: "vault", CPU: "1", Labels: map[string]string{v1.LabelTopologyZone: "zone-b", certPrefix + "pci-dss": "true"}},
	} {
		if _, err := testenv.CreateNode(ctx, c, n); err != nil {
			t.Fatal(err)
		}
	}
	for _, ns := range []string{"payments", "etl"} {
		if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sched.SchedulingV1alpha1().ElasticQuotas("etl").Create(ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "quota"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := locus.LocusV1alpha1().Datasets("etl").Create(ctx, &locusv1alpha1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "sales"},
		Spec: locusv1alpha1.DatasetSpec{Locations: []locusv1alpha1.DatasetLocation{
			{Node: "general", Bytes: resource.MustParse("100Gi")},
			{Zone: "zone-a", Bytes: resource.MustParse("1Ti")},
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	pci := map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}
	for _, p := range []testenv.PodSpec{
		// Fills vault's only CPU.
		{Namespace: "payments", Name: "card", SchedulerName: plugins.SchedulerName, Annotations: pci, CPU: "1"},
		// Fits no certified node.
		{Namespace: "payments", Name: "card-big", SchedulerName: plugins.SchedulerName, Annotations: pci, CPU: "3"},
		// Uses 1 of etl's max 2.
		{Namespace: "etl", Name: "report", SchedulerName: plugins.SchedulerName, CPU: "1",
			Annotations: map[string]string{locusv1alpha1.AnnotationDatasets: "sales"}},
	} {
		if _, err := testenv.CreatePod(ctx, c, p); err != nil {
			t.Fatal(err)
		}
	}
	if node, err := testenv.WaitForPodBound(ctx, c, "payments", "card", 30*time.Second); err != nil || node != "vault" {
		t.Fatalf("payments/card: want bound to vault, got %q, %v", node, err)
	}
	if _, err := testenv.WaitForPodBound(ctx, c, "etl", "report", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.WaitForPodUnschedulable(ctx, c, "payments", "card-big", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	// Over etl's quota: used 1 + 2 > max 2.
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "etl", Name: "greedy", SchedulerName: plugins.SchedulerName, CPU: "2"}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []struct{ ns, pod, reason string }{
		{"payments", "card", locusv1alpha1.EventReasonCompliantPlacement},
		{"payments", "card-big", "FailedScheduling"},
		{"etl", "greedy", locusv1alpha1.EventReasonQuotaExceeded},
	} {
		if _, err := testenv.WaitForPodEvent(ctx, c, e.ns, e.pod, e.reason, "", 30*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// locus-scheduler writes status.used back every second.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		eq, err := sched.SchedulingV1alpha1().ElasticQuotas("etl").Get(ctx, "quota", metav1.GetOptions{})
		return err == nil && eq.Status.Used.Cpu().Equal(resource.MustParse("1")), err
	}); err != nil {
		t.Fatalf("ElasticQuota etl/quota status.used never reached cpu 1: %v", err)
	}

	t.Run("explain names the plugin that keeps a pending pod off each node", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "explain", "card-big", "-n", "payments")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(row(out, "general"), " "); !strings.Contains(got, "rejected") || !strings.Contains(got, "Compliance: missing certification pci-dss") {
			t.Errorf("row of node general: want rejected by Compliance: missing certification pci-dss, got %q", got)
		}
		if got := strings.Join(row(out, "vault"), " "); !strings.Contains(got, "rejected") || !strings.Contains(got, "NodeResourcesFit: Insufficient cpu") {
			t.Errorf("row of node vault: want rejected by NodeResourcesFit: Insufficient cpu, got %q", got)
		}
		for _, want := range []string{
			"Node: <none> (Unschedulable: ",
			"Verdict: pending; would wait now: 0/2 nodes are available: ",
			"FailedScheduling",
		} {
			if !strings.Contains(squash(out), want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})

	t.Run("explain shows where a bound pod is, without counting it there", func(t *testing.T) {
		// The profile comes from the deployment's ConfigMap when there is one.
		if _, err := c.CoreV1().ConfigMaps("kube-system").Create(ctx, &v1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "locus-scheduler-config"},
			Data:       map[string]string{"scheduler-config.yaml": string(manifests.SchedulerConfig)},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out, err := kubectlLocus(ctx, t, kubeconfig, "explain", "card", "-n", "payments")
		if err != nil {
			t.Fatal(err)
		}
		// vault has one CPU, which card itself uses: counted, it would not fit.
		if got := row(out, "vault"); len(got) < 2 || got[1] != "best,current" {
			t.Errorf("row of node vault: want verdict best,current, got %q", got)
		}
		if got := strings.Join(row(out, "general"), " "); !strings.Contains(got, "Compliance: missing certification pci-dss") {
			t.Errorf("row of node general: want Compliance: missing certification pci-dss, got %q", got)
		}
		for _, want := range []string{"Node: vault", "Profile: locus-scheduler, from ConfigMap kube-system/locus-scheduler-config", "Verdict: bound to vault (score ", "would be placed on vault now", "CompliantPlacement", "node vault holds pci-dss"} {
			if !strings.Contains(squash(out), want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})

	t.Run("explain of a pod that does not exist fails", func(t *testing.T) {
		if _, err := kubectlLocus(ctx, t, kubeconfig, "explain", "nope", "-n", "payments"); !apierrors.IsNotFound(err) {
			t.Errorf("want a NotFound error, got %v", err)
		}
	})

	t.Run("quota shows min, max, used, borrowed and pending pods", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "quota", "-n", "etl")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(row(out, "NAME"), " "), "NAME MIN MAX USED BORROWED PENDING"; got != want {
			t.Errorf("header: want %q, got %q", want, got)
		}
		if got, want := strings.Join(row(out, "quota"), " "), "quota cpu=1 cpu=2 cpu=1 0 1"; got != want {
			t.Errorf("row: want %q, got %q", want, got)
		}
		out, err = kubectlLocus(ctx, t, kubeconfig, "quota", "-A")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(row(out, "etl"), " "), "etl quota cpu=1 cpu=2 cpu=1 0 1"; got != want {
			t.Errorf("row with -A: want %q, got %q", want, got)
		}
	})

	t.Run("datasets shows locations and readers", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "datasets", "-n", "etl")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(row(out, "sales"), " "), "sales 1 node general 100Gi, zone zone-a 1Ti"; got != want {
			t.Errorf("row: want %q, got %q", want, got)
		}
	})

	// A second certified node, with room for one more card pod.
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "vault-2", CPU: "2",
		Labels: map[string]string{v1.LabelTopologyZone: "zone-b", certPrefix + "pci-dss": "true"}}); err != nil {
		t.Fatal(err)
	}
	podsYAML := `apiVersion: v1
kind: Pod
metadata:
  name: card-new
  namespace: payments
  annotations: {locus.dev/compliance: pci-dss}
spec:
  schedulerName: locus-scheduler
  containers:
  - {name: app, image: registry.example.com/pay:1, resources: {requests: {cpu: "1"}}}
---
apiVersion: v1
kind: Pod
metadata: {name: backfill}
spec:
  schedulerName: locus-scheduler
  containers:
  - {name: app, image: registry.example.com/etl:1, resources: {limits: {cpu: "2"}}}
`
	writeFile := func(t *testing.T, content string) string {
		path := filepath.Join(t.TempDir(), "pods.yaml")
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	t.Run("simulate places a pci pod on a certified node and says which pod waits for quota", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "simulate", "-n", "etl", "-f", writeFile(t, podsYAML))
		if err != nil {
			t.Fatal(err)
		}
		lines := map[string]string{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 2 {
				lines[f[1]] = strings.Join(f[2:], " ")
			}
		}
		if got := lines["payments/card-new"]; !strings.HasPrefix(got, "placed vault-2 ") {
			t.Errorf("want payments/card-new placed on vault-2, got %q", got)
		}
		// The limits default the requests, as the API server would.
		if got, want := lines["etl/backfill"], "waits - BatchQuota: quota etl/quota: cpu would be 3 (used 1 + request 2), over max 2"; got != want {
			t.Errorf("want etl/backfill to wait for quota (%q), got %q", want, got)
		}
		for _, p := range []struct{ ns, name string }{{"payments", "card-new"}, {"etl", "backfill"}} {
			if _, err := c.CoreV1().Pods(p.ns).Get(ctx, p.name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
				t.Errorf("simulate must not create pod %s/%s: got %v", p.ns, p.name, err)
			}
		}
	})

	t.Run("simulate layers a quota from the file over the cluster's", func(t *testing.T) {
		raised := podsYAML + `---
apiVersion: scheduling.x-k8s.io/v1alpha1
kind: ElasticQuota
metadata: {name: quota}
spec:
  min: {cpu: "4"}
  max: {cpu: "4"}
`
		out, err := kubectlLocus(ctx, t, kubeconfig, "simulate", "-n", "etl", "-f", writeFile(t, raised))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(squash(out), "etl/backfill placed ") {
			t.Errorf("with min and max 4 in the file, etl/backfill must be placed")
		}
		eq, err := sched.SchedulingV1alpha1().ElasticQuotas("etl").Get(ctx, "quota", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !eq.Spec.Max.Cpu().Equal(resource.MustParse("2")) {
			t.Errorf("simulate must not change the cluster's quota: max is now %s", eq.Spec.Max.Cpu())
		}
	})
}
