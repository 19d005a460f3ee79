package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusclient "locus.dev/locus/pkg/generated/clientset/versioned"
	"locus.dev/locus/pkg/testenv"
)

const (
	// runLabel marks every pod of one measurement, so that the harness
	// watches and deletes exactly those.
	runLabel = "bench.locus.dev/run"

	// Node topology: all nodes sit in the residency group "us" of
	// manifests/base/scheduler-config.yaml, in four zones of two regions.
	regionEast1 = "us-east-1"
	regionEast2 = "us-east-2"

	// parallelism of the harness's own API calls (node and pod creation).
	parallelism = 32
)

// cluster is one control plane that every arm of every round runs on.
type cluster struct {
	cp     *testenv.ControlPlane
	client kubernetes.Interface
	dyn    dynamic.Interface
	// jsonConfig is cp.Config speaking JSON, as custom resources need.
	jsonConfig *rest.Config
	locus      locusclient.Interface
	sched      schedclient.Interface
	nodes      []string
}

func startCluster(ctx context.Context, t testenv.TB) *cluster {
	t.Helper()
	cp := testenv.StartControlPlane(t, testenv.Options{})
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	c := &cluster{cp: cp, client: cp.Client}
	c.jsonConfig = rest.CopyConfig(cp.Config)
	c.jsonConfig.ContentType, c.jsonConfig.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	var err error
	if c.dyn, err = dynamic.NewForConfig(cp.Config); err != nil {
		t.Fatalf("dynamic client: %v", err)
	}
	if c.locus, err = locusclient.NewForConfig(c.jsonConfig); err != nil {
		t.Fatalf("locus client: %v", err)
	}
	if c.sched, err = schedclient.NewForConfig(c.jsonConfig); err != nil {
		t.Fatalf("scheduling.x-k8s.io client: %v", err)
	}
	return c
}

// nodeZone gives node i its region and zone: three zones of us-east-1 and
// one of us-east-2.
func nodeZone(i int) (region, zone string) {
	switch i % 4 {
	case 3:
		return regionEast2, regionEast2 + "a"
	default:
		return regionEast1, regionEast1 + string(rune('a'+i%4))
	}
}

// createNodes creates n Ready, untainted nodes of 8 CPUs and 32Gi. A
// fraction certified of them (spread evenly) carry the pci-dss
// certification label.
func (c *cluster) createNodes(ctx context.Context, n int, certified float64) error {
	c.nodes = make([]string, n)
	errs := make([]error, n)
	workqueue.ParallelizeUntil(ctx, parallelism, n, func(i int) {
		name := fmt.Sprintf("node-%05d", i)
		region, zone := nodeZone(i)
		labels := map[string]string{v1.LabelTopologyRegion: region, v1.LabelTopologyZone: zone}
		if isCertified(i, certified) {
			labels[certificationLabel] = "true"
		}
		c.nodes[i] = name
		_, errs[i] = testenv.CreateNode(ctx, c.client, testenv.NodeSpec{Name: name, Labels: labels})
	})
	return firstError(errs)
}

// isCertified spreads certified nodes evenly: node i is certified when the
// running count of certified nodes up to i grows.
func isCertified(i int, fraction float64) bool {
	return int(float64(i+1)*fraction) > int(float64(i)*fraction)
}

// createPods creates pods in parallel and returns once the API server holds
// them all.
func (c *cluster) createPods(ctx context.Context, pods []*v1.Pod) error {
	errs := make([]error, len(pods))
	workqueue.ParallelizeUntil(ctx, parallelism, len(pods), func(i int) {
		p := pods[i]
		_, errs[i] = c.client.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{})
	})
	return firstError(errs)
}

// deletePods force-deletes the pods of a run in the given namespaces (no
// kubelet would ever finish a graceful delete), waits until the watch shows
// none left, and deletes the namespaces' events.
func (c *cluster) deletePods(ctx context.Context, w *bindWatch, run string, namespaces []string) error {
	for _, ns := range namespaces {
		err := c.client.CoreV1().Pods(ns).DeleteCollection(ctx,
			metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)},
			metav1.ListOptions{LabelSelector: runLabel + "=" + run})
		if err != nil {
			return fmt.Errorf("deleting pods of run %s in %s: %w", run, ns, err)
		}
	}
	if err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return w.remaining() == 0, nil
	}); err != nil {
		return fmt.Errorf("pods of run %s not gone: %w", run, err)
	}
	// Events of this run would otherwise pile up in etcd round after round.
	for _, ns := range namespaces {
		if err := c.client.EventsV1().Events(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return fmt.Errorf("deleting events in %s: %w", ns, err)
		}
	}
	return nil
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// bindWatch follows the pods of one run through an informer of its own and
// notes the moment the last of them is bound.
type bindWatch struct {
	want     int
	informer cache.SharedIndexInformer
	cancel   context.CancelFunc

	mu        sync.Mutex
	bound     map[string]struct{}
	firstBind time.Time
	lastBind  time.Time
	all       chan struct{}
}

// watchRun starts watching the pods labelled with run; want is how many
// must be bound.
func (c *cluster) watchRun(ctx context.Context, run string, want int) (*bindWatch, error) {
	ctx, cancel := context.WithCancel(ctx)
	factory := informers.NewSharedInformerFactoryWithOptions(c.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = runLabel + "=" + run }))
	w := &bindWatch{
		want: want, cancel: cancel,
		informer: factory.Core().V1().Pods().Informer(),
		bound:    map[string]struct{}{},
		all:      make(chan struct{}),
	}
	if _, err := w.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    w.observe,
		UpdateFunc: func(_, obj interface{}) { w.observe(obj) },
	}); err != nil {
		cancel()
		return nil, err
	}
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), w.informer.HasSynced) {
		cancel()
		return nil, fmt.Errorf("pod watch of run %s did not sync", run)
	}
	return w, nil
}

func (w *bindWatch) observe(obj interface{}) {
	pod, ok := obj.(*v1.Pod)
	if !ok || pod.Spec.NodeName == "" {
		return
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	key := pod.Namespace + "/" + pod.Name
	if _, seen := w.bound[key]; seen {
		return
	}
	w.bound[key] = struct{}{}
	if len(w.bound) == 1 {
		w.firstBind = now
	}
	if len(w.bound) == w.want {
		w.lastBind = now
		close(w.all)
	}
}

// wait returns when every pod is bound, or with an error at the timeout.
// Every progressEvery it says on stderr how far the run is, with a few
// pending pods and the scheduler's reason (long runs take many minutes).
func (w *bindWatch) wait(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	deadline := time.After(timeout)
	progress := time.NewTicker(progressEvery)
	defer progress.Stop()
	for {
		select {
		case <-w.all:
			return nil
		case <-progress.C:
			fmt.Fprintf(os.Stderr, "bench: %d of %d pods bound after %v; pending e.g. %s\n",
				w.boundCount(), w.want, time.Since(start).Round(time.Second), strings.Join(w.pending(2), "; "))
		case <-deadline:
			return fmt.Errorf("%d of %d pods bound after %v", w.boundCount(), w.want, timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// progressEvery is how often wait reports a run's progress.
const progressEvery = 30 * time.Second

func (w *bindWatch) boundCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.bound)
}

func (w *bindWatch) times() (first, last time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.firstBind, w.lastBind
}

// remaining is how many pods of the run still exist.
func (w *bindWatch) remaining() int { return len(w.informer.GetStore().List()) }

// pending describes up to max pods that are not bound, with the scheduler's
// reason, for a failure message.
func (w *bindWatch) pending(max int) []string {
	var out []string
	for _, obj := range w.informer.GetStore().List() {
		pod := obj.(*v1.Pod)
		if pod.Spec.NodeName != "" {
			continue
		}
		reason := "never tried"
		for _, cond := range pod.Status.Conditions {
			if cond.Type == v1.PodScheduled {
				reason = cond.Reason + ": " + cond.Message
			}
		}
		out = append(out, pod.Namespace+"/"+pod.Name+" ("+reason+")")
		if len(out) == max {
			break
		}
	}
	return out
}

func (w *bindWatch) stop() { w.cancel() }

// eventWritesSettled waits until the scheduler has written no event for a
// second (at most 30 seconds) and returns when its last write returned.
func eventWritesSettled(ctx context.Context, w *testenv.EventWrites) time.Time {
	n, last := w.Written()
	quiet := time.Now()
	for deadline := quiet.Add(30 * time.Second); time.Now().Before(deadline) && ctx.Err() == nil; {
		time.Sleep(50 * time.Millisecond)
		if m, l := w.Written(); m != n {
			n, last, quiet = m, l, time.Now()
		} else if time.Since(quiet) >= time.Second {
			break
		}
	}
	return last
}

// settleEvents waits, up to 20s, until the number of events in the
// namespaces stops growing for half a second, and returns that number.
func (c *cluster) settleEvents(ctx context.Context, namespaces []string) int {
	count := func() int {
		n := 0
		for _, ns := range namespaces {
			list, err := c.client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{ResourceVersion: "0"})
			if err != nil {
				return -1
			}
			n += len(list.Items)
		}
		return n
	}
	last, stable := count(), 0
	deadline := time.Now().Add(20 * time.Second)
	for stable < 2 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(250 * time.Millisecond)
		n := count()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	return last
}
