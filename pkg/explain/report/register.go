package report

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// SchemeGroupVersion is the group and version of kubectl-locus's output:
// locus.dev/v1alpha1.
var SchemeGroupVersion = schema.GroupVersion{Group: "locus.dev", Version: "v1alpha1"}

// The kinds of kubectl-locus's output.
const (
	KindExplanation   = "Explanation"
	KindSimulation    = "Simulation"
	KindQuotaReport   = "QuotaReport"
	KindDatasetReport = "DatasetReport"
	KindVersion       = "Version"
)

var (
	// SchemeBuilder registers the output kinds.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the output kinds to a scheme, so that cli-runtime's
	// printers can type them.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(SchemeGroupVersion,
		&Explanation{},
		&Simulation{},
		&QuotaReport{},
		&DatasetReport{},
		&Version{},
	)
	return nil
}

// typeMeta is the apiVersion and kind of an output kind.
func typeMeta(kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: SchemeGroupVersion.String(), Kind: kind}
}
