// Package batchquota holds the BatchQuota plugin: per-namespace quota
// (ElasticQuota: min, max, borrowing, reclaim) enforced at scheduling time,
// and all-or-nothing gangs (PodGroup). Bookkeeping lives in the quota
// sub-package; this package adapts it to the scheduling framework.
package batchquota

import (
	"context"
	"fmt"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	"k8s.io/klog/v2"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedinformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"
	schedlisters "sigs.k8s.io/scheduler-plugins/pkg/generated/listers/scheduling/v1alpha1"

	"locus.dev/locus/apis/config"
	"locus.dev/locus/apis/config/validation"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/metrics"
)

func init() {
	// Events are recorded on PodGroups; the recorder resolves references
	// through client-go's scheme.
	utilruntime.Must(schedv1alpha1.AddToScheme(clientgoscheme.Scheme))
}

// BatchQuota is the BatchQuota plugin.
type BatchQuota struct {
	logger klog.Logger
	handle framework.Handle
	args   config.BatchQuotaArgs
	cache  *quota.Cache
	client schedclient.Interface
	pods   corelisters.PodLister
	// byGroup indexes pods by namespace/pod-group; nil falls back to the lister.
	byGroup cache.Indexer
	groups  schedlisters.PodGroupLister
	quotas  schedlisters.ElasticQuotaLister
	synced  []cache.InformerSynced
	clock   func() time.Time
	gangs   *gangTracker
	blocked *blockedPods
	early   *earlyPods
	// reclaimedPods remembers the victims this plugin reclaimed until the
	// informer shows them gone, so that they are not picked twice.
	reclaimedPods *quota.Reclaimed
}

const (
	// Name is the plugin's name in a KubeSchedulerConfiguration.
	Name = "BatchQuota"

	stateKey = "PreFilter" + Name

	elasticQuotaGVK = "elasticquotas.v1alpha1.scheduling.x-k8s.io"
	podGroupGVK     = "podgroups.v1alpha1.scheduling.x-k8s.io"
)

// Name returns the plugin's name.
func (pl *BatchQuota) Name() string { return Name }

// New builds the plugin. Its ElasticQuota and PodGroup informers start here
// without blocking start-up; until they and the pod informer have synced,
// PreFilter keeps pods waiting rather than admitting them on partial counts.
func New(ctx context.Context, obj runtime.Object, h framework.Handle) (framework.Plugin, error) {
	args, ok := obj.(*config.BatchQuotaArgs)
	if !ok {
		return nil, fmt.Errorf("want args of type BatchQuotaArgs, got %T", obj)
	}
	if err := validation.ValidateBatchQuotaArgs(nil, args); err != nil {
		return nil, err
	}
	metrics.RegisterBatchQuota()
	if h.KubeConfig() == nil {
		return nil, fmt.Errorf("%s needs the scheduler's kubeconfig to read ElasticQuotas and PodGroups", Name)
	}
	client, err := schedclient.NewForConfig(crdconfig.JSON(h.KubeConfig()))
	if err != nil {
		return nil, fmt.Errorf("building the scheduling.x-k8s.io client: %w", err)
	}
	logger := klog.FromContext(ctx).WithValues("plugin", Name)
	factory := schedinformers.NewSharedInformerFactory(client, 0)
	eqInformer := factory.Scheduling().V1alpha1().ElasticQuotas()
	pgInformer := factory.Scheduling().V1alpha1().PodGroups()
	podInformer := h.SharedInformerFactory().Core().V1().Pods()

	pl := &BatchQuota{
		logger:  logger,
		handle:  h,
		args:    *args,
		cache:   quota.NewCache(),
		client:  client,
		pods:    podInformer.Lister(),
		groups:  pgInformer.Lister(),
		quotas:  eqInformer.Lister(),
		clock:   time.Now,
		gangs:   newGangTracker(),
		blocked: newBlockedPods(),
		early:   &earlyPods{pods: map[string]*v1.Pod{}},

		reclaimedPods: quota.NewReclaimed(time.Minute),
	}
	eqHandler, err := eqInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onQuota,
		UpdateFunc: func(_, obj interface{}) { pl.onQuota(obj) },
		DeleteFunc: pl.onQuotaDelete,
	})
	if err != nil {
		return nil, err
	}
	podHandler, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onPod,
		UpdateFunc: func(_, obj interface{}) { pl.onPod(obj) },
		DeleteFunc: pl.onPodDelete,
	})
	if err != nil {
		return nil, err
	}
	// Gang members are looked up by their PodGroup on every attempt: an
	// index keeps that from scanning every pod in the cluster.
	if err := podInformer.Informer().AddIndexers(cache.Indexers{podGroupIndex: podGroupIndexFunc}); err != nil {
		logger.Info("gang members will be found by scanning pods", "err", err)
	} else {
		pl.byGroup = podInformer.Informer().GetIndexer()
	}
	// A bound member counted before its PodGroup was known was counted
	// without its gang: count it again, with it, when the PodGroup appears.
	pgHandler, err := pgInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: pl.onPodGroup,
	})
	if err != nil {
		return nil, err
	}
	// The handlers' HasSynced, not the informers': an informer has synced
	// once its store holds the initial list, but the cache is complete only
	// when these handlers have counted every item of it.
	pl.synced = []cache.InformerSynced{
		eqHandler.HasSynced,
		pgHandler.HasSynced,
		podHandler.HasSynced,
	}
	factory.Start(ctx.Done())
	go pl.runStatusWriter(ctx)
	go func() {
		// Pods turned away while the counts were being rebuilt go back to
		// the active queue as soon as they are complete.
		if cache.WaitForCacheSync(ctx.Done(), pl.synced...) {
			if pods := pl.early.take(); len(pods) > 0 {
				h.Activate(logger, pods)
			}
		}
	}()
	return pl, nil
}

func (pl *BatchQuota) hasSynced() bool {
	for _, s := range pl.synced {
		if !s() {
			return false
		}
	}
	return true
}

// onQuota tracks an ElasticQuota. An invalid one (max below min, negative
// amounts) is still tracked with what it says, after an event naming the bad
// value: refusing it would silently lift the namespace's limit.
func (pl *BatchQuota) onQuota(obj interface{}) {
	eq, ok := obj.(*schedv1alpha1.ElasticQuota)
	if !ok {
		return
	}
	if msg := invalidQuota(eq); msg != "" {
		pl.logger.Info("ElasticQuota has invalid values", "elasticQuota", klog.KObj(eq), "problem", msg)
		pl.handle.EventRecorder().Eventf(eq, nil, v1.EventTypeWarning, "InvalidQuota", "Validate", msg)
	}
	pl.cache.SetQuota(&quota.Quota{
		Namespace: eq.Namespace, Name: eq.Name,
		Min: quota.FromList(eq.Spec.Min), Max: quota.FromList(eq.Spec.Max),
	})
}

func invalidQuota(eq *schedv1alpha1.ElasticQuota) string {
	for r, q := range eq.Spec.Min {
		if q.Sign() < 0 {
			return fmt.Sprintf("spec.min.%s is negative (%s)", r, q.String())
		}
		if max, ok := eq.Spec.Max[r]; ok && max.Cmp(q) < 0 {
			return fmt.Sprintf("spec.max.%s (%s) is below spec.min.%s (%s)", r, max.String(), r, q.String())
		}
	}
	for r, q := range eq.Spec.Max {
		if q.Sign() < 0 {
			return fmt.Sprintf("spec.max.%s is negative (%s)", r, q.String())
		}
	}
	return ""
}

func (pl *BatchQuota) onQuotaDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if eq, ok := obj.(*schedv1alpha1.ElasticQuota); ok {
		pl.cache.DeleteQuota(eq.Namespace)
	}
}

// onPod counts pods that are bound, whichever scheduler bound them.
// Terminal pods never reach here: the scheduler's pod informer excludes them,
// and a pod turning terminal arrives as a delete.
func (pl *BatchQuota) onPod(obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if pod.Spec.NodeName == "" {
		return
	}
	// A bound member means its gang got through Permit whole: it holds no
	// quota for members that finished or are yet to come.
	pl.cache.AddBoundPod(pod.UID, pod.Namespace, podRequests(pod), pl.gangOf(pod))
}

func (pl *BatchQuota) onPodGroup(obj interface{}) {
	pg, ok := obj.(*schedv1alpha1.PodGroup)
	if !ok {
		return
	}
	pods := pl.groupPods(pg.Namespace, pg.Name)
	g := &quota.Gang{Name: pg.Name, MinMember: pg.Spec.MinMember}
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			pl.cache.AddBoundPod(p.UID, p.Namespace, podRequests(p), g)
		}
	}
}

// podGroupIndex indexes pods by "namespace/pod-group".
const podGroupIndex = "locus.dev/pod-group"

func podGroupIndexFunc(obj interface{}) ([]string, error) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return nil, nil
	}
	if g := pod.Labels[schedv1alpha1.PodGroupLabel]; g != "" {
		return []string{pod.Namespace + "/" + g}, nil
	}
	return nil, nil
}

// groupPods returns every pod (any phase the informer holds) labelled for a gang.
func (pl *BatchQuota) groupPods(ns, name string) []*v1.Pod {
	if pl.byGroup != nil {
		objs, err := pl.byGroup.ByIndex(podGroupIndex, ns+"/"+name)
		if err == nil {
			pods := make([]*v1.Pod, 0, len(objs))
			for _, o := range objs {
				if p, ok := o.(*v1.Pod); ok {
					pods = append(pods, p)
				}
			}
			return pods
		}
	}
	pods, err := pl.pods.Pods(ns).List(labels.SelectorFromSet(labels.Set{schedv1alpha1.PodGroupLabel: name}))
	if err != nil {
		return nil
	}
	return pods
}

func (pl *BatchQuota) onPodDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	counted := pl.cache.HasPod(pod.UID)
	pl.cache.RemovePod(pod.UID)
	pl.blocked.forget(pod.UID)
	if counted {
		// Quota was freed. The scheduler's own handler for this delete may
		// have requeued the pods turned away for quota before this handler
		// uncounted the pod, so they would be judged against the old count
		// and then wait for another event: bring them back now.
		if pods := pl.blocked.pods(); len(pods) > 0 {
			pl.handle.Activate(pl.logger, pods)
		}
	}
}

// podRequests is what a pod counts against its quota.
func podRequests(pod *v1.Pod) quota.Resources {
	return quota.FromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
}

// gangOf returns the pod's gang, or nil. A pod labelled for a PodGroup that
// does not exist counts as a gang of one until the PodGroup appears.
func (pl *BatchQuota) gangOf(pod *v1.Pod) *quota.Gang {
	name := pod.Labels[schedv1alpha1.PodGroupLabel]
	if name == "" {
		return nil
	}
	pg, err := pl.groups.PodGroups(pod.Namespace).Get(name)
	if err != nil {
		return nil
	}
	return &quota.Gang{Name: name, MinMember: pg.Spec.MinMember}
}

// blockedPods remembers the pods turned away for quota and the last reason
// given to each, so that a QuotaExceeded event is recorded when the reason
// changes, not on every attempt, and so that freed quota can requeue them.
type blockedPods struct {
	mu     sync.Mutex
	reason map[types.UID]string
	pod    map[types.UID]*v1.Pod
}

func newBlockedPods() *blockedPods {
	return &blockedPods{reason: map[types.UID]string{}, pod: map[types.UID]*v1.Pod{}}
}

// changed records reason for the pod and reports whether it differs from the last.
func (b *blockedPods) changed(pod *v1.Pod, reason string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pod[pod.UID] = pod
	if b.reason[pod.UID] == reason {
		return false
	}
	b.reason[pod.UID] = reason
	return true
}

func (b *blockedPods) forget(uid types.UID) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.reason, uid)
	delete(b.pod, uid)
}

// pods returns the blocked pods, keyed as handle.Activate wants them.
func (b *blockedPods) pods() map[string]*v1.Pod {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]*v1.Pod, len(b.pod))
	for _, p := range b.pod {
		out[p.Namespace+"/"+p.Name] = p
	}
	return out
}

// earlyPods are the pods turned away before the quota counts were complete.
type earlyPods struct {
	mu   sync.Mutex
	pods map[string]*v1.Pod
}

func (e *earlyPods) add(pod *v1.Pod) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.pods[pod.Namespace+"/"+pod.Name] = pod
}

func (e *earlyPods) take() map[string]*v1.Pod {
	e.mu.Lock()
	defer e.mu.Unlock()
	pods := e.pods
	e.pods = map[string]*v1.Pod{}
	return pods
}
