package metrics

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

var (
	// QuotaUsed is each quota's used amount, per resource (cores for cpu, bytes for memory).
	QuotaUsed = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: namespace, Subsystem: "quota", Name: "used",
		Help:           "Requests counted against each ElasticQuota (bound and reserved pods), per resource.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "quota", "resource"})
	// QuotaMin is each quota's guaranteed amount, per resource.
	QuotaMin = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: namespace, Subsystem: "quota", Name: "min",
		Help:           "ElasticQuota min, per resource.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "quota", "resource"})
	// QuotaMax is each quota's limit, per resource.
	QuotaMax = metrics.NewGaugeVec(&metrics.GaugeOpts{
		Namespace: namespace, Subsystem: "quota", Name: "max",
		Help:           "ElasticQuota max, per resource.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"namespace", "quota", "resource"})
	// GangWaitSeconds is how long gangs took from their first reserved member to minMember.
	GangWaitSeconds = metrics.NewHistogram(&metrics.HistogramOpts{
		Namespace: namespace, Subsystem: "gang", Name: "wait_seconds",
		Help:           "Time from a gang's first reserved member until minMember members were reserved.",
		Buckets:        metrics.ExponentialBuckets(0.01, 2, 16),
		StabilityLevel: metrics.ALPHA,
	})

	registerBatchQuotaOnce sync.Once
)

// RegisterBatchQuota registers the BatchQuota metrics once per process.
func RegisterBatchQuota() {
	registerBatchQuotaOnce.Do(func() {
		legacyregistry.MustRegister(QuotaUsed, QuotaMin, QuotaMax, GangWaitSeconds)
	})
}
