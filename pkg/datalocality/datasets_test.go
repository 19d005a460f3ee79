package datalocality

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

// A pod waiting for locality is brought back to the active queue when a
// Dataset it reads is deleted or its spec changes, from the plugin's own
// informer: the scheduler's Dataset event comes through another informer,
// and a pod tried again on it could still find the Dataset as it was and
// wait on for its whole locality wait. Pods that do not wait, do not read
// the Dataset, or are bound stay where they are; an update of metadata only
// activates nothing.
func TestDatasetChangeActivatesWaitingReaders(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	waiting := dataPod("cached").Annotation(annWait, "1h").Obj()
	notWaiting := dataPod("cached").Name("no-wait").UID("no-wait").Obj()
	other := dataPod("zonal").Name("other").UID("other").Annotation(annWait, "1h").Obj()
	bound := dataPod("cached").Name("bound").UID("bound").Annotation(annWait, "1h").Node("n1").Obj()
	p := newTestPlugin(ctx, t, pluginSetup{pods: []*v1.Pod{waiting, notWaiting, other, bound}})
	for _, pod := range []*v1.Pod{waiting, notWaiting, other} {
		p.PreFilter(ctx, framework.NewCycleState(), pod, nodeInfos())
	}
	if d, _ := p.tracker.waiting(waiting.UID); d == nil {
		t.Fatal("the reader with a wait does not wait for locality")
	}

	var cached *locusv1alpha1.Dataset
	for _, ds := range testDatasets() {
		if ds.Name == "cached" {
			cached = ds
		}
	}
	statusOnly := cached.DeepCopy()
	statusOnly.ResourceVersion = "2"
	p.onDatasetUpdate(cached, statusOnly)
	if got := p.activator.activated(); len(got) != 0 {
		t.Errorf("an update of metadata only activated %v", got)
	}
	p.onDataset(cached) // deleted, or its locations changed
	if diff := cmp.Diff([]string{testNS + "/p"}, p.activator.activated()); diff != "" {
		t.Errorf("activations (-want,+got):\n%s", diff)
	}
}
