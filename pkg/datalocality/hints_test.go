package datalocality

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	st "k8s.io/kubernetes/pkg/scheduler/testing"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

func TestEventsToRegister(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestPlugin(ctx, t, pluginSetup{})
	got, err := p.EventsToRegister(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []fwk.ClusterEvent{
		{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel},
		{Resource: fwk.Pod, ActionType: fwk.Delete},
		{Resource: fwk.Pod, ActionType: fwk.Update},
		{Resource: "datasets.v1alpha1.locus.dev", ActionType: fwk.All},
	}
	var gotEvents []fwk.ClusterEvent
	for _, e := range got {
		if e.QueueingHintFn == nil {
			t.Errorf("event %v has no queueing hint", e.Event)
		}
		gotEvents = append(gotEvents, e.Event)
	}
	if diff := cmp.Diff(want, gotEvents); diff != "" {
		t.Errorf("EventsToRegister() (-want,+got):\n%s", diff)
	}
}

// waitingPod is a pod that reads "cached" and, right after its first
// attempt, waits for the node that holds it (n1).
var waitingPod = dataPod("cached").Annotation(annWait, "1m").Obj()

func TestIsSchedulableAfterNodeChange(t *testing.T) {
	tests := []struct {
		name           string
		pod            *v1.Pod
		oldObj, newObj interface{}
		want           fwk.QueueingHint
		wantErr        bool
	}{
		{name: "a node joins with the data's name", pod: waitingPod, newObj: node("n1", "a", "r1"), want: fwk.Queue},
		{name: "a node joins in the data's zone, but the pod waits for the node", pod: waitingPod, newObj: node("n9", "a", "r1"), want: fwk.QueueSkip},
		{name: "a label update that changes nothing for the pod", pod: waitingPod, oldObj: node("n1", "a", "r1"), newObj: node("n1", "b", "r1"), want: fwk.QueueSkip},
		{name: "a pod that does not wait", pod: dataPod("cached").Obj(), newObj: node("n1", "a", "r1"), want: fwk.QueueSkip},
		{name: "wrong type", pod: waitingPod, newObj: "not a node", want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			p.PreFilter(ctx, framework.NewCycleState(), tt.pod, nodeInfos())
			got, err := p.isSchedulableAfterNodeChange(logger, tt.pod, tt.oldObj, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}

	t.Run("once the zone is allowed, a node labelled into it", func(t *testing.T) {
		logger, ctx := ktesting.NewTestContext(t)
		p := newTestPlugin(ctx, t, pluginSetup{})
		p.PreFilter(ctx, framework.NewCycleState(), waitingPod, nodeInfos())
		p.clock.Step(61 * time.Second)
		p.PreFilter(ctx, framework.NewCycleState(), waitingPod, nodeInfos())
		for _, c := range []struct {
			old, new *v1.Node
			want     fwk.QueueingHint
		}{
			{old: node("n3", "b", "r1"), new: node("n3", "a", "r1"), want: fwk.Queue},
			{old: node("n2", "a", "r1"), new: node("n2", "a", "r1"), want: fwk.QueueSkip},
			{old: node("n4", "c", "r2"), new: node("n4", "b", "r1"), want: fwk.QueueSkip},
		} {
			got, err := p.isSchedulableAfterNodeChange(logger, waitingPod, c.old, c.new)
			if err != nil || got != c.want {
				t.Errorf("%s moved from zone %s to %s: hint = %v (%v), want %v", c.new.Name,
					c.old.Labels[v1.LabelTopologyZone], c.new.Labels[v1.LabelTopologyZone], got, err, c.want)
			}
		}
	})
}

func TestIsSchedulableAfterPodDeleted(t *testing.T) {
	tests := []struct {
		name    string
		pod     *v1.Pod
		deleted interface{}
		want    fwk.QueueingHint
		wantErr bool
	}{
		{name: "a pod leaves the node with the data", pod: waitingPod, deleted: st.MakePod().Name("x").Node("n1").Obj(), want: fwk.Queue},
		{
			name:    "a tombstone of such a pod",
			pod:     waitingPod,
			deleted: cache.DeletedFinalStateUnknown{Key: "ml/x", Obj: st.MakePod().Name("x").Node("n1").Obj()},
			want:    fwk.Queue,
		},
		{name: "a pod leaves a node farther than allowed", pod: waitingPod, deleted: st.MakePod().Name("x").Node("n2").Obj(), want: fwk.QueueSkip},
		{name: "a pod leaves a node that the informer does not know", pod: waitingPod, deleted: st.MakePod().Name("x").Node("n9").Obj(), want: fwk.QueueSkip},
		{name: "an unscheduled pod frees nothing", pod: waitingPod, deleted: st.MakePod().Name("x").Obj(), want: fwk.QueueSkip},
		{name: "a pod that does not wait", pod: dataPod("cached").Obj(), deleted: st.MakePod().Name("x").Node("n1").Obj(), want: fwk.QueueSkip},
		{name: "wrong type", pod: waitingPod, deleted: node("n1", "a", "r1"), want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			p.PreFilter(ctx, framework.NewCycleState(), tt.pod, nodeInfos())
			got, err := p.isSchedulableAfterPodDeleted(logger, tt.pod, tt.deleted, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsSchedulableAfterPodUpdate(t *testing.T) {
	pod := dataPod("cached").Annotation(annWait, "oops").Obj()
	withWait := func(w string) *v1.Pod {
		p := pod.DeepCopy()
		p.Annotations[annWait] = w
		return p
	}
	relabelled := pod.DeepCopy()
	relabelled.Labels = map[string]string{"team": "ml"}
	otherDatasets := pod.DeepCopy()
	otherDatasets.Annotations[annData] = "zonal"
	otherPod := withWait("30s")
	otherPod.UID = "other"
	tests := []struct {
		name           string
		oldObj, newObj interface{}
		want           fwk.QueueingHint
		wantErr        bool
	}{
		{name: "the wait annotation is fixed", oldObj: pod, newObj: withWait("30s"), want: fwk.Queue},
		{name: "the datasets change", oldObj: pod, newObj: otherDatasets, want: fwk.Queue},
		{name: "an unrelated change", oldObj: pod, newObj: relabelled, want: fwk.QueueSkip},
		{name: "another pod", oldObj: pod, newObj: otherPod, want: fwk.QueueSkip},
		{name: "wrong type", oldObj: pod, newObj: node("n1", "", ""), want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			got, err := p.isSchedulableAfterPodUpdate(logger, pod, tt.oldObj, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}

func unstructuredDataset(namespace, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion(locusv1alpha1.SchemeGroupVersion.String())
	u.SetKind("Dataset")
	u.SetNamespace(namespace)
	u.SetName(name)
	return u
}

func TestIsSchedulableAfterDatasetChange(t *testing.T) {
	pod := dataPod("cached,zonal").Obj()
	tests := []struct {
		name           string
		oldObj, newObj interface{}
		want           fwk.QueueingHint
		wantErr        bool
	}{
		{name: "a Dataset that the pod reads is created", newObj: unstructuredDataset(testNS, "zonal"), want: fwk.Queue},
		{name: "one is updated", oldObj: unstructuredDataset(testNS, "cached"), newObj: unstructuredDataset(testNS, "cached"), want: fwk.Queue},
		{name: "one is deleted", oldObj: unstructuredDataset(testNS, "cached"), want: fwk.Queue},
		{name: "a tombstone", oldObj: cache.DeletedFinalStateUnknown{Key: "ml/cached", Obj: unstructuredDataset(testNS, "cached")}, want: fwk.Queue},
		{name: "a typed object", newObj: dataset("cached"), want: fwk.Queue},
		{name: "another Dataset", newObj: unstructuredDataset(testNS, "regional"), want: fwk.QueueSkip},
		{name: "the same name in another namespace", newObj: unstructuredDataset("other", "cached"), want: fwk.QueueSkip},
		{name: "wrong type", newObj: "not an object", want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			got, err := p.isSchedulableAfterDatasetChange(logger, pod, tt.oldObj, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("hint = %v, want %v", got, tt.want)
			}
		})
	}
}
