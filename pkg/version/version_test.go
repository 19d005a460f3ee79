package version

import (
	"regexp"
	"testing"
)

// The binaries' --version is checked end to end (test/e2e), where the
// module information names k8s.io/kubernetes; this test binary does not
// link it.
func TestString(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = "v1.2.3-4-gabcdef0"
	got := String("locus-scheduler")
	if !regexp.MustCompile(`^locus-scheduler v1\.2\.3-4-gabcdef0 \(Kubernetes v\S+\)$`).MatchString(got) {
		t.Errorf("String() = %q", got)
	}
}
