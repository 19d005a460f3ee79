package soak

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	locusclient "locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

const (
	// kindLabel marks every pod of the soak with its kind; the harness
	// watches exactly those.
	kindLabel = "soak.locus.dev/kind"

	kindPlain = "plain"
	kindData  = "data"
	kindQuota = "quota"
	kindGang  = "gang"

	phaseBurst = "burst"
	phaseChurn = "churn"

	nsPlain = "soak-plain"
	nsData  = "soak-data"
	nsGang  = "soak-gang"

	podMilliCPU  = 100
	podMemory    = "128Mi"
	datasetCount = 20
	// parallelism of the harness's own API calls.
	parallelism = 32
	// gangTimeoutSeconds is every PodGroup's scheduleTimeoutSeconds.
	gangTimeoutSeconds = 60
)

var kinds = []string{kindPlain, kindData, kindGang, kindQuota}

// plan is how the population divides: 40% plain pods, 15% Dataset readers,
// 15% gang members, 30% in four namespaces with an ElasticQuota each that
// admits 70% of its pods. Two quotas have min = max; two have min at half
// their max, so that they borrow what the others leave and are reclaimed
// from; with every quota full, about half of the quota pods wait.
type plan struct {
	Plain, Data          int
	Gangs, GangSize      int
	QuotaNamespaces      []string
	QuotaPerNS           int
	QuotaMaxPods         int
	QuotaFull            int // how many quotas have min = max (the first ones)
	QuotaBorrowerMinPods int
}

func newPlan(o options) plan {
	p := plan{GangSize: o.GangSize, QuotaFull: 2}
	p.Data = o.Pods * 15 / 100
	p.Gangs = max(1, o.Pods*15/100/o.GangSize)
	p.QuotaNamespaces = []string{"soak-q0", "soak-q1", "soak-q2", "soak-q3"}
	p.QuotaPerNS = max(2, o.Pods*30/100/len(p.QuotaNamespaces))
	p.QuotaMaxPods = max(1, p.QuotaPerNS*7/10)
	p.QuotaBorrowerMinPods = max(1, p.QuotaMaxPods/2)
	p.Plain = o.Pods - p.Data - p.Gangs*p.GangSize - p.QuotaPerNS*len(p.QuotaNamespaces)
	return p
}

// target is how many lone pods each namespace keeps alive.
func (p plan) targets() map[string]int {
	out := map[string]int{nsPlain: p.Plain, nsData: p.Data}
	for _, ns := range p.QuotaNamespaces {
		out[ns] = p.QuotaPerNS
	}
	return out
}

func kindOf(ns string) string {
	switch {
	case ns == nsPlain:
		return kindPlain
	case ns == nsData:
		return kindData
	case ns == nsGang:
		return kindGang
	default:
		return kindQuota
	}
}

type podRec struct {
	kind, phase string
	gang        string // namespace/name of the PodGroup, for members
	created     time.Time
	bound       bool
}

type gangRec struct {
	ns, name string
	pods     []string // pod names
	bound    int
}

// harness creates, watches, churns and deletes the soak's pods.
type harness struct {
	t      *testing.T
	opts   options
	plan   plan
	client kubernetes.Interface
	sched  schedclient.Interface
	locus  locusclient.Interface
	nodes  []string
	rng    *rand.Rand
	events *eventCounter

	mu         sync.Mutex
	phase      string
	seq        int
	pods       map[string]*podRec // namespace/name of pods not yet seen deleted
	alive      map[string]int     // lone pods not yet seen deleted, per namespace
	boundLone  *pickSet           // lone pods seen bound and not picked for deletion
	gangs      map[string]*gangRec
	gangsAlive int
	boundGangs *pickSet // gangs whose members are all bound, not picked
	deletedBy  map[string]bool
	latency    map[string][]time.Duration // kind/phase
	stats      churnStats
}

type churnStats struct {
	Deleted      int `json:"deleted"`
	GangsDeleted int `json:"gangsDeleted"`
	Created      int `json:"created"`
	// Reclaimed counts pods deleted by the scheduler (reclaim, preemption).
	Reclaimed int `json:"reclaimed"`
}

func newHarness(t *testing.T, opts options, client kubernetes.Interface, sched schedclient.Interface, locus locusclient.Interface) *harness {
	return &harness{
		t: t, opts: opts, plan: newPlan(opts), client: client, sched: sched, locus: locus,
		rng:        rand.New(rand.NewPCG(1, 2)),
		events:     newEventCounter(),
		pods:       map[string]*podRec{},
		alive:      map[string]int{},
		boundLone:  newPickSet(),
		gangs:      map[string]*gangRec{},
		boundGangs: newPickSet(),
		deletedBy:  map[string]bool{},
		latency:    map[string][]time.Duration{},
	}
}

func (h *harness) setPhase(p string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.phase = p
}

// createNodes creates the nodes (8 CPUs, 32Gi, 110 pods) in four zones of
// two regions, in parallel.
func (h *harness) createNodes(ctx context.Context) error {
	h.nodes = make([]string, h.opts.Nodes)
	errs := make([]error, h.opts.Nodes)
	workqueue.ParallelizeUntil(ctx, parallelism, h.opts.Nodes, func(i int) {
		region := "us-east-1"
		zone := fmt.Sprintf("us-east-1%c", 'a'+i%3)
		if i%4 == 3 {
			region, zone = "us-east-2", "us-east-2a"
		}
		name := fmt.Sprintf("node-%05d", i)
		h.nodes[i] = name
		_, errs[i] = testenv.CreateNode(ctx, h.client, testenv.NodeSpec{Name: name, Labels: map[string]string{
			v1.LabelTopologyRegion: region, v1.LabelTopologyZone: zone,
		}})
	})
	return firstError(errs)
}

// createNamespaces creates the namespaces, the ElasticQuotas and the Datasets.
func (h *harness) createNamespaces(ctx context.Context) error {
	for _, ns := range append([]string{nsPlain, nsData, nsGang}, h.plan.QuotaNamespaces...) {
		if err := testenv.CreateNamespace(ctx, h.client, ns, nil); err != nil {
			return err
		}
	}
	for i, ns := range h.plan.QuotaNamespaces {
		min := h.plan.QuotaMaxPods
		if i >= h.plan.QuotaFull {
			min = h.plan.QuotaBorrowerMinPods
		}
		if _, err := h.sched.SchedulingV1alpha1().ElasticQuotas(ns).Create(ctx, elasticQuota(ns, min, h.plan.QuotaMaxPods), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating ElasticQuota in %s: %w", ns, err)
		}
	}
	for d := 0; d < datasetCount; d++ {
		if _, err := h.locus.LocusV1alpha1().Datasets(nsData).Create(ctx, h.dataset(d), metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating Dataset: %w", err)
		}
	}
	return nil
}

// dataset d is cached on two nodes, held in a zone and in the region.
func (h *harness) dataset(d int) *locusv1alpha1.Dataset {
	n := len(h.nodes)
	loc := func(node, zone, region, bytes string) locusv1alpha1.DatasetLocation {
		return locusv1alpha1.DatasetLocation{Node: node, Zone: zone, Region: region, Bytes: resource.MustParse(bytes)}
	}
	return &locusv1alpha1.Dataset{
		ObjectMeta: metav1.ObjectMeta{Namespace: nsData, Name: fmt.Sprintf("ds-%02d", d)},
		Spec: locusv1alpha1.DatasetSpec{
			URI: fmt.Sprintf("s3://warehouse/ds-%02d/", d),
			Locations: []locusv1alpha1.DatasetLocation{
				loc(h.nodes[(d*7)%n], "", "", "200Gi"),
				loc(h.nodes[(d*13+5)%n], "", "", "200Gi"),
				loc("", fmt.Sprintf("us-east-1%c", 'a'+d%3), "", "1Ti"),
				loc("", "", "us-east-1", "2Ti"),
			},
		},
	}
}

// newPod builds a pod of a kind; the caller records it.
func (h *harness) newPod(ns, name, kind string, seq int) *v1.Pod {
	p := testenv.NewPod(testenv.PodSpec{
		Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName,
		Labels: map[string]string{kindLabel: kind}, CPU: fmt.Sprintf("%dm", podMilliCPU), Memory: podMemory,
	})
	if kind == kindData {
		names := fmt.Sprintf("ds-%02d", seq%datasetCount)
		if seq%3 == 0 {
			names += fmt.Sprintf(",ds-%02d", (seq+1)%datasetCount)
		}
		p.Annotations = map[string]string{locusv1alpha1.AnnotationDatasets: names}
	}
	return p
}

// op is one API call (or a few) of a batch.
type op func(ctx context.Context) error

func (h *harness) run(ctx context.Context, ops []op) error {
	errs := make([]error, len(ops))
	workqueue.ParallelizeUntil(ctx, parallelism, len(ops), func(i int) { errs[i] = ops[i](ctx) })
	return firstError(errs)
}

// loneOp creates one lone pod in ns (recorded first, with its create time).
func (h *harness) loneOp(ns string) op {
	h.mu.Lock()
	h.seq++
	seq := h.seq
	name := fmt.Sprintf("p-%07d", seq)
	kind := kindOf(ns)
	rec := &podRec{kind: kind, phase: h.phase}
	h.pods[ns+"/"+name] = rec
	h.alive[ns]++
	h.stats.Created++
	h.mu.Unlock()
	pod := h.newPod(ns, name, kind, seq)
	return func(ctx context.Context) error {
		h.mu.Lock()
		rec.created = time.Now()
		h.mu.Unlock()
		if _, err := h.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating pod %s/%s: %w", ns, name, err)
		}
		return nil
	}
}

// gangOp creates a PodGroup and its members.
func (h *harness) gangOp() op {
	h.mu.Lock()
	h.seq++
	name := fmt.Sprintf("g-%06d", h.seq)
	g := &gangRec{ns: nsGang, name: name}
	key := nsGang + "/" + name
	recs := make([]*podRec, h.plan.GangSize)
	for i := range recs {
		pod := fmt.Sprintf("%s-%d", name, i)
		g.pods = append(g.pods, pod)
		recs[i] = &podRec{kind: kindGang, phase: h.phase, gang: key}
		h.pods[nsGang+"/"+pod] = recs[i]
	}
	h.gangs[key] = g
	h.gangsAlive++
	h.stats.Created += h.plan.GangSize
	h.mu.Unlock()
	return func(ctx context.Context) error {
		pg := &schedv1alpha1.PodGroup{
			ObjectMeta: metav1.ObjectMeta{Namespace: nsGang, Name: name},
			Spec:       schedv1alpha1.PodGroupSpec{MinMember: int32(h.plan.GangSize), ScheduleTimeoutSeconds: ptr.To[int32](gangTimeoutSeconds)},
		}
		if _, err := h.sched.SchedulingV1alpha1().PodGroups(nsGang).Create(ctx, pg, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating PodGroup %s: %w", name, err)
		}
		for i, podName := range g.pods {
			p := h.newPod(nsGang, podName, kindGang, 0)
			p.Labels[schedv1alpha1.PodGroupLabel] = name
			h.mu.Lock()
			recs[i].created = time.Now()
			h.mu.Unlock()
			if _, err := h.client.CoreV1().Pods(nsGang).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				return fmt.Errorf("creating pod %s/%s: %w", nsGang, podName, err)
			}
		}
		return nil
	}
}

// topUp returns the creations that bring every namespace back to its
// target population.
func (h *harness) topUp() []op {
	h.mu.Lock()
	missing := map[string]int{}
	for ns, want := range h.plan.targets() {
		if n := want - h.alive[ns]; n > 0 {
			missing[ns] = n
		}
	}
	gangs := h.plan.Gangs - h.gangsAlive
	h.mu.Unlock()
	var ops []op
	for _, ns := range sortedKeys(missing) {
		for i := 0; i < missing[ns]; i++ {
			ops = append(ops, h.loneOp(ns))
		}
	}
	for i := 0; i < gangs; i++ {
		ops = append(ops, h.gangOp())
	}
	// Interleave the kinds, as a cluster sees them.
	h.rng.Shuffle(len(ops), func(i, j int) { ops[i], ops[j] = ops[j], ops[i] })
	return ops
}

// burst creates the whole population at once.
func (h *harness) burst(ctx context.Context) error { return h.run(ctx, h.topUp()) }

// churn deletes bound pods at the configured rate, picked at random (a gang
// whole, with its PodGroup), and creates new ones in their place, for the
// configured time. Beside it, memory is measured (after GC) every 30
// seconds.
func (h *harness) churn(ctx context.Context) ([]memSample, error) {
	start := time.Now()
	end := start.Add(h.opts.churn)
	var samples []memSample
	stopSampling := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stopSampling:
				return
			case <-time.After(30 * time.Second):
			}
			samples = append(samples, h.measure(fmt.Sprintf("churn+%ds", int(time.Since(start).Seconds()))))
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() { close(stopSampling) })
		<-sampled
	}
	defer stop()
	picked := 0
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		want := int(time.Since(start).Seconds()*float64(h.opts.ChurnRate)) - picked
		ops := h.pickDeletions(want)
		picked += want
		ops = append(ops, h.topUp()...)
		if err := h.run(ctx, ops); err != nil {
			return nil, err
		}
	}
	// What the last deletions left missing.
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		ops := h.topUp()
		return len(ops) == 0, h.run(ctx, ops)
	}); err != nil {
		return nil, fmt.Errorf("topping up after the churn: %w", err)
	}
	stop()
	return samples, nil
}

// pickDeletions picks n bound pods at random (a gang counts as its size)
// and returns their deletions.
func (h *harness) pickDeletions(n int) []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ops []op
	for i := 0; i < n; i++ {
		lone, gangs := h.boundLone.len(), h.boundGangs.len()
		total := lone + gangs*h.plan.GangSize
		if total == 0 {
			break
		}
		r := h.rng.IntN(total)
		if r < lone {
			key := h.boundLone.take(r)
			h.deletedBy[key] = true
			h.stats.Deleted++
			ns, name, _ := strings.Cut(key, "/")
			ops = append(ops, func(ctx context.Context) error { return h.deletePod(ctx, ns, name) })
			continue
		}
		key := h.boundGangs.take((r - lone) / h.plan.GangSize)
		g := h.gangs[key]
		delete(h.gangs, key)
		h.gangsAlive--
		h.stats.GangsDeleted++
		h.stats.Deleted += len(g.pods)
		for _, p := range g.pods {
			h.deletedBy[g.ns+"/"+p] = true
		}
		ops = append(ops, func(ctx context.Context) error {
			for _, p := range g.pods {
				if err := h.deletePod(ctx, g.ns, p); err != nil {
					return err
				}
			}
			err := h.sched.SchedulingV1alpha1().PodGroups(g.ns).Delete(ctx, g.name, metav1.DeleteOptions{})
			return ignoreNotFound(err)
		})
	}
	return ops
}

func (h *harness) deletePod(ctx context.Context, ns, name string) error {
	err := h.client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)})
	return ignoreNotFound(err)
}

// watch follows the soak's pods (and all events) with informers of its own.
func (h *harness) watch(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(h.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = kindLabel }))
	pods := factory.Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    h.onPod,
		UpdateFunc: func(_, obj interface{}) { h.onPod(obj) },
		DeleteFunc: h.onPodDelete,
	}); err != nil {
		return err
	}
	all := informers.NewSharedInformerFactory(h.client, 0)
	events := all.Events().V1().Events().Informer()
	if _, err := events.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    h.events.observe,
		UpdateFunc: func(_, obj interface{}) { h.events.observe(obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	all.Start(ctx.Done())
	for _, inf := range []cache.SharedIndexInformer{pods, events} {
		if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
			return fmt.Errorf("the harness's informers did not sync")
		}
	}
	return nil
}

func (h *harness) onPod(obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	now := time.Now()
	key := pod.Namespace + "/" + pod.Name
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := h.pods[key]
	if rec == nil || rec.bound {
		return
	}
	rec.bound = true
	if !rec.created.IsZero() {
		h.latency[rec.kind+"/"+rec.phase] = append(h.latency[rec.kind+"/"+rec.phase], now.Sub(rec.created))
	}
	if h.deletedBy[key] || pod.DeletionTimestamp != nil {
		return
	}
	if rec.gang == "" {
		h.boundLone.add(key)
		return
	}
	if g := h.gangs[rec.gang]; g != nil {
		g.bound++
		if g.bound == len(g.pods) {
			h.boundGangs.add(rec.gang)
		}
	}
}

func (h *harness) onPodDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	key := pod.Namespace + "/" + pod.Name
	h.mu.Lock()
	defer h.mu.Unlock()
	rec := h.pods[key]
	if rec == nil {
		return
	}
	delete(h.pods, key)
	if !h.deletedBy[key] {
		h.stats.Reclaimed++
	}
	delete(h.deletedBy, key)
	if rec.gang == "" {
		h.alive[pod.Namespace]--
		h.boundLone.remove(key)
	}
}

// pending counts the pods not bound yet, per kind.
func (h *harness) pending() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, rec := range h.pods {
		if !rec.bound {
			out[rec.kind]++
		}
	}
	return out
}

func (h *harness) counts() string {
	h.mu.Lock()
	total, bound := len(h.pods), 0
	for _, rec := range h.pods {
		if rec.bound {
			bound++
		}
	}
	h.mu.Unlock()
	p := h.pending()
	return fmt.Sprintf("%d pods, %d bound, pending: %d plain, %d data, %d gang, %d quota", total, bound, p[kindPlain], p[kindData], p[kindGang], p[kindQuota])
}

// settle waits until every pod that is not held by its quota is bound and
// the scheduler's active and backoff queues stay empty.
func (h *harness) settle(ctx context.Context, timeout time.Duration) error {
	var last map[string]int
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		last = h.pending()
		if last[kindPlain]+last[kindData]+last[kindGang] > 0 {
			return false, nil
		}
		return waitIdle(ctx, 30*time.Second, false) == nil, nil
	})
	if err != nil {
		return fmt.Errorf("pods still pending after %v (%v; scheduler queues %v): %w; e.g. %s",
			timeout, last, pendingQueues(), err, strings.Join(h.describePending(ctx, 5), "; "))
	}
	return nil
}

// describePending names a few pending pods that are not quota pods, with
// the scheduler's reason.
func (h *harness) describePending(ctx context.Context, n int) []string {
	h.mu.Lock()
	var keys []string
	for key, rec := range h.pods {
		if !rec.bound && rec.kind != kindQuota {
			keys = append(keys, key)
		}
	}
	h.mu.Unlock()
	sort.Strings(keys)
	var out []string
	for _, key := range keys[:min(n, len(keys))] {
		ns, name, _ := strings.Cut(key, "/")
		p, err := h.client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			out = append(out, key+": "+err.Error())
			continue
		}
		reason := "never tried"
		for _, c := range p.Status.Conditions {
			if c.Type == v1.PodScheduled {
				reason = c.Reason + ": " + c.Message
			}
		}
		out = append(out, key+" ("+reason+")")
	}
	return out
}

// unbound counts, per kind, the pods still pending when the drain starts.
func (h *harness) unbound() map[string]int { return h.pending() }

// drain deletes every pod and PodGroup, waits until the harness has seen
// them go, the scheduler's queues are empty and every quota's status shows
// nothing used, and deletes the events.
func (h *harness) drain(ctx context.Context) error {
	start := time.Now()
	step := func(what string) {
		h.t.Logf("drain: %s at +%.1fs", what, time.Since(start).Seconds())
	}
	namespaces := append([]string{nsPlain, nsData, nsGang}, h.plan.QuotaNamespaces...)
	// One delete per pod, in parallel: a DeleteCollection of thousands of
	// pods outlasts the API server's request timeout.
	h.mu.Lock()
	keys := sortedKeys(h.pods)
	h.mu.Unlock()
	ops := make([]op, len(keys))
	for i, key := range keys {
		ns, name, _ := strings.Cut(key, "/")
		ops[i] = func(ctx context.Context) error { return h.deletePod(ctx, ns, name) }
	}
	if err := h.run(ctx, ops); err != nil {
		return fmt.Errorf("deleting pods: %w", err)
	}
	if err := h.sched.SchedulingV1alpha1().PodGroups(nsGang).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return fmt.Errorf("deleting PodGroups: %w", err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 5*time.Minute, true, func(context.Context) (bool, error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.pods) == 0, nil
	}); err != nil {
		return fmt.Errorf("%d pods not gone: %w", len(h.pods), err)
	}
	step("every pod gone")
	if err := waitIdle(ctx, 2*time.Minute, true); err != nil {
		return fmt.Errorf("after the drain: %w", err)
	}
	step("scheduler queues empty")
	for _, ns := range h.plan.QuotaNamespaces {
		var used resource.Quantity
		err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			eq, err := h.sched.SchedulingV1alpha1().ElasticQuotas(ns).Get(ctx, "quota", metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			used = eq.Status.Used[v1.ResourceCPU]
			return used.IsZero(), nil
		})
		if err != nil {
			return fmt.Errorf("ElasticQuota %s/quota still shows %s CPU used after the drain: %w", ns, used.String(), err)
		}
	}
	step("quota status shows nothing used")
	// Events would stay in etcd (and the API server's watch cache) for
	// their TTL: they are the API server's memory, not the scheduler's.
	for _, ns := range namespaces {
		if err := h.client.EventsV1().Events(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("deleting events in %s: %w", ns, err)
		}
	}
	return nil
}

func (h *harness) churnStats() churnStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.stats
}

// pickSet is a set of keys with O(1) removal of a random member.
type pickSet struct {
	keys  []string
	index map[string]int
}

func newPickSet() *pickSet { return &pickSet{index: map[string]int{}} }

func (s *pickSet) len() int { return len(s.keys) }

func (s *pickSet) add(k string) {
	if _, ok := s.index[k]; ok {
		return
	}
	s.index[k] = len(s.keys)
	s.keys = append(s.keys, k)
}

func (s *pickSet) remove(k string) {
	i, ok := s.index[k]
	if !ok {
		return
	}
	s.take(i)
}

// take removes and returns the i-th key.
func (s *pickSet) take(i int) string {
	k := s.keys[i]
	last := len(s.keys) - 1
	s.keys[i] = s.keys[last]
	s.index[s.keys[i]] = i
	s.keys = s.keys[:last]
	delete(s.index, k)
	return k
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
