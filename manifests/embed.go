// Package manifests gives programs the configuration files that the
// deployment ships, so that tests, the demo and the sandbox run on exactly
// what users deploy.
package manifests

import _ "embed"

// SchedulerConfig is base/scheduler-config.yaml, the KubeSchedulerConfiguration
// of the locus-scheduler Deployment.
//
//go:embed base/scheduler-config.yaml
var SchedulerConfig []byte
