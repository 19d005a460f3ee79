package e2e

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

func kubectl(t *testing.T, kubeconfig string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// TestDeploymentManifests applies manifests/base with kubectl to an API
// server that enforces RBAC, checks the pod template against the restricted
// Pod Security Standard with the real admission plugin, and runs the
// scheduler binary as the manifests' ServiceAccount: with only the RBAC the
// manifests grant, it takes its own lease, places pods with all three
// plugins and writes quota status, and it cannot take kube-scheduler's lease.
func TestDeploymentManifests(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{"--authorization-mode=RBAC"}})
	c := cp.Client
	admin := cp.KubeconfigFile(t)
	if err := testenv.CreateNamespace(ctx, c, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	installWithKubectl(t, admin)
	dep, err := c.AppsV1().Deployments("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *dep.Spec.Replicas)
	}

	checkPodTemplate(ctx, t, cp, admin, dep)
	checkLeastPrivilege(t, admin, "kube-system")

	// Run the binary with the ServiceAccount's token and the shipped config.
	saKubeconfig := serviceAccountKubeconfig(ctx, t, cp, "kube-system")

	for _, n := range []testenv.NodeSpec{
		{Name: "cache", Labels: map[string]string{v1.LabelTopologyZone: "a"}},
		{Name: "pci", Labels: map[string]string{v1.LabelTopologyZone: "b", "node-restriction.kubernetes.io/compliance.pci-dss": "true"}},
		{Name: "plain", Labels: map[string]string{v1.LabelTopologyZone: "b"}},
	} {
		if _, err := testenv.CreateNode(ctx, c, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.CreateNamespace(ctx, c, "team", nil); err != nil {
		t.Fatal(err)
	}
	dataset := `apiVersion: locus.dev/v1alpha1
kind: Dataset
metadata: {name: events, namespace: team}
spec:
  locations: [{node: cache, bytes: 100Gi}]
`
	if out, err := kubectlStdin(t, admin, dataset, "apply", "-f", "-"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	jsonCfg := rest.CopyConfig(cp.Config)
	jsonCfg.ContentType = "application/json"
	sc, err := schedclient.NewForConfig(jsonCfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.SchedulingV1alpha1().ElasticQuotas("team").Create(ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Name: "quota", Namespace: "team"},
		Spec: schedv1alpha1.ElasticQuotaSpec{
			Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
			Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The scheduler starts once the Dataset and the quota exist: its
	// informers' first lists hold them, so the reader's placement does not
	// race the Dataset's watch event.
	config := configWithKubeconfig(t, manifests.SchedulerConfig, saKubeconfig)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "locus-scheduler"), "--config", config, "--secure-port=0", "-v=2")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	for _, p := range []testenv.PodSpec{
		{Namespace: "team", Name: "reader", SchedulerName: plugins.SchedulerName, CPU: "500m", Annotations: map[string]string{locusv1alpha1.AnnotationDatasets: "events"}},
		{Namespace: "team", Name: "payment", SchedulerName: plugins.SchedulerName, CPU: "500m", Annotations: map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}},
	} {
		if _, err := testenv.CreatePod(ctx, c, p); err != nil {
			t.Fatal(err)
		}
	}
	for pod, want := range map[string]string{"reader": "cache", "payment": "pci"} {
		node, err := testenv.WaitForPodBound(ctx, c, "team", pod, 60*time.Second)
		if err != nil {
			t.Fatalf("%v\nscheduler stderr:\n%s", err, tail(stderr.String()))
		}
		if node != want {
			t.Errorf("%s bound to %s, want %s", pod, node, want)
		}
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		eq, err := sc.SchedulingV1alpha1().ElasticQuotas("team").Get(ctx, "quota", metav1.GetOptions{})
		used := eq.Status.Used[v1.ResourceCPU]
		return err == nil && used.Cmp(resource.MustParse("1")) == 0, nil
	})
	if err != nil {
		t.Errorf("quota status.used not written with the ServiceAccount's rights: %v\n%s", err, tail(stderr.String()))
	}
	lease, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Errorf("lease locus-scheduler not held: %v", err)
	}
	if strings.Contains(stderr.String(), "forbidden") {
		t.Errorf("the scheduler hit RBAC denials:\n%s", grepLines(stderr.String(), "forbidden"))
	}

	// Removing locus keeps the CRDs, and with them every team's quotas and
	// Datasets.
	if out, err := kubectl(t, admin, "delete", "-k", "../../manifests/base", "--wait=true"); err != nil {
		t.Fatalf("kubectl delete -k manifests/base: %v\n%s", err, out)
	}
	if _, err := c.AppsV1().Deployments("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{}); err == nil {
		t.Error("the Deployment is still there after kubectl delete -k manifests/base")
	}
	for _, crd := range locusCRDs {
		if out, err := kubectl(t, admin, "get", "crd/"+crd); err != nil {
			t.Errorf("CRD %s gone after removing locus: %v\n%s", crd, err, out)
		}
	}
	if _, err := sc.SchedulingV1alpha1().ElasticQuotas("team").Get(ctx, "quota", metav1.GetOptions{}); err != nil {
		t.Errorf("the team's ElasticQuota is gone after removing locus: %v", err)
	}
	if out, err := kubectl(t, admin, "get", "datasets.locus.dev/events", "-n", "team"); err != nil {
		t.Errorf("the team's Dataset is gone after removing locus: %v\n%s", err, out)
	}
}

// checkPodTemplate checks the pod template of a deployment of locus (the
// kustomize base's, the Helm chart's): it passes the restricted Pod
// Security Standard, as enforced by the API server's own PodSecurity
// admission, has requests and limits, and probes /livez and /readyz over
// HTTPS on the secure port.
func checkPodTemplate(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, admin string, dep *appsv1.Deployment) {
	t.Helper()
	c := cp.Client
	if err := testenv.CreateNamespace(ctx, c, "psa-restricted", nil); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, admin, "label", "--overwrite", "namespace", "psa-restricted", "pod-security.kubernetes.io/enforce=restricted"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "template", Namespace: "psa-restricted"}, Spec: *dep.Spec.Template.Spec.DeepCopy()}
	pod.Spec.ServiceAccountName, pod.Spec.PriorityClassName = "", ""
	if _, err := c.CoreV1().Pods("psa-restricted").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("the Deployment's pod template violates the restricted Pod Security Standard: %v", err)
	}
	if n := len(dep.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want 1", n)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	if ctr.Resources.Requests.Cpu().IsZero() || ctr.Resources.Limits.Memory().IsZero() {
		t.Errorf("container resources %+v: want requests and limits", ctr.Resources)
	}
	for _, p := range []*v1.Probe{ctr.LivenessProbe, ctr.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil || p.HTTPGet.Scheme != v1.URISchemeHTTPS || p.HTTPGet.Port.IntValue() != 10259 {
			t.Errorf("probe %+v: want HTTPS on 10259", p)
		}
	}
}

// checkLeastPrivilege asks the API server's RBAC authorizer what the
// locus-scheduler ServiceAccount of namespace ns may do: its own Lease in
// ns, quota status and Datasets, and not kube-scheduler's Lease, pods'
// creation or Secrets.
func checkLeastPrivilege(t *testing.T, admin, ns string) {
	t.Helper()
	sa := "system:serviceaccount:" + ns + ":locus-scheduler"
	for _, check := range []struct {
		args []string
		want string
	}{
		{[]string{"update", "leases/locus-scheduler", "-n", ns}, "yes"},
		{[]string{"update", "leases/kube-scheduler", "-n", "kube-system"}, "no"},
		{[]string{"update", "leases/other", "-n", ns}, "no"},
		{[]string{"update", "elasticquotas.scheduling.x-k8s.io", "--subresource=status", "-n", "team"}, "yes"},
		{[]string{"create", "pods", "-n", "default"}, "no"},
		{[]string{"get", "secrets", "-n", "kube-system"}, "no"},
		{[]string{"get", "secrets", "-n", ns}, "no"},
		{[]string{"list", "datasets.locus.dev", "-A"}, "yes"},
	} {
		out, _ := kubectl(t, admin, append([]string{"auth", "can-i", "--as", sa}, check.args...)...)
		if got := strings.TrimSpace(out); got != check.want {
			t.Errorf("can %s %v? %q, want %q", sa, check.args, got, check.want)
		}
	}
}

func kubectlStdin(t *testing.T, kubeconfig, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func ptrInt64(v int64) *int64 { return &v }
