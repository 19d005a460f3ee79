package plugins

import (
	"testing"

	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"locus.dev/locus/manifests"
)

// FuzzConfig: a KubeSchedulerConfiguration of any content decodes (with
// locus's args, defaults applied) or fails with an error, and the args
// validation never panics on what decodes. The seeds, the shipped config
// among them, run with every `go test`.
func FuzzConfig(f *testing.F) {
	f.Add(manifests.SchedulerConfig)
	f.Add([]byte(`apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: locus-scheduler
  pluginConfig:
  - name: DataLocality
    args: {zoneWeight: 2, regionWeight: -1}
  - name: BatchQuota
    args: {defaultScheduleTimeoutSeconds: -5, statusUpdateInterval: 0s}
  - name: Compliance
    args: {residency: {Europe: [eu-west-1]}, certificationLabelPrefix: "bad prefix"}
`))
	f.Add([]byte(`{"apiVersion":"kubescheduler.config.k8s.io/v1","kind":"KubeSchedulerConfiguration","profiles":[{"pluginConfig":[{"name":"Compliance","args":{"residency":null}}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		obj, _, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
		if err != nil {
			return
		}
		cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
		if !ok {
			return
		}
		if err := ValidateConfig(cfg); err != nil && err.Error() == "" {
			t.Fatal("an error without a message")
		}
	})
}
