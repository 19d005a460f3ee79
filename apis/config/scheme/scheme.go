// Package scheme registers locus's plugin args into kube-scheduler's scheme.
// Import it for its side effect wherever a KubeSchedulerConfiguration that
// configures locus plugins is decoded.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	kubeschedulerscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"locus.dev/locus/apis/config"
	configv1 "locus.dev/locus/apis/config/v1"
)

// Scheme is kube-scheduler's scheme, with locus's args added.
var Scheme = kubeschedulerscheme.Scheme

func init() {
	AddToScheme(Scheme)
}

// AddToScheme adds locus's internal and v1 args to a scheme.
func AddToScheme(scheme *runtime.Scheme) {
	utilruntime.Must(config.AddToScheme(scheme))
	utilruntime.Must(configv1.AddToScheme(scheme))
}
