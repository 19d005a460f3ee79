package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	"locus.dev/locus/pkg/testenv"
)

// TestDeployToAnotherNamespace: an overlay that moves locus out of
// kube-system works, because the leader-election Lease follows the pod's
// namespace (--leader-elect-resource-namespace=$(POD_NAMESPACE)) and not
// the config file's. The binary runs as the Deployment's container would:
// its args with the pod's namespace expanded, the ConfigMap's config, the
// ServiceAccount's token, on an API server that enforces RBAC.
func TestDeployToAnotherNamespace(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	const ns = "locus-system"
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{"--authorization-mode=RBAC"}})
	c := cp.Client
	admin := cp.KubeconfigFile(t)
	for _, n := range []string{"kube-system", ns} {
		if err := testenv.CreateNamespace(ctx, c, n, nil); err != nil {
			t.Fatal(err)
		}
	}
	base, err := filepath.Abs("../../manifests/base")
	if err != nil {
		t.Fatal(err)
	}
	overlay := t.TempDir()
	rel, err := filepath.Rel(overlay, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: "+ns+"\nresources:\n- "+rel+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := kubectl(t, admin, "apply", "--server-side", "-k", "../../manifests/crds"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := kubectl(t, admin, "apply", "--server-side", "-k", overlay); err != nil {
		t.Fatalf("kubectl apply -k (overlay to %s): %v\n%s", ns, err, out)
	}

	stderr := startAsDeployment(ctx, t, cp, ns, "--secure-port=0")

	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		lease, err := c.CoordinationV1().Leases(ns).Get(ctx, "locus-scheduler", metav1.GetOptions{})
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", nil
	}); err != nil {
		t.Fatalf("no lease %s/locus-scheduler held: %v\nscheduler stderr:\n%s", ns, err, tail(stderr.String()))
	}
	if _, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{}); err == nil {
		t.Error("a lease in kube-system: the config file's namespace was used")
	}
	if strings.Contains(stderr.String(), "forbidden") {
		t.Errorf("the scheduler hit RBAC denials:\n%s", grepLines(stderr.String(), "forbidden"))
	}
}

// startAsDeployment runs bin/locus-scheduler as the container of the
// locus-scheduler Deployment in namespace ns would run: the Deployment's
// args with the pod's namespace expanded as the kubelet does, the config of
// the locus-scheduler-config ConfigMap, and the ServiceAccount's token; then
// extraArgs. It returns the process's stderr; the process is killed at the
// end of the test.
func startAsDeployment(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, ns string, extraArgs ...string) *bytes.Buffer {
	t.Helper()
	c := cp.Client
	dep, err := c.AppsV1().Deployments(ns).Get(ctx, "locus-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	var args []string
	for _, a := range ctr.Args {
		a = strings.ReplaceAll(a, "$(POD_NAMESPACE)", ns) // as the kubelet expands it
		if strings.HasPrefix(a, "--config=") {
			continue // written below from the ConfigMap
		}
		args = append(args, a)
	}
	cm, err := c.CoreV1().ConfigMaps(ns).Get(ctx, "locus-scheduler-config", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saKubeconfig := serviceAccountKubeconfig(ctx, t, cp, ns)
	config := configWithKubeconfig(t, []byte(cm.Data["scheduler-config.yaml"]), saKubeconfig)
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "locus-scheduler"), append(append([]string{"--config", config}, args...), extraArgs...)...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return &stderr
}
