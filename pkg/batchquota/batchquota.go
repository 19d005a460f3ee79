// Package batchquota holds the BatchQuota plugin: per-namespace quota
// (ElasticQuota: min, max, borrowing, reclaim) enforced at scheduling time,
// and all-or-nothing gangs (PodGroup). Bookkeeping lives in the quota
// sub-package and gang state in the gang sub-package; this package adapts
// them to the scheduling framework.
//
// Its contract, by extension point:
//   - QueueSort: priority, then a gang's members together, then the quota
//     that uses least of its min, then age.
//   - PreFilter: admits the pod (a gang's first member: the whole gang)
//     against every quota of its namespace and the cluster's guaranteed
//     total; checks that the gang has minMember schedulable pods. It only
//     computes: events and activations happen in PostFilter, Reserve, Permit
//     and the informer handlers, so dry runs have no side effects.
//   - Filter and the PreFilter extensions: quota again where a preemption
//     dry run removed pods; victims of other quotas only under reclaim rules.
//   - PostFilter: reclaim (a quota under its min takes back what borrowers
//     use), and the QuotaExceeded and PodGroupNotFound events.
//   - Reserve/Unreserve: count and uncount (never a pod seen bound); a gang
//     member's Unreserve releases the waiting siblings.
//   - Permit: holds gang members until minMember are reserved.
//   - PreScore/Score: members prefer their siblings' zone.
//
// Only the leader writes status (ElasticQuota, PodGroup) and records events
// about quotas and PodGroups; a standby keeps its counts warm.
package batchquota

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"locus.dev/locus/apis/config"
	"locus.dev/locus/apis/config/validation"
	"locus.dev/locus/pkg/batchquota/gang"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/crdinformer"
	"locus.dev/locus/pkg/leader"
	"locus.dev/locus/pkg/metrics"
)

var (
	_ framework.QueueSortPlugin     = &BatchQuota{}
	_ framework.PreFilterPlugin     = &BatchQuota{}
	_ framework.PreFilterExtensions = &BatchQuota{}
	_ framework.FilterPlugin        = &BatchQuota{}
	_ framework.PostFilterPlugin    = &BatchQuota{}
	_ framework.ReservePlugin       = &BatchQuota{}
	_ framework.PermitPlugin        = &BatchQuota{}
	_ framework.PreScorePlugin      = &BatchQuota{}
	_ framework.ScorePlugin         = &BatchQuota{}
	_ framework.EnqueueExtensions   = &BatchQuota{}
)

const (
	// Name is the plugin's name in a KubeSchedulerConfiguration.
	Name = "BatchQuota"

	stateKey         = "PreFilter" + Name
	preScoreStateKey = "PreScore" + Name

	elasticQuotaGVK = "elasticquotas.v1alpha1.scheduling.x-k8s.io"
	podGroupGVK     = "podgroups.v1alpha1.scheduling.x-k8s.io"
)

// Reasons a pod waits, as the framework and `kubectl locus explain` show them.
const (
	// ErrReasonNotSynced: quota counts are not complete yet after a start.
	ErrReasonNotSynced = "quota counts are still being rebuilt from the cluster's pods"
	// ErrReasonGangIncompleteFmt: fewer schedulable pods exist than the
	// gang's minMember (scheduling-gated pods do not count).
	ErrReasonGangIncompleteFmt = "gang %s has %d of its minMember %d pods"
	// ErrReasonGangBackoffFmt: a released gang waits before its next try, so
	// that other work can use what it released.
	ErrReasonGangBackoffFmt = "gang %s did not assemble in time; it tries again after %s"
	// ErrReasonPodGroupNotFoundFmt: the pod is labelled for a PodGroup that
	// does not exist; it is not placed alone.
	ErrReasonPodGroupNotFoundFmt = "PodGroup %s/%s not found: the pod waits for it rather than being placed without its gang"
	// ErrReasonNotUnderMinFmt: the pod's quota would go beyond its min with
	// the pod, so it has no guaranteed share to take back.
	ErrReasonNotUnderMinFmt = "reclaim: quota %s would be beyond its min with this pod, so it does not reclaim from other quotas"
	// ErrReasonNoBorrowers: no pod on the node may be preempted for the pod:
	// none of lower priority in its namespace or in namespaces without a
	// quota, and none of another quota borrowing beyond its min.
	ErrReasonNoBorrowers = "no pods of other quotas borrowing beyond their min, nor lower-priority pods of this namespace or of namespaces without a quota"
	// ErrReasonVictimsTerminating: the pod already reclaimed on its
	// nominated node and waits for those pods to go.
	ErrReasonVictimsTerminating = "pods reclaimed on the nominated node are still terminating"
	// ErrReasonFitsWithoutVictims: the node takes the pod as it is.
	ErrReasonFitsWithoutVictims = "the pod fits without preempting anything"
	// ErrReasonGangReleasedFmt: a waiting member is rejected because a
	// sibling was not placed.
	ErrReasonGangReleasedFmt = "gang %s released: member %s was not placed"
)

func init() {
	// Events are recorded on PodGroups and ElasticQuotas; the recorder
	// resolves references through client-go's scheme.
	utilruntime.Must(schedv1alpha1.AddToScheme(clientgoscheme.Scheme))
}

// BatchQuota is the BatchQuota plugin.
type BatchQuota struct {
	logger klog.Logger
	handle framework.Handle
	args   config.BatchQuotaArgs
	// profile is the scheduler name of the plugin's profile: PodGroup
	// status is written only for gangs whose members use it.
	profile string
	leader  *leader.Elected
	cache   *quota.Cache
	client  schedclient.Interface
	pods    corelisters.PodLister
	// byGroup indexes pods by namespace/pod-group; nil falls back to the lister.
	byGroup cache.Indexer
	groups  schedlisters.PodGroupLister
	quotas  schedlisters.ElasticQuotaLister
	synced  []cache.InformerSynced
	clock   func() time.Time
	gangs   *gang.Tracker
	blocked *gang.Blocked
	early   *gang.Early
	short   *gang.Short
	// warned remembers the quotas warned of MultipleQuotas, by UID.
	warned *gang.Set
	// unserved holds the custom resources (by their event name) that the
	// API server did not serve when the plugin was built (asked only of a
	// real API server).
	unserved map[string]bool
	// reclaimedPods remembers the victims this plugin reclaimed until the
	// informer shows them gone, so that they are not picked twice.
	reclaimedPods *quota.Reclaimed
	// queuedShares holds the fair share that orders each queued gang or
	// lone pod (queuesort.go), by shareKey.
	queuedShares sync.Map
}

// Name returns the plugin's name.
func (pl *BatchQuota) Name() string { return Name }

// New builds the plugin for a scheduler that runs without leader election.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	return newWithLeader(ctx, obj, h, leader.Always())
}

// NewFactory returns New for a scheduler process whose leadership is e: the
// plugin writes status and records cluster-level events only while e leads.
func NewFactory(e *leader.Elected) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		return newWithLeader(ctx, obj, h, e)
	}
}

// NewWithClient returns New for a plugin that reads ElasticQuotas and
// PodGroups through client (the what-if engine passes a fake one holding a
// copy of the cluster's), in a process whose leadership is e.
func NewWithClient(client schedclient.Interface, e *leader.Elected) frameworkruntime.PluginFactory {
	return func(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
		args, err := validArgs(obj)
		if err != nil {
			return nil, err
		}
		return newPlugin(ctx, *args, h, client, e, time.Now)
	}
}

// newWithLeader validates the args and wires the real clients.
func newWithLeader(ctx context.Context, obj runtime.Object, h framework.Handle, e *leader.Elected) (framework.Plugin, error) {
	args, err := validArgs(obj)
	if err != nil {
		return nil, err
	}
	if h.KubeConfig() == nil {
		return nil, fmt.Errorf("%s needs the scheduler's kubeconfig to read ElasticQuotas and PodGroups", Name)
	}
	client, err := schedclient.NewForConfig(crdconfig.JSON(h.KubeConfig()))
	if err != nil {
		return nil, fmt.Errorf("building the scheduling.x-k8s.io client: %w", err)
	}
	pl, err := newPlugin(ctx, *args, h, client, e, time.Now)
	if err != nil {
		return nil, err
	}
	// Only a real API server is asked what it serves: the what-if engine's
	// fake clientset serves both resources, but its discovery answers
	// NotFound, which made every `kubectl locus` run warn of missing CRDs.
	pl.unserved = unserved(client, pl.logger)
	return pl, nil
}

func validArgs(obj runtime.Object) (*config.BatchQuotaArgs, error) {
	args, ok := obj.(*config.BatchQuotaArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type BatchQuotaArgs, got %T", obj)
	}
	if err := validation.ValidateBatchQuotaArgs(nil, args); err != nil {
		return nil, err
	}
	return args, nil
}

// newPlugin builds the plugin on the given client. Its ElasticQuota and
// PodGroup informers join the scheduler's informer factory, which starts
// them with the others; until they and the pod informer have synced (and
// these handlers have counted every item), PreFilter keeps pods waiting
// rather than admitting them on partial counts.
func newPlugin(ctx context.Context, args config.BatchQuotaArgs, h framework.Handle, client schedclient.Interface, e *leader.Elected, clock func() time.Time) (*BatchQuota, error) {
	metrics.RegisterBatchQuota()
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	factory := h.SharedInformerFactory()
	// Where the API server does not serve ElasticQuotas or PodGroups (their
	// CRD is not installed, or was deleted), none exists: no namespace is
	// limited by a quota, no PodGroup exists. Their lists then read as
	// empty, so that neither the scheduler's start (which waits for every
	// informer of its factory) nor BatchQuota's counts wait forever.
	missing := crdinformer.New(logger, Name)
	eqs := client.SchedulingV1alpha1().ElasticQuotas(metav1.NamespaceAll)
	eqInformer := factory.InformerFor(&schedv1alpha1.ElasticQuota{}, func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return missing.Informer(elasticQuotas, "no namespace is limited by a quota", &schedv1alpha1.ElasticQuota{}, &schedv1alpha1.ElasticQuotaList{}, resync,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return eqs.List(ctx, o) }, eqs.Watch)
	})
	pgs := client.SchedulingV1alpha1().PodGroups(metav1.NamespaceAll)
	pgInformer := factory.InformerFor(&schedv1alpha1.PodGroup{}, func(_ kubernetes.Interface, resync time.Duration) cache.SharedIndexInformer {
		return missing.Informer(podGroups, "pods labelled for a PodGroup wait for it", &schedv1alpha1.PodGroup{}, &schedv1alpha1.PodGroupList{}, resync,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) { return pgs.List(ctx, o) }, pgs.Watch)
	})
	podInformer := factory.Core().V1().Pods()
	profile := ""
	if f, ok := h.(framework.Framework); ok {
		profile = f.ProfileName()
	}
	pl := &BatchQuota{
		logger:        logger,
		handle:        h,
		args:          args,
		profile:       profile,
		leader:        e,
		cache:         quota.NewCache(),
		client:        client,
		pods:          podInformer.Lister(),
		groups:        schedlisters.NewPodGroupLister(pgInformer.GetIndexer()),
		quotas:        schedlisters.NewElasticQuotaLister(eqInformer.GetIndexer()),
		clock:         clock,
		gangs:         gang.NewTracker(),
		blocked:       gang.NewBlocked(),
		early:         gang.NewEarly(),
		short:         gang.NewShort(),
		warned:        gang.NewSet(),
		reclaimedPods: quota.NewReclaimed(time.Minute),
	}
	synced, err := pl.addHandlers(eqInformer, pgInformer, podInformer.Informer())
	if err != nil {
		return nil, err
	}
	pl.synced = synced
	go pl.runStatusWriter(ctx)
	go func() {
		// Pods turned away while the counts were being rebuilt go back to
		// the active queue as soon as they are complete.
		if cache.WaitForCacheSync(ctx.Done(), pl.synced...) {
			if pods := pl.early.Take(); len(pods) > 0 {
				h.Activate(logger, pods)
			}
		}
	}()
	return pl, nil
}

// HasSynced reports whether the quota counts are complete: every
// ElasticQuota, PodGroup and pod of the initial lists has been counted.
func (pl *BatchQuota) HasSynced() bool {
	for _, s := range pl.synced {
		if !s() {
			return false
		}
	}
	return true
}

// leading reports whether this process may write to the API server.
func (pl *BatchQuota) leading() bool { return pl.leader.IsLeader() }
