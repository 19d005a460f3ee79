//go:build bench_peer

package bench

import (
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	_ "sigs.k8s.io/scheduler-plugins/apis/config/scheme" // registers CoschedulingArgs into kube-scheduler's scheme
	"sigs.k8s.io/scheduler-plugins/pkg/capacityscheduling"
	"sigs.k8s.io/scheduler-plugins/pkg/coscheduling"
)

// peerConfig is scheduler-plugins' own setup for gangs and quotas (their
// manifests/coscheduling and manifests/capacityscheduling, in one profile):
// Coscheduling sorts the queue; CapacityScheduling's PostFilter (quota
// reclaim) replaces DefaultPreemption. The Permit wait matches locus's
// defaultScheduleTimeoutSeconds.
const peerConfig = `
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: scheduler-plugins
  plugins:
    queueSort:
      enabled:
      - name: Coscheduling
      disabled:
      - name: "*"
    multiPoint:
      enabled:
      - name: Coscheduling
      - name: CapacityScheduling
    postFilter:
      enabled:
      - name: Coscheduling
      - name: CapacityScheduling
      disabled:
      - name: "*"
  pluginConfig:
  - name: Coscheduling
    args:
      permitWaitingTimeSeconds: 60
`

func init() {
	// The plugins' controller-runtime caches log through controller-runtime;
	// without a logger it prints a stack trace on first use.
	ctrllog.SetLogger(klog.Background())
	peerProfile = &profile{
		schedulerName: "scheduler-plugins",
		config:        []byte(peerConfig),
		registry: frameworkruntime.Registry{
			coscheduling.Name:       coscheduling.New,
			capacityscheduling.Name: capacityscheduling.New,
		},
		// Their controller-runtime caches read ElasticQuotas and PodGroups,
		// which speak JSON only.
		kubeConfig: func(c *cluster) *rest.Config { return c.jsonConfig },
	}
}
