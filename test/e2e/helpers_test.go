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
