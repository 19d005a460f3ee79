// +k8s:deepcopy-gen=package
// +groupName=locus.dev

// Package v1alpha1 is the locus.dev/v1alpha1 API: the Dataset custom
// resource, which says where a data set lives, and the annotations and event
// reasons through which pods and users talk to locus.
package v1alpha1
