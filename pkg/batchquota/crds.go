package batchquota

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/pkg/crdinformer"
)

var (
	elasticQuotas = schema.GroupResource{Group: schedv1alpha1.SchemeGroupVersion.Group, Resource: "elasticquotas"}
	podGroups     = schema.GroupResource{Group: schedv1alpha1.SchemeGroupVersion.Group, Resource: "podgroups"}
)

// unserved asks the API server, once as the plugin is built, which of
// ElasticQuota and PodGroup it does not serve, keyed by their event names.
// BatchQuota registers no cluster events for those: the scheduler's own
// informers of them would never sync, and it would never start.
func unserved(client schedclient.Interface, logger klog.Logger) map[string]bool {
	not := crdinformer.Unserved(client.Discovery(), schedv1alpha1.SchemeGroupVersion, elasticQuotas.Resource, podGroups.Resource)
	out := map[string]bool{elasticQuotaGVK: not[elasticQuotas.Resource], podGroupGVK: not[podGroups.Resource]}
	for _, r := range []string{elasticQuotaGVK, podGroupGVK} {
		if out[r] {
			logger.Info("Warning: the API server does not serve this resource (is its CRD installed?); BatchQuota reads it as empty, and changes to it requeue no pods until the scheduler restarts", "resource", r)
		}
	}
	return out
}
