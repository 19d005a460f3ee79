package e2e

import (
	"testing"

	"k8s.io/client-go/dynamic"

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
