// +k8s:deepcopy-gen=package
// +groupName=locus.dev

// Package report is the machine-readable output of kubectl-locus: what
// `kubectl locus explain|simulate|quota|datasets|version -o json|yaml`
// prints. Every object carries apiVersion locus.dev/v1alpha1 and its kind
// (Explanation, Simulation, QuotaReport, DatasetReport, Version); within
// v1alpha1, fields are only ever added, never renamed, removed or given a
// new meaning. docs/kubectl-locus.md documents each field.
//
// These are output documents, not API resources: no API server serves them.
// The package depends on apimachinery and k8s.io/api only, so that tools
// that read kubectl-locus's output can decode it into these types.
//
// Regenerate zz_generated.deepcopy.go after changing the types:
//
//	go tool deepcopy-gen --go-header-file hack/boilerplate/boilerplate.go.txt \
//	  --output-file zz_generated.deepcopy.go ./pkg/explain/report
package report
