// Package invariants watches an API server while a test runs and fails the
// test when one of locus's promises breaks:
//
//   - a namespace's bound pods request more than an ElasticQuota's max;
//   - a locus pod binds while all quotas together use more than the sum of
//     their min (the aggregate rule: borrowing only from what others leave);
//   - a pod is bound twice, or to two nodes;
//   - a gang is partly bound past its schedule timeout;
//   - a regulated locus pod binds to a node that does not hold its
//     certifications (valid at that instant) or lies outside its residency;
//   - a scheduler process exits or panics.
//
// Every check runs on the events of one watch per resource, in order, as
// they happen: a state that lasts a moment is seen.
package invariants

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	resourcehelper "k8s.io/component-helpers/resource"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"
	schedinformers "sigs.k8s.io/scheduler-plugins/pkg/generated/informers/externalversions"

	configv1 "locus.dev/locus/apis/config/v1"
	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/compliance"
)

// TB is what the checker needs of a test.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Options say what the checked scheduler is configured with.
type Options struct {
	// SchedulerName is locus's profile; pods of other schedulers count
	// toward quota but are not held to locus's rules.
	SchedulerName string
	// Residency maps residency groups to regions, as the Compliance args.
	Residency map[string][]string
	// CertificationLabelPrefix defaults to Compliance's default.
	CertificationLabelPrefix string
	// ResidencyLabel defaults to topology.kubernetes.io/region.
	ResidencyLabel string
	// GangSlack is how long past its timeout a gang may stay partly bound
	// (binding the last members takes a moment); default 10s.
	GangSlack time.Duration
	// Now is the clock that certifications are judged by; default time.Now.
	Now func() time.Time
}

// Checker holds what it has seen and the violations found.
type Checker struct {
	opts Options

	mu         sync.Mutex
	violations []string
	nodeOf     map[types.UID]string              // pods seen bound
	bound      map[string]map[types.UID]boundPod // namespace -> bound pods
	gangs      map[string]*gangSeen              // namespace/name
	nodes      cache.Indexer
	namespaces cache.Indexer
	quotas     cache.Indexer
	groups     cache.Indexer
}

type reqs = quota.Resources

type boundPod struct {
	req  reqs
	gang string
}

type gangSeen struct {
	firstBind time.Time
	maxBound  int
	reported  bool
}

// Watch starts the checker; the violations it finds fail t at its cleanup.
func Watch(ctx context.Context, t TB, client kubernetes.Interface, sched schedclient.Interface, opts Options) *Checker {
	t.Helper()
	if opts.SchedulerName == "" {
		opts.SchedulerName = "locus-scheduler"
	}
	if opts.CertificationLabelPrefix == "" {
		opts.CertificationLabelPrefix = configv1.DefaultCertificationLabelPrefix
	}
	if opts.ResidencyLabel == "" {
		opts.ResidencyLabel = v1.LabelTopologyRegion
	}
	if opts.GangSlack == 0 {
		opts.GangSlack = 10 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	c := &Checker{opts: opts, nodeOf: map[types.UID]string{}, bound: map[string]map[types.UID]boundPod{}, gangs: map[string]*gangSeen{}}
	ctx, cancel := context.WithCancel(ctx)
	core := informers.NewSharedInformerFactory(client, 0)
	crs := schedinformers.NewSharedInformerFactory(sched, 0)
	c.nodes = core.Core().V1().Nodes().Informer().GetIndexer()
	c.namespaces = core.Core().V1().Namespaces().Informer().GetIndexer()
	c.quotas = crs.Scheduling().V1alpha1().ElasticQuotas().Informer().GetIndexer()
	c.groups = crs.Scheduling().V1alpha1().PodGroups().Informer().GetIndexer()
	pods := core.Core().V1().Pods().Informer()
	if _, err := pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    c.onPod,
		UpdateFunc: func(_, obj interface{}) { c.onPod(obj) },
		DeleteFunc: c.onPodDelete,
	}); err != nil {
		t.Fatalf("invariants: %v", err)
	}
	core.Start(ctx.Done())
	crs.Start(ctx.Done())
	core.WaitForCacheSync(ctx.Done())
	crs.WaitForCacheSync(ctx.Done())
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				c.checkGangs()
			}
		}
	}()
	t.Cleanup(func() {
		t.Helper()
		c.checkGangs()
		cancel()
		for _, v := range c.Violations() {
			t.Errorf("invariant broken: %s", v)
		}
	})
	return c
}

// Violations returns what was found so far.
func (c *Checker) Violations() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.violations)
}

// Process fails the test if a watched scheduler process exits (or panics)
// while the test runs: done receives the process's Wait result.
func (c *Checker) Process(name string, done <-chan error) {
	go func() {
		err, ok := <-done
		if !ok {
			return
		}
		c.violate("scheduler process %s exited: %v", name, err)
	}()
}

func (c *Checker) violate(format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

func (c *Checker) onPod(obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	if pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		c.onPodDelete(pod)
		return
	}
	if pod.Spec.NodeName == "" {
		return
	}
	c.mu.Lock()
	prev, seen := c.nodeOf[pod.UID]
	c.nodeOf[pod.UID] = pod.Spec.NodeName
	if seen {
		c.mu.Unlock()
		if prev != pod.Spec.NodeName {
			c.violate("pod %s/%s bound twice: to %s, then to %s", pod.Namespace, pod.Name, prev, pod.Spec.NodeName)
		}
		return
	}
	req := quota.FromList(resourcehelper.PodRequests(pod, resourcehelper.PodResourcesOptions{}))
	if c.bound[pod.Namespace] == nil {
		c.bound[pod.Namespace] = map[types.UID]boundPod{}
	}
	c.bound[pod.Namespace][pod.UID] = boundPod{req: req, gang: pod.Labels[schedv1alpha1.PodGroupLabel]}
	c.mu.Unlock()
	// A new bind.
	c.checkMax(pod)
	if pod.Spec.SchedulerName == c.opts.SchedulerName {
		c.checkAggregate(pod, req)
		c.checkCompliance(pod)
		c.sawGangBind(pod)
	}
}

func (c *Checker) onPodDelete(obj interface{}) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*v1.Pod)
	if !ok {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodeOf, pod.UID)
	delete(c.bound[pod.Namespace], pod.UID)
}

// used sums a namespace's bound pods.
func (c *Checker) used(ns string) reqs {
	c.mu.Lock()
	defer c.mu.Unlock()
	var u reqs
	for _, p := range c.bound[ns] {
		u.Add(p.req)
	}
	return u
}

// limits merges a namespace's ElasticQuotas: the tightest min and max per
// resource (a resource a quota names only in max has a min of zero there);
// named reports which resources they limit. It is written apart from the
// quota package on purpose, so that the checker does not share the
// scheduler's arithmetic.
func (c *Checker) limits(ns string) (min, max reqs, named map[v1.ResourceName]bool) {
	objs, _ := c.quotas.ByIndex(cache.NamespaceIndex, ns)
	min, max, named = reqs{}, reqs{}, map[v1.ResourceName]bool{}
	tighten := func(to reqs, r v1.ResourceName, v int64) {
		if cur, ok := to[r]; !ok || v < cur {
			to[r] = v
		}
	}
	for _, o := range objs {
		eq := o.(*schedv1alpha1.ElasticQuota)
		qmin, qmax := quota.LimitsFromList(eq.Spec.Min), quota.LimitsFromList(eq.Spec.Max)
		for r, v := range qmax {
			tighten(max, r, v)
			named[r] = true
		}
		for r := range qmin {
			named[r] = true
		}
		for r := range qmax {
			tighten(min, r, qmin[r])
		}
		for r, v := range qmin {
			tighten(min, r, v)
		}
	}
	return min, max, named
}

func (c *Checker) checkMax(pod *v1.Pod) {
	_, max, _ := c.limits(pod.Namespace)
	used := c.used(pod.Namespace)
	for _, r := range slices.Sorted(maps.Keys(max)) {
		if used[r] > max[r] {
			c.violate("quota of namespace %s: %s used %s over max %s once %s bound",
				pod.Namespace, r, quota.Quantity(r, used[r]), quota.Quantity(r, max[r]), pod.Name)
		}
	}
}

// checkAggregate: once a locus pod of a namespace with a quota binds, all
// quotas together use at most the sum of their min in each resource the
// pod asks for (binding can only have been admitted that way).
func (c *Checker) checkAggregate(pod *v1.Pod, req reqs) {
	_, _, named := c.limits(pod.Namespace)
	if len(named) == 0 {
		return
	}
	namespaces := map[string]bool{}
	for _, o := range c.quotas.List() {
		namespaces[o.(*schedv1alpha1.ElasticQuota).Namespace] = true
	}
	for _, r := range req.Names() {
		if !named[r] {
			continue
		}
		// Saturating sums: quotas may state amounts near int64's limit.
		var total, guaranteed int64
		add := func(a, b int64) int64 {
			if b > 0 && a > math.MaxInt64-b {
				return math.MaxInt64
			}
			return a + b
		}
		for ns := range namespaces {
			min, _, nsNamed := c.limits(ns)
			if !nsNamed[r] {
				continue
			}
			guaranteed = add(guaranteed, min[r])
			total = add(total, c.used(ns)[r])
		}
		if total > guaranteed {
			c.violate("aggregate: %s/%s bound while all quotas use %s of %s, over the sum of their min %s",
				pod.Namespace, pod.Name, quota.Quantity(r, total), r, quota.Quantity(r, guaranteed))
		}
	}
}

func (c *Checker) checkCompliance(pod *v1.Pod) {
	nsObj, ok, _ := c.namespaces.GetByKey(pod.Namespace)
	if !ok {
		return
	}
	reqs, err := compliance.ParseRequirements(pod, nsObj.(*v1.Namespace), c.opts.Residency)
	if err != nil {
		c.violate("pod %s/%s with invalid requirements (%v) bound to %s", pod.Namespace, pod.Name, err, pod.Spec.NodeName)
		return
	}
	if reqs.Empty() {
		return
	}
	nodeObj, ok, _ := c.nodes.GetByKey(pod.Spec.NodeName)
	if !ok {
		c.violate("regulated pod %s/%s bound to unknown node %s", pod.Namespace, pod.Name, pod.Spec.NodeName)
		return
	}
	node := nodeObj.(*v1.Node)
	now := c.opts.Now()
	for _, std := range reqs.Standards {
		if state, value := compliance.Certification(node.Labels, c.opts.CertificationLabelPrefix, std, now); state != compliance.CertValid {
			c.violate("regulated pod %s/%s bound to %s, which does not hold a valid %s (label value %q)", pod.Namespace, pod.Name, node.Name, std, value)
		}
	}
	if reqs.Residency != "" && !reqs.Regions.Has(node.Labels[c.opts.ResidencyLabel]) {
		c.violate("pod %s/%s of residency %s bound to %s in region %q", pod.Namespace, pod.Name, reqs.Residency, node.Name, node.Labels[c.opts.ResidencyLabel])
	}
}

func (c *Checker) sawGangBind(pod *v1.Pod) {
	name := pod.Labels[schedv1alpha1.PodGroupLabel]
	if name == "" {
		return
	}
	key := pod.Namespace + "/" + name
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.gangs[key]
	if g == nil {
		g = &gangSeen{firstBind: time.Now()}
		c.gangs[key] = g
	}
	n := 0
	for _, p := range c.bound[pod.Namespace] {
		if p.gang == name {
			n++
		}
	}
	g.maxBound = max(g.maxBound, n)
}

// checkGangs reports gangs that stayed partly bound past their timeout.
func (c *Checker) checkGangs() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, g := range c.gangs {
		obj, ok, _ := c.groups.GetByKey(key)
		if !ok || g.reported {
			continue
		}
		pg := obj.(*schedv1alpha1.PodGroup)
		timeout := 60 * time.Second
		if pg.Spec.ScheduleTimeoutSeconds != nil {
			timeout = time.Duration(*pg.Spec.ScheduleTimeoutSeconds) * time.Second
		}
		if g.maxBound < int(pg.Spec.MinMember) && time.Since(g.firstBind) > timeout+c.opts.GangSlack {
			g.reported = true
			c.violations = append(c.violations, fmt.Sprintf("gang %s: %d of minMember %d bound, %v after its first member",
				key, g.maxBound, pg.Spec.MinMember, time.Since(g.firstBind).Round(time.Second)))
		}
	}
}
