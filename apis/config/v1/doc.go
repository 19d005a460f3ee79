// +k8s:deepcopy-gen=package
// +k8s:conversion-gen=locus.dev/locus/apis/config
// +k8s:defaulter-gen=TypeMeta
// +k8s:defaulter-gen-input=locus.dev/locus/apis/config/v1
// +groupName=kubescheduler.config.k8s.io

// Package v1 holds the versioned (kubescheduler.config.k8s.io/v1) plugin args
// of locus, with their defaults.
package v1
