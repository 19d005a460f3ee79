package compliance

import (
	"context"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/sets"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/metrics"
)

// lapseCheckInterval is how often running regulated pods are checked against
// the time; a check also runs at each midnight UTC, when dated
// certifications expire.
const lapseCheckInterval = time.Minute

// runningPod is a regulated pod bound to a node.
type runningPod struct {
	pod *v1.Pod
	req *Requirements
	// lapsed is set while the pod's node fails its requirements; warned once
	// the CertificationLapsed event of this lapse is recorded. Both clear
	// when the node qualifies again, so that a later lapse warns again.
	lapsed, warned bool
}

// lapses holds the regulated pods bound to nodes, by pod and by node. Pod
// and node delete handlers take their entries out.
type lapses struct {
	mu      sync.Mutex
	pods    map[types.UID]*runningPod
	byNode  map[string]sets.Set[types.UID]
	nLapsed int
}

func newLapses() *lapses {
	return &lapses{pods: map[types.UID]*runningPod{}, byNode: map[string]sets.Set[types.UID]{}}
}

// trackLocked records a regulated pod bound to a node; a pod seen again
// keeps its lapse state.
func (l *lapses) trackLocked(pod *v1.Pod, req *Requirements) *runningPod {
	if rp, ok := l.pods[pod.UID]; ok && rp.pod.Spec.NodeName == pod.Spec.NodeName {
		rp.pod, rp.req = pod, req
		return rp
	}
	l.forgetLocked(pod.UID)
	rp := &runningPod{pod: pod, req: req}
	l.pods[pod.UID] = rp
	node := pod.Spec.NodeName
	if l.byNode[node] == nil {
		l.byNode[node] = sets.New[types.UID]()
	}
	l.byNode[node].Insert(pod.UID)
	return rp
}

func (l *lapses) forgetLocked(uid types.UID) {
	rp, ok := l.pods[uid]
	if !ok {
		return
	}
	if rp.lapsed {
		l.nLapsed--
	}
	delete(l.pods, uid)
	node := rp.pod.Spec.NodeName
	if set := l.byNode[node]; set != nil {
		set.Delete(uid)
		if set.Len() == 0 {
			delete(l.byNode, node)
		}
	}
}

// forget takes a pod out: deleted, finished, or no longer regulated.
func (l *lapses) forget(uid types.UID) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.forgetLocked(uid)
	return l.nLapsed
}

// forgetNode takes out a deleted node and the pods bound to it.
func (l *lapses) forgetNode(name string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for uid := range l.byNode[name] {
		l.forgetLocked(uid)
	}
	delete(l.byNode, name)
	return l.nLapsed
}

// lapseWarning is an event to record, outside the lock.
type lapseWarning struct {
	pod     *v1.Pod
	node    string
	message string
}

// watch registers the handlers that keep the certification cache and the
// lapse bookkeeping current, and starts the periodic lapse check. Nothing
// here blocks start-up: the informers are the scheduler's own.
func (pl *Compliance) watch(ctx context.Context, nodes, pods, namespaces cache.SharedIndexInformer, podLister corelisters.PodLister) {
	if _, err := nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onNode(nil, obj) },
		UpdateFunc: pl.onNode,
		DeleteFunc: pl.onNodeDelete,
	}); err != nil {
		pl.logger.Error(err, "cannot watch nodes; certification lapses of running pods go unnoticed")
	}
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    pl.onPod,
		UpdateFunc: func(_, newObj any) { pl.onPod(newObj) },
		DeleteFunc: pl.onPodDelete,
	}); err != nil {
		pl.logger.Error(err, "cannot watch pods; certification lapses of running pods go unnoticed")
	}
	if _, err := namespaces.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { pl.onNamespace(nil, obj, podLister) },
		UpdateFunc: func(oldObj, newObj any) { pl.onNamespace(oldObj, newObj, podLister) },
	}); err != nil {
		pl.logger.Error(err, "cannot watch namespaces; their requirements of running pods go unnoticed")
	}
	go pl.runLapseChecks(ctx)
	go func() {
		// A standby replica tracks lapses without recording events; the
		// new leader records those it finds.
		select {
		case <-ctx.Done():
		case <-pl.elected.Leading():
			pl.checkPods(nil)
		}
	}()
}

// runLapseChecks checks every running regulated pod each minute and at each
// midnight UTC, until ctx is done.
func (pl *Compliance) runLapseChecks(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-pl.clock.After(untilNextCheck(pl.clock.Now())):
		}
		pl.checkPods(nil)
	}
}

// untilNextCheck is lapseCheckInterval, or less when midnight UTC comes sooner.
func untilNextCheck(now time.Time) time.Duration {
	u := now.UTC()
	midnight := time.Date(u.Year(), u.Month(), u.Day()+1, 0, 0, 0, 0, time.UTC)
	if d := midnight.Sub(u); d < lapseCheckInterval {
		return d
	}
	return lapseCheckInterval
}

func (pl *Compliance) onNode(oldObj, newObj any) {
	node, ok := newObj.(*v1.Node)
	if !ok {
		return
	}
	pl.index.set(node)
	if old, ok := oldObj.(*v1.Node); ok && labels.Equals(old.Labels, node.Labels) {
		return
	}
	pl.checkPods([]string{node.Name})
}

func (pl *Compliance) onNodeDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	node, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	pl.index.remove(node.Name)
	metrics.ComplianceLapsedPods.Set(float64(pl.lapses.forgetNode(node.Name)))
}

// onNamespace reads again the requirements of the namespace's pods when the
// namespace arrives (its pods may have come first) or its annotations change.
func (pl *Compliance) onNamespace(oldObj, newObj any, podLister corelisters.PodLister) {
	ns, ok := newObj.(*v1.Namespace)
	if !ok {
		return
	}
	if old, ok := oldObj.(*v1.Namespace); ok &&
		old.Annotations[locusv1alpha1.AnnotationCompliance] == ns.Annotations[locusv1alpha1.AnnotationCompliance] &&
		old.Annotations[locusv1alpha1.AnnotationDataResidency] == ns.Annotations[locusv1alpha1.AnnotationDataResidency] {
		return
	}
	pods, err := podLister.Pods(ns.Name).List(labels.Everything())
	if err != nil {
		return
	}
	for _, pod := range pods {
		pl.onPod(pod)
	}
}

// onPod tracks a regulated pod once it is bound, and checks it at once.
func (pl *Compliance) onPod(obj any) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	l := pl.lapses
	// The requirements are read and acted on under the lock: the pod's
	// handler and its namespace's (onNamespace, which reads them again when
	// the namespace arrives) run on two goroutines, and a pod handler that
	// had found no namespace could otherwise forget the pod just after the
	// namespace's handler tracked it.
	l.mu.Lock()
	var w *lapseWarning
	if pod.Spec.NodeName == "" || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		l.forgetLocked(pod.UID)
	} else if req, err := pl.requirements(pod); err != nil || req.Empty() {
		// A pod with malformed requirements is never placed by locus.
		// A namespace not in the cache yet is read when it arrives
		// (onNamespace).
		l.forgetLocked(pod.UID)
	} else {
		w = pl.checkLocked(l.trackLocked(pod, req), pl.clock.Now(), pl.elected.IsLeader())
	}
	n := l.nLapsed
	l.mu.Unlock()
	pl.report(n, w)
}

func (pl *Compliance) onPodDelete(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if pod, ok := obj.(*v1.Pod); ok {
		metrics.ComplianceLapsedPods.Set(float64(pl.lapses.forget(pod.UID)))
	}
}

// checkPods checks the pods bound to the named nodes (nil: all pods)
// against their nodes as they are now, and the time now.
func (pl *Compliance) checkPods(nodeNames []string) {
	now, leading := pl.clock.Now(), pl.elected.IsLeader()
	var warnings []*lapseWarning
	l := pl.lapses
	l.mu.Lock()
	visit := func(rp *runningPod) {
		if w := pl.checkLocked(rp, now, leading); w != nil {
			warnings = append(warnings, w)
		}
	}
	if nodeNames == nil {
		for _, rp := range l.pods {
			visit(rp)
		}
	}
	for _, name := range nodeNames {
		for uid := range l.byNode[name] {
			visit(l.pods[uid])
		}
	}
	n := l.nLapsed
	l.mu.Unlock()
	pl.report(n, warnings...)
}

// checkLocked updates one pod's lapse state, and returns the warning to
// record when this lapse has not been warned about and the process leads.
func (pl *Compliance) checkLocked(rp *runningPod, now time.Time, leading bool) *lapseWarning {
	node, err := pl.nodes.Get(rp.pod.Spec.NodeName)
	if err != nil {
		return nil // a deleted node: its delete handler forgets the pod
	}
	v := rp.req.Check(node, pl.args.CertificationLabelPrefix, now)
	if v == nil {
		if rp.lapsed {
			pl.lapses.nLapsed--
		}
		rp.lapsed, rp.warned = false, false
		return nil
	}
	if !rp.lapsed {
		rp.lapsed = true
		pl.lapses.nLapsed++
	}
	if rp.warned || !leading {
		return nil
	}
	rp.warned = true
	return &lapseWarning{pod: rp.pod, node: node.Name, message: v.Message}
}

// report sets the gauge and records the warnings.
func (pl *Compliance) report(nLapsed int, warnings ...*lapseWarning) {
	metrics.ComplianceLapsedPods.Set(float64(nLapsed))
	for _, w := range warnings {
		if w == nil {
			continue
		}
		pl.handle.EventRecorder().Eventf(w.pod, nil, v1.EventTypeWarning, EventReasonCertificationLapsed, "CheckCompliance",
			"node %s no longer meets the pod's compliance requirements: %s; locus does not evict the pod", w.node, w.message)
		pl.logger.Info("Regulated pod runs on a node that no longer meets its requirements",
			"pod", klog.KObj(w.pod), "node", w.node, "reason", w.message)
	}
}
