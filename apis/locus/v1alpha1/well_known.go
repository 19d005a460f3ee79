package v1alpha1

// Annotations that pods and namespaces use to talk to locus.
const (
	// AnnotationCompliance lists the standards a pod needs, comma separated,
	// each a lowercase DNS label ("pci-dss,hipaa"). Set on a pod or its
	// namespace; the pod's effective requirements are the union of both.
	AnnotationCompliance = "locus.dev/compliance"
	// AnnotationDataResidency names the region group (a key of the Compliance
	// plugin's residency args) that a pod must stay in.
	AnnotationDataResidency = "locus.dev/data-residency"
	// AnnotationDatasets lists the Datasets (in the pod's namespace) a pod reads.
	AnnotationDatasets = "locus.dev/datasets"
	// AnnotationLocalityWait is how long a pod waits for a node near its data.
	AnnotationLocalityWait = "locus.dev/locality-wait"
	// AnnotationScheduled is set by locus on a PodGroup: how many of its
	// members are bound now.
	AnnotationScheduled = "locus.dev/scheduled"
)

// Event reasons that locus records. They are constants so that users can
// select events by reason.
const (
	// EventReasonCompliantPlacement audits a regulated pod's placement.
	EventReasonCompliantPlacement = "CompliantPlacement"
	// EventReasonLocalityPlacement says that a pod that reads data got no
	// locality at all, and where its data is.
	EventReasonLocalityPlacement = "LocalityPlacement"
	// EventReasonQuotaExceeded says that a pod waits for its namespace's quota.
	EventReasonQuotaExceeded = "QuotaExceeded"
	// EventReasonGangTimeout says that a gang did not assemble in time.
	EventReasonGangTimeout = "GangTimeout"
	// EventReasonDatasetNotFound says that a pod names a Dataset that does not exist.
	EventReasonDatasetNotFound = "DatasetNotFound"
	// EventReasonMultipleQuotas warns that a namespace has several
	// ElasticQuotas: all of them limit it, the tightest per resource.
	EventReasonMultipleQuotas = "MultipleQuotas"
	// EventReasonInvalidQuota names a bad value of an ElasticQuota.
	EventReasonInvalidQuota = "InvalidQuota"
	// EventReasonPodGroupNotFound says that a pod is labelled for a PodGroup
	// that does not exist: it waits rather than being placed alone.
	EventReasonPodGroupNotFound = "PodGroupNotFound"
)
