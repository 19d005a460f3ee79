// +k8s:deepcopy-gen=package
// +groupName=kubescheduler.config.k8s.io

// Package config holds the internal types of locus's plugin args. They are
// registered into kube-scheduler's own scheme, so a KubeSchedulerConfiguration
// pluginConfig entry decodes straight into them.
package config
