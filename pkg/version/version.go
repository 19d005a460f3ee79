// Package version says which locus release a binary is and which
// Kubernetes release it is built on.
//
// The locus version is set at build time (make build, make release):
//
//	-ldflags "-X locus.dev/locus/pkg/version.version=$(git describe --tags --always --dirty)"
//
// The same build sets k8s.io/component-base/version's gitVersion to the
// Kubernetes version of k8s.io/kubernetes in go.mod, so /version, the
// kubernetes_build_info metric and the scheduler's compatibility version
// speak of the Kubernetes release (a locus version there would be taken for
// a Kubernetes binary version and change the emulated feature set).
package version

import (
	"fmt"
	"runtime/debug"

	baseversion "k8s.io/component-base/version"
)

// version is the locus version; builds without ldflags are "v0.0.0-dev".
var version = "v0.0.0-dev"

// Locus returns the locus version.
func Locus() string { return version }

// Kubernetes returns the version of k8s.io/kubernetes this binary is built
// on: from the build's module information, else component-base's.
func Kubernetes() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path != "k8s.io/kubernetes" {
				continue
			}
			if m.Replace != nil {
				return m.Replace.Version
			}
			return m.Version
		}
	}
	return baseversion.Get().GitVersion
}

// String is "PROGRAM VERSION (Kubernetes VERSION)", what --version prints.
func String(program string) string {
	return fmt.Sprintf("%s %s (Kubernetes %s)", program, Locus(), Kubernetes())
}
