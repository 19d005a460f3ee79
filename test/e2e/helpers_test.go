package e2e

import (
	"context"
	"path/filepath"
	"testing"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"

	"locus.dev/locus/pkg/testenv"
)

func mustDynamic(t *testing.T, cp *testenv.ControlPlane) dynamic.Interface {
	t.Helper()
	d, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// locusCRDs are the CRDs in manifests/crds.
var locusCRDs = []string{"datasets.locus.dev", "elasticquotas.scheduling.x-k8s.io", "podgroups.scheduling.x-k8s.io"}

// installWithKubectl installs locus as the README says, with the real
// kubectl: the CRDs (their own kustomization), then the base.
func installWithKubectl(t *testing.T, kubeconfig string) {
	t.Helper()
	if out, err := kubectl(t, kubeconfig, "apply", "--server-side", "-k", "../../manifests/crds"); err != nil {
		t.Fatalf("kubectl apply -k manifests/crds: %v\n%s", err, out)
	}
	for _, crd := range locusCRDs {
		if out, err := kubectl(t, kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", "crd/"+crd); err != nil {
			t.Fatalf("CRD %s: %v\n%s", crd, err, out)
		}
	}
	if out, err := kubectl(t, kubeconfig, "apply", "--server-side", "-k", "../../manifests/base"); err != nil {
		t.Fatalf("kubectl apply -k manifests/base: %v\n%s", err, out)
	}
}

// serviceAccountKubeconfig writes a kubeconfig that acts as the
// locus-scheduler ServiceAccount of namespace ns, as the Deployment's pod
// does.
func serviceAccountKubeconfig(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, ns string) string {
	t.Helper()
	tok, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "locus-scheduler",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptrInt64(3600)}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saConfig := rest.AnonymousClientConfig(cp.Config)
	saConfig.BearerToken = tok.Status.Token
	saKubeconfig := filepath.Join(t.TempDir(), "sa-kubeconfig")
	if err := testenv.WriteKubeconfig(saConfig, saKubeconfig); err != nil {
		t.Fatal(err)
	}
	return saKubeconfig
}
