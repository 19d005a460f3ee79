// Package crdinformer builds informers of custom resources that keep a
// scheduler plugin running where the API server does not serve the resource:
// its CRD is not installed, or was deleted while the scheduler runs.
//
// A scheduler waits at start for every informer of its factories to sync. An
// informer of a resource that is not served never syncs: its list fails
// with NotFound, again and again, and the scheduler never starts. Here such
// a list reads as empty (a resource that is not served has no objects), so
// the informer syncs. Its watch still fails, so the informer lists again,
// with client-go's backoff, until the resource is served, and then reads its
// objects. The log says so at the default verbosity, once per change.
//
// The scheduler also builds informers of its own, for the resources that a
// plugin registers cluster events for; Unserved tells a plugin, as it is
// built, which resources not to register events for.
package crdinformer

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// Unserved asks the API server, through d, which of the resources (plural
// names such as "datasets") of gv it does not serve. An error other than
// NotFound leaves the answer unknown: every resource is then taken as
// served, as before this check existed. d may be nil (no check).
func Unserved(d discovery.DiscoveryInterface, gv schema.GroupVersion, resources ...string) map[string]bool {
	out := map[string]bool{}
	if d == nil {
		return out
	}
	list, err := d.ServerResourcesForGroupVersion(gv.String())
	switch {
	case apierrors.IsNotFound(err):
		for _, r := range resources {
			out[r] = true
		}
	case err != nil || list == nil:
		// unknown: assume served
	default:
		served := map[string]bool{}
		for _, r := range list.APIResources {
			served[r.Name] = true
		}
		for _, r := range resources {
			out[r] = !served[r]
		}
	}
	return out
}

// Missing builds informers whose list reads as empty while their resource
// is not served, and remembers which resources are not served, as their
// last list found. The zero value is not usable: use New.
type Missing struct {
	logger klog.Logger
	plugin string
	// consequence says, in the warning, what the plugin does meanwhile.
	consequence map[string]string

	mu      sync.Mutex
	missing map[string]bool
}

// New returns a Missing that logs through logger on behalf of plugin.
func New(logger klog.Logger, plugin string) *Missing {
	return &Missing{logger: logger, plugin: plugin, consequence: map[string]string{}, missing: map[string]bool{}}
}

// Informer is a namespace-indexed informer of gr (objects of type obj,
// lists of type empty) whose list reads as empty while gr is not served.
// consequence ends the warning logged then: what the plugin does without
// the resource (may be empty).
func (m *Missing) Informer(gr schema.GroupResource, consequence string, obj, empty runtime.Object, resync time.Duration,
	list cache.ListWithContextFunc, watch cache.WatchFuncWithContext) cache.SharedIndexInformer {
	m.mu.Lock()
	m.consequence[gr.String()] = consequence
	m.mu.Unlock()
	return cache.NewSharedIndexInformer(&cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			got, err := list(ctx, o)
			return m.List(gr, got, empty, err)
		},
		WatchFuncWithContext: watch,
	}, obj, resync, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
}

// List returns got, or empty when err says that gr is not served; it logs
// each change between the two.
func (m *Missing) List(gr schema.GroupResource, got, empty runtime.Object, err error) (runtime.Object, error) {
	notServed := apierrors.IsNotFound(err)
	if err != nil && !notServed {
		return got, err // unknown: the reflector retries and logs it
	}
	resource := gr.String()
	m.mu.Lock()
	changed := m.missing[resource] != notServed
	m.missing[resource] = notServed
	consequence := m.consequence[resource]
	m.mu.Unlock()
	switch {
	case notServed && changed:
		msg := "Warning: the API server does not serve this resource (is its CRD installed?); " + m.plugin + " reads it as empty until it does"
		if consequence != "" {
			msg += ": " + consequence
		}
		m.logger.Info(msg, "resource", resource, "err", err)
	case changed:
		m.logger.Info("The API server serves this resource again; "+m.plugin+" reads its objects", "resource", resource)
	}
	if notServed {
		return empty, nil
	}
	return got, err
}

// NotServed says whether the last list of gr found it not served.
func (m *Missing) NotServed(gr schema.GroupResource) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.missing[gr.String()]
}
