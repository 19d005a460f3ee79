package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	"sigs.k8s.io/yaml"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/cmd/kubectl-locus/app"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/explain/report"
	"locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// kubectlLocus runs `kubectl locus ARGS` in this process against the
// kubeconfig and returns what it printed on stdout.
func kubectlLocus(ctx context.Context, t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	out, _, err := kubectlLocusStreams(ctx, t, kubeconfig, args...)
	return out, err
}

// kubectlLocusStreams runs `kubectl locus ARGS` and returns what it printed
// on stdout and on stderr.
func kubectlLocusStreams(ctx context.Context, t *testing.T, kubeconfig string, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := app.NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &errOut})
	cmd.SetArgs(append([]string{"--kubeconfig", kubeconfig}, args...))
	err := cmd.ExecuteContext(ctx)
	t.Logf("$ kubectl locus %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

// decodeReport decodes kubectl-locus's -o json output into v, refusing
// fields that v does not have.
func decodeReport(t *testing.T, out string, v any) {
	t.Helper()
	d := json.NewDecoder(strings.NewReader(out))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decoding the output: %v\n%s", err, out)
	}
}

// resultOf returns the simulation's result for a pod.
func resultOf(sim *report.Simulation, namespace, name string) *report.PodResult {
	for i := range sim.Results {
		if r := &sim.Results[i]; r.Pod.Namespace == namespace && r.Pod.Name == name {
			return r
		}
	}
	return nil
}

func hasRejection(r report.PodResult, plugin, reason, node string) bool {
	for _, rej := range r.Rejections {
		if rej.Plugin == plugin && strings.Contains(rej.Reason, reason) && slices.Contains(rej.Nodes, node) {
			return true
		}
	}
	return false
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

	t.Run("explain -o json prints an Explanation", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "explain", "card-big", "-n", "payments", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var x report.Explanation
		decodeReport(t, out, &x)
		if x.APIVersion != "locus.dev/v1alpha1" || x.Kind != "Explanation" {
			t.Errorf("want apiVersion locus.dev/v1alpha1 kind Explanation, got %q %q", x.APIVersion, x.Kind)
		}
		if x.Pod.Namespace != "payments" || x.Pod.Name != "card-big" || !x.Pod.Pending || x.Pod.Node != "" ||
			x.Pod.Annotations[locusv1alpha1.AnnotationCompliance] != "pci-dss" || !x.Pod.Requests.Cpu().Equal(resource.MustParse("3")) {
			t.Errorf("pod: want payments/card-big pending, pci-dss, cpu 3, got %+v", x.Pod)
		}
		if !strings.HasPrefix(x.Pod.PendingReason, "Unschedulable: ") {
			t.Errorf("pod.pendingReason: want the scheduler's Unschedulable condition, got %q", x.Pod.PendingReason)
		}
		r := x.Result
		if r.Verdict != report.Waits || !r.Pending || r.Node != "" || r.NodesEvaluated != 2 || r.NodesFeasible != 0 ||
			!strings.HasPrefix(r.Reason, "0/2 nodes are available: ") {
			t.Errorf("result: want waits over 2 nodes, none feasible, got %+v", r)
		}
		if !hasRejection(r, "Compliance", "missing certification pci-dss", "general") || !hasRejection(r, "NodeResourcesFit", "Insufficient cpu", "vault") {
			t.Errorf("result.rejections: want Compliance rejecting general and NodeResourcesFit vault, got %+v", r.Rejections)
		}
		if len(r.Nodes) != 2 {
			t.Fatalf("result.nodes: want both nodes, got %+v", r.Nodes)
		}
		for _, n := range r.Nodes {
			if n.Verdict != report.NodeRejected || len(n.Failures) == 0 || n.Total != nil {
				t.Errorf("node %s: want rejected, with failures, unscored; got %+v", n.Name, n)
			}
		}
		if x.Current != nil || len(x.Unavailable) != 0 {
			t.Errorf("a pending pod has no current node, and an admin reads everything: got %+v, %+v", x.Current, x.Unavailable)
		}
		var reasons []string
		for _, e := range x.Events {
			reasons = append(reasons, e.Reason)
		}
		if !slices.Contains(reasons, "FailedScheduling") {
			t.Errorf("events: want FailedScheduling, got %v", reasons)
		}

		out, err = kubectlLocus(ctx, t, kubeconfig, "explain", "card", "-n", "payments", "-o", "yaml")
		if err != nil {
			t.Fatal(err)
		}
		var bound report.Explanation
		if err := yaml.UnmarshalStrict([]byte(out), &bound); err != nil {
			t.Fatalf("decoding -o yaml: %v", err)
		}
		if bound.Pod.Node != "vault" || bound.Pod.Pending || bound.Result.Verdict != report.Placed || bound.Result.Node != "vault" ||
			bound.Current == nil || bound.Current.Status != report.CurrentFits {
			t.Errorf("bound pod: want on vault, placed there now, current fits; got pod %+v, result %+v, current %+v", bound.Pod, bound.Result, bound.Current)
		}
	})

	t.Run("quota and datasets -o json", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "quota", "-A", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var q report.QuotaReport
		decodeReport(t, out, &q)
		if q.Kind != report.KindQuotaReport || len(q.Items) != 1 || q.Items[0].Namespace != "etl" || !q.Items[0].Max.Cpu().Equal(resource.MustParse("2")) ||
			!q.Items[0].Used.Cpu().Equal(resource.MustParse("1")) || q.Items[0].PendingPods != 1 {
			t.Errorf("want etl/quota max cpu 2, used 1, 1 pending, got %+v", q)
		}
		out, err = kubectlLocus(ctx, t, kubeconfig, "datasets", "-n", "etl", "-o", "jsonpath={.items[0].name} {.items[0].pods} {.items[0].locations[0].node}")
		if err != nil {
			t.Fatal(err)
		}
		if out != "sales 1 general" {
			t.Errorf("datasets -o jsonpath: want %q, got %q", "sales 1 general", out)
		}
	})

	t.Run("completion bash", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, kubeconfig, "completion", "bash")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "__start_kubectl-locus") {
			t.Errorf("want a bash completion script for kubectl-locus, got %d bytes", len(out))
		}
		// What kubectl_complete-locus answers for `kubectl locus explain <TAB> -n payments`.
		out, err = kubectlLocus(ctx, t, kubeconfig, "__complete", "explain", "-n", "payments", "card")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(out); len(got) < 3 || got[0] != "card" || got[1] != "card-big" || got[2] != ":4" {
			t.Errorf("pod names: want card, card-big and no file completion (:4), got %q", got)
		}
		out, err = kubectlLocus(ctx, t, kubeconfig, "__complete", "quota", "-n", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Fields(out); !slices.Contains(got, "etl") || !slices.Contains(got, "payments") {
			t.Errorf("namespaces: want etl and payments, got %q", got)
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

	t.Run("simulate -o json prints a Simulation that a pipeline can gate on", func(t *testing.T) {
		file := writeFile(t, podsYAML)
		out, err := kubectlLocus(ctx, t, kubeconfig, "simulate", "-n", "etl", "-f", file, "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var sim report.Simulation
		decodeReport(t, out, &sim)
		if sim.APIVersion != "locus.dev/v1alpha1" || sim.Kind != "Simulation" || sim.Nodes != 3 {
			t.Errorf("want a locus.dev/v1alpha1 Simulation over 3 nodes, got %s %s over %d", sim.APIVersion, sim.Kind, sim.Nodes)
		}
		if want := (report.SimulationSummary{Pods: 2, Placed: 1, Waiting: 1, Unschedulable: 1}); sim.Summary != want {
			t.Errorf("summary: want %+v, got %+v", want, sim.Summary)
		}
		if r := resultOf(&sim, "payments", "card-new"); r == nil || r.Verdict != report.Placed || r.Node != "vault-2" || r.Pending || r.Score == nil {
			t.Errorf("payments/card-new: want placed on vault-2 with a score, got %+v", r)
		}
		r := resultOf(&sim, "etl", "backfill")
		if r == nil || r.Verdict != report.Waits || !r.Pending || r.Node != "" || r.PreFilter == nil || r.PreFilter.Plugin != "BatchQuota" ||
			r.Reason != "BatchQuota: quota etl/quota: cpu would be 3 (used 1 + request 2), over max 2" {
			t.Errorf("etl/backfill: want waiting for BatchQuota, got %+v", r)
		}
		if r != nil && r.Nodes != nil {
			t.Errorf("without --details, want no per-node results")
		}

		// --fail-on-pending: the output in full, then status 2.
		out, err = kubectlLocus(ctx, t, kubeconfig, "simulate", "-n", "etl", "-f", file, "-o", "json", "--fail-on-pending", "--details")
		if code := app.ExitCode(err); code != 2 || !strings.Contains(fmt.Sprint(err), "1 of 2 pods would not be placed") {
			t.Errorf("--fail-on-pending with a pod waiting: want exit status 2, got %d (%v)", code, err)
		}
		var detailed report.Simulation
		decodeReport(t, out, &detailed)
		if r := resultOf(&detailed, "payments", "card-new"); r == nil || len(r.Nodes) != 3 {
			t.Errorf("--details: want card-new's 3 nodes, got %+v", r)
		}
		// Nothing pending: status 0.
		out, err = kubectlLocus(ctx, t, kubeconfig, "simulate", "-n", "etl", "-f", writeFile(t, strings.SplitN(podsYAML, "---", 2)[0]), "--fail-on-pending",
			"-o", "jsonpath={.summary.unschedulable}")
		if err != nil || out != "0" {
			t.Errorf("--fail-on-pending with every pod placed: want status 0 and 0 unschedulable, got %q, %v", out, err)
		}
	})

	t.Run("simulate reads directories with -R and kustomizations", func(t *testing.T) {
		dir := t.TempDir()
		pod := func(name, cpu string) string {
			return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, annotations: {locus.dev/compliance: pci-dss}}
spec:
  schedulerName: locus-scheduler
  containers: [{name: app, image: registry.example.com/pay:1, resources: {requests: {cpu: "%s"}}}]
`, name, cpu)
		}
		for path, content := range map[string]string{
			"top.yaml":                   pod("top", "500m"),
			"notes.txt":                  "not a manifest",
			"team/nested.yaml":           pod("nested", "500m") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
			"team/deeper/job.json":       `{"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch"}, "spec": {"parallelism": 2, "template": {"spec": {"schedulerName": "locus-scheduler", "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "resources": {"requests": {"cpu": "4"}}}]}}}}`,
			"overlay/kustomization.yaml": "namespace: payments\nnamePrefix: prod-\nresources: [../base]\n",
			"base/kustomization.yaml":    "resources: [pod.yaml]\n",
			"base/pod.yaml":              pod("card", "1"),
		} {
			p := filepath.Join(dir, path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		simulate := func(args ...string) *report.Simulation {
			t.Helper()
			out, err := kubectlLocus(ctx, t, kubeconfig, append([]string{"simulate", "-n", "payments", "-o", "json"}, args...)...)
			if err != nil {
				t.Fatal(err)
			}
			var sim report.Simulation
			decodeReport(t, out, &sim)
			return &sim
		}
		names := func(sim *report.Simulation) []string {
			var out []string
			for _, r := range sim.Results {
				out = append(out, r.Pod.Namespace+"/"+r.Pod.Name)
			}
			slices.Sort(out)
			return out
		}

		team := filepath.Join(dir, "team")
		if got, want := names(simulate("-f", team)), []string{"payments/nested"}; !slices.Equal(got, want) {
			t.Errorf("-f DIR: want %v, got %v", want, got)
		}
		sim := simulate("-f", team, "-R", "-f", filepath.Join(dir, "top.yaml"))
		if got, want := names(sim), []string{"payments/batch-0", "payments/batch-1", "payments/nested", "payments/top"}; !slices.Equal(got, want) {
			t.Errorf("-f DIR -R -f FILE: want %v, got %v", want, got)
		}
		if len(sim.Skipped) != 1 || sim.Skipped[0].Kind != "ConfigMap" || sim.Skipped[0].Source != filepath.Join(team, "nested.yaml") {
			t.Errorf("skipped: want the ConfigMap of team/nested.yaml, got %+v", sim.Skipped)
		}
		// 4 CPUs fit no certified node (vault 1, vault-2 2).
		if r := resultOf(sim, "payments", "batch-0"); r == nil || r.Verdict != report.Waits || !hasRejection(*r, "NodeResourcesFit", "Insufficient cpu", "vault-2") {
			t.Errorf("payments/batch-0: want waiting for cpu, got %+v", r)
		}
		if sim.Summary.Pods != 4 || sim.Summary.Waiting != 2 || sim.Summary.Unschedulable != 2 {
			t.Errorf("summary: want 4 pods, 2 waiting, got %+v", sim.Summary)
		}

		sim = simulate("-k", filepath.Join(dir, "overlay"))
		if got, want := names(sim), []string{"payments/prod-card"}; !slices.Equal(got, want) {
			t.Errorf("-k: want %v, got %v", want, got)
		}
		if r := resultOf(sim, "payments", "prod-card"); r == nil || r.Verdict != report.Placed || r.Node != "vault-2" {
			t.Errorf("payments/prod-card: want placed on vault-2, got %+v", r)
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

// TestKubectlLocusNamespaceReader runs explain as a ServiceAccount that may
// read its own namespace only (pods, events, quotas), on an API server that
// enforces RBAC: explain does not fail on what it may not list (nodes,
// namespaces, other namespaces' pods and quotas, the scheduler's ConfigMap),
// says what it could not see, and still explains what it can: the pod's
// quota turns it away, its events are shown; a pod that its quota admits
// gets the verdict unknown rather than a made-up one.
func TestKubectlLocusNamespaceReader(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{"--authorization-mode=RBAC"}})
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	c := cp.Client
	jsonCfg := rest.CopyConfig(cp.Config)
	jsonCfg.ContentType = "application/json"
	sched, err := schedclient.NewForConfig(jsonCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "n1", CPU: "4"}); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"team", "other"} {
		if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := sched.SchedulingV1alpha1().ElasticQuotas(ns).Create(ctx, &schedv1alpha1.ElasticQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "quota"},
			Spec: schedv1alpha1.ElasticQuotaSpec{
				Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")},
				Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")},
			},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var pods []*v1.Pod
	for _, p := range []testenv.PodSpec{
		// Over team's max of 1 CPU.
		{Namespace: "team", Name: "big", SchedulerName: plugins.SchedulerName, CPU: "2"},
		{Namespace: "team", Name: "small", SchedulerName: plugins.SchedulerName, CPU: "500m"},
	} {
		pod, err := testenv.CreatePod(ctx, c, p)
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, pod)
	}
	// The scheduler's word on big, as it would record it (no scheduler runs here).
	now := metav1.Now()
	if _, err := c.CoreV1().Events("team").Create(ctx, &v1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: "team", Name: "big.quota"},
		InvolvedObject: v1.ObjectReference{Kind: "Pod", Namespace: "team", Name: "big", UID: pods[0].UID, APIVersion: "v1"},
		Reason:         "FailedScheduling", Message: "quota team/quota: cpu would be 2, over max 1", Type: v1.EventTypeWarning,
		Source: v1.EventSource{Component: plugins.SchedulerName}, FirstTimestamp: now, LastTimestamp: now, Count: 1,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A ServiceAccount that may read pods, events and the scheduling
	// custom resources of its namespace, and nothing else.
	if _, err := c.CoreV1().ServiceAccounts("team").Create(ctx, &v1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "dev"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	read := []string{"get", "list", "watch"}
	if _, err := c.RbacV1().Roles("team").Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "reader"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods", "events"}, Verbs: read},
			{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"}, Verbs: read},
			{APIGroups: []string{"scheduling.x-k8s.io"}, Resources: []string{"elasticquotas", "podgroups"}, Verbs: read},
			{APIGroups: []string{"locus.dev"}, Resources: []string{"datasets"}, Verbs: read},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RbacV1().RoleBindings("team").Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: "team", Name: "dev"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tok, err := c.CoreV1().ServiceAccounts("team").CreateToken(ctx, "dev",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	devConfig := rest.AnonymousClientConfig(cp.Config)
	devConfig.BearerToken = tok.Status.Token
	dev := filepath.Join(t.TempDir(), "dev-kubeconfig")
	if err := testenv.WriteKubeconfig(devConfig, dev); err != nil {
		t.Fatal(err)
	}
	// RBAC's caches take a moment to see the binding.
	devClient, err := kubernetes.NewForConfig(devConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := devClient.CoreV1().Pods("team").List(ctx, metav1.ListOptions{})
		return err == nil, nil
	}); err != nil {
		t.Fatalf("the ServiceAccount never could list team's pods: %v", err)
	}
	if _, err := devClient.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("the ServiceAccount must not list nodes: got %v", err)
	}

	t.Run("explain says what it could not see and explains the quota", func(t *testing.T) {
		out, errOut, err := kubectlLocusStreams(ctx, t, dev, "explain", "big", "-n", "team")
		if err != nil {
			t.Fatalf("explain as a namespace reader: %v", err)
		}
		for _, want := range []string{
			"Pod: team/big",
			"Profile: locus-scheduler, from the configuration built into kubectl-locus",
			"Evaluated now: could not list nodes: forbidden; node-level reasons unavailable.",
			"Verdict: pending; would wait now: BatchQuota: quota team/quota: cpu would be 2 (used 0 + request 2), over max 1.",
			"FailedScheduling",
		} {
			if !strings.Contains(squash(out), want) {
				t.Errorf("output lacks %q", want)
			}
		}
		for _, want := range []string{
			"warning: could not list nodes: forbidden; node-level reasons unavailable",
			"warning: could not list pods in all namespaces: forbidden; read namespace team only; ",
			"warning: could not list elasticquotas.scheduling.x-k8s.io in all namespaces: forbidden; read namespace team only; ",
			"warning: could not list namespaces: forbidden; the annotations and labels of namespace team are not applied",
		} {
			if !strings.Contains(errOut, want) {
				t.Errorf("stderr lacks %q", want)
			}
		}
	})

	t.Run("explain -o json lists what was unavailable", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, dev, "explain", "big", "-n", "team", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var x report.Explanation
		decodeReport(t, out, &x)
		if r := x.Result; r.Verdict != report.Waits || !r.Pending || r.PreFilter == nil || r.PreFilter.Plugin != "BatchQuota" || r.NodesEvaluated != 0 {
			t.Errorf("result: want waits, turned away by BatchQuota, no nodes evaluated; got %+v", r)
		}
		if len(x.Events) != 1 || x.Events[0].Reason != "FailedScheduling" || x.Events[0].From != plugins.SchedulerName {
			t.Errorf("events: want the FailedScheduling event, got %+v", x.Events)
		}
		unavailable := map[string]report.Unavailable{}
		for _, u := range x.Unavailable {
			unavailable[u.Resource] = u
		}
		if u, ok := unavailable["nodes"]; !ok || u.Reason != metav1.StatusReasonForbidden || u.Impact != "node-level reasons unavailable" || len(u.ReadNamespaces) != 0 {
			t.Errorf("unavailable nodes: want Forbidden, node-level reasons unavailable; got %+v", u)
		}
		for _, resource := range []string{"pods", "elasticquotas.scheduling.x-k8s.io"} {
			if u := unavailable[resource]; u.Reason != metav1.StatusReasonForbidden || !slices.Equal(u.ReadNamespaces, []string{"team"}) {
				t.Errorf("unavailable %s: want Forbidden in all namespaces, read in team; got %+v", resource, u)
			}
		}
		if _, ok := unavailable["events"]; ok {
			t.Errorf("the events of its own namespace are readable, got %+v", unavailable["events"])
		}
	})

	t.Run("a pod that its quota admits gets the verdict unknown", func(t *testing.T) {
		out, err := kubectlLocus(ctx, t, dev, "explain", "small", "-n", "team", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var x report.Explanation
		decodeReport(t, out, &x)
		if r := x.Result; r.Verdict != report.Unknown || !r.Pending || r.PreFilter != nil || r.Reason != "could not list nodes: forbidden; node-level reasons unavailable" {
			t.Errorf("result: want unknown for want of the nodes, got %+v", r)
		}
		// The administrator sees the node: small would be placed there.
		out, err = kubectlLocus(ctx, t, cp.KubeconfigFile(t), "explain", "small", "-n", "team", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var admin report.Explanation
		decodeReport(t, out, &admin)
		if r := admin.Result; r.Verdict != report.Placed || r.Node != "n1" {
			t.Errorf("as admin: want placed on n1, got %+v", r)
		}
		for _, u := range admin.Unavailable {
			if u.Reason == metav1.StatusReasonForbidden {
				t.Errorf("as admin: nothing may be forbidden, got %+v", u)
			}
		}
	})

	t.Run("a pod of another namespace is forbidden", func(t *testing.T) {
		if _, err := kubectlLocus(ctx, t, dev, "explain", "big", "-n", "other"); !apierrors.IsForbidden(err) {
			t.Errorf("want Forbidden, got %v", err)
		}
	})
}
