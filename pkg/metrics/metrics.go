// Package metrics defines locus's own metrics. They are registered in
// component-base's legacy registry, so the scheduler's /metrics endpoint
// serves them beside kube-scheduler's.
package metrics

import (
	"sync"

	"k8s.io/component-base/metrics"
	"k8s.io/component-base/metrics/legacyregistry"
)

const namespace = "locus"

// Locality levels, the "level" label of LocalityPlacements.
const (
	LevelNode   = "node"
	LevelZone   = "zone"
	LevelRegion = "region"
	LevelNone   = "none"
)

// Reasons of compliance rejections, the "reason" label.
const (
	RejectMissing   = "missing"
	RejectExpired   = "expired"
	RejectResidency = "residency"
	RejectInvalid   = "invalid"
)

var (
	// ComplianceRejections counts nodes (or, with reason "invalid", pods)
	// rejected by the Compliance plugin.
	ComplianceRejections = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Subsystem:      "compliance",
		Name:           "rejections_total",
		Help:           "Filter and PreBind rejections by the Compliance plugin, by standard (\"other\" for one that no node carries; the residency group for reason residency) and reason (missing, expired, residency, invalid).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"standard", "reason"})

	// CompliancePlacements counts regulated pods bound, per standard.
	CompliancePlacements = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Subsystem:      "compliance",
		Name:           "placements_total",
		Help:           "Regulated pods bound to a certified node, by standard.",
		StabilityLevel: metrics.ALPHA,
	}, []string{"standard"})

	// ComplianceLapsedPods counts running regulated pods whose node no
	// longer meets their requirements (a certification expired or removed,
	// the node left the residency group).
	ComplianceLapsedPods = metrics.NewGauge(&metrics.GaugeOpts{
		Namespace:      namespace,
		Subsystem:      "compliance",
		Name:           "lapsed_pods",
		Help:           "Running regulated pods whose node no longer meets their compliance requirements.",
		StabilityLevel: metrics.ALPHA,
	})

	// LocalityPlacements counts pods that read data (Datasets or bound
	// volumes) when they are bound, by the locality level achieved.
	LocalityPlacements = metrics.NewCounterVec(&metrics.CounterOpts{
		Namespace:      namespace,
		Subsystem:      "locality",
		Name:           "placements_total",
		Help:           "Pods that read data, bound by locus, by the locality level achieved (node, zone, region, none).",
		StabilityLevel: metrics.ALPHA,
	}, []string{"level"})

	registerOnce sync.Once
)

// Register registers locus's metrics once per process.
func Register() {
	registerOnce.Do(func() {
		legacyregistry.MustRegister(ComplianceRejections, CompliancePlacements, ComplianceLapsedPods, LocalityPlacements)
	})
}
