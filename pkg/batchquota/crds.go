package batchquota

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
)

// unserved asks the API server, once as the plugin is built, which of
// ElasticQuota and PodGroup it does not serve, keyed by their event names.
func unserved(_ context.Context, client schedclient.Interface, logger klog.Logger) map[string]bool {
	out := map[string]bool{}
	list, err := client.Discovery().ServerResourcesForGroupVersion(schedv1alpha1.SchemeGroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		out[elasticQuotaGVK], out[podGroupGVK] = true, true
	case err != nil:
		return out // unknown: assume served
	default:
		served := map[string]bool{}
		for _, r := range list.APIResources {
			served[r.Name] = true
		}
		out[elasticQuotaGVK], out[podGroupGVK] = !served["elasticquotas"], !served["podgroups"]
	}
	for _, r := range []string{elasticQuotaGVK, podGroupGVK} {
		if out[r] {
			logger.Info("Warning: the API server does not serve this resource (is its CRD installed?); BatchQuota reads it as empty, and changes to it requeue no pods until the scheduler restarts", "resource", r)
		}
	}
	return out
}

// missingCRDs lets BatchQuota run where the API server does not serve
// ElasticQuotas or PodGroups (their CRD is not installed, or was deleted).
// Such a resource has no objects: no namespace is limited by a quota, no
// PodGroup exists. Its list then reads as empty, so that its informer syncs
// and neither the scheduler's start (which waits for every informer of its
// factory) nor BatchQuota's counts wait forever; the watch still fails, so
// the informer lists again, with backoff, until the resource is served, and
// then reads its objects. The log says so at the default verbosity, once per
// change.
type missingCRDs struct {
	logger  klog.Logger
	mu      sync.Mutex
	missing map[string]bool
}

// informer is a namespace-indexed informer of resource (objects of type
// obj, lists of type empty) whose list reads as empty while the resource is
// not served.
func (m *missingCRDs) informer(resource string, obj, empty runtime.Object, resync time.Duration,
	list cache.ListWithContextFunc, watch cache.WatchFuncWithContext) cache.SharedIndexInformer {
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			got, err := list(ctx, o)
			return m.list(resource, got, empty, err)
		},
		WatchFuncWithContext: watch,
	}, obj, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// list returns got, or empty when the resource is not served.
func (m *missingCRDs) list(resource string, got, empty runtime.Object, err error) (runtime.Object, error) {
	notServed := apierrors.IsNotFound(err)
	m.mu.Lock()
	if m.missing == nil {
		m.missing = map[string]bool{}
	}
	changed := m.missing[resource] != notServed
	m.missing[resource] = notServed
	m.mu.Unlock()
	switch {
	case notServed && changed:
		m.logger.Info("Warning: the API server does not serve this resource (is its CRD installed?); BatchQuota reads it as empty until it does",
			"resource", resource+".scheduling.x-k8s.io", "err", err)
	case err == nil && changed:
		m.logger.Info("The API server serves this resource again", "resource", resource+".scheduling.x-k8s.io")
	}
	if notServed {
		return empty, nil
	}
	return got, err
}
