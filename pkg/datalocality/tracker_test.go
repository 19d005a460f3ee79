package datalocality

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// TestLocalityWaitTimer: a waiting pod is moved back to the active queue
// when its wait reaches the next level, once per level, and not after it
// is forgotten.
func TestLocalityWaitTimer(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestPlugin(ctx, t, pluginSetup{})
	pod := dataPod("cached").Annotation(annWait, "10s").Obj()
	for i := 0; i < 3; i++ { // retries within one level arm one timer
		p.PreFilter(ctx, framework.NewCycleState(), pod, nodeInfos())
	}
	p.clock.Step(9 * time.Second)
	time.Sleep(50 * time.Millisecond)
	if got := p.activator.activated(); len(got) != 0 {
		t.Fatalf("activated %v before the wait ran out", got)
	}
	p.clock.Step(time.Second)
	waitForActivations(t, p, []string{"ml/p"})

	// The next cycle waits for the zone and arms the timer for the region.
	state := framework.NewCycleState()
	p.PreFilter(ctx, state, pod, nodeInfos())
	if c, _ := state.Read(preFilterStateKey); c.(*preFilterState).step.Allowed != LevelZone {
		t.Fatalf("step %+v, want the zone allowed", c.(*preFilterState).step)
	}
	p.clock.Step(10 * time.Second)
	waitForActivations(t, p, []string{"ml/p", "ml/p"})

	// Bound or deleted: the pod is forgotten and its timer stopped.
	p.PreFilter(ctx, framework.NewCycleState(), pod, nodeInfos())
	p.PostBind(ctx, framework.NewCycleState(), pod, "n1")
	if n := p.tracker.len(); n != 0 {
		t.Errorf("%d pods tracked after the bind, want 0", n)
	}
	p.clock.Step(time.Hour)
	time.Sleep(50 * time.Millisecond)
	if got := p.activator.activated(); len(got) != 2 {
		t.Errorf("activations %v after the pod was bound, want none more", got)
	}
}

func waitForActivations(t *testing.T, p *testPlugin, want []string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
		return len(p.activator.activated()) >= len(want), nil
	})
	if err != nil {
		t.Fatalf("activations %v, want %v", p.activator.activated(), want)
	}
	if diff := cmp.Diff(want, p.activator.activated()); diff != "" {
		t.Errorf("activations (-want,+got):\n%s", diff)
	}
}

// TestForgetOnBindOrDelete: the plugin drops what it keeps about a pod when
// the pod informer sees it bound (by any scheduler) or deleted.
func TestForgetOnBindOrDelete(t *testing.T) {
	for _, action := range []string{"bind", "delete"} {
		t.Run(action, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pod := dataPod("cached").Annotation(annWait, "10s").Obj()
			p := newTestPlugin(ctx, t, pluginSetup{pods: []*v1.Pod{pod}})
			p.PreFilter(ctx, framework.NewCycleState(), pod, nodeInfos())
			if n := p.tracker.len(); n != 1 {
				t.Fatalf("%d pods tracked, want 1", n)
			}
			var err error
			if action == "bind" {
				bound := pod.DeepCopy()
				bound.Spec.NodeName = "n1"
				_, err = p.client.CoreV1().Pods(testNS).Update(ctx, bound, metav1.UpdateOptions{})
			} else {
				err = p.client.CoreV1().Pods(testNS).Delete(ctx, pod.Name, metav1.DeleteOptions{})
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := wait.PollUntilContextTimeout(ctx, 5*time.Millisecond, 5*time.Second, true, func(context.Context) (bool, error) {
				return p.tracker.len() == 0, nil
			}); err != nil {
				t.Errorf("pod still tracked after %s", action)
			}
		})
	}
}

func TestSweep(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pending := dataPod("cached").Annotation(annWait, "10s").Obj()
	p := newTestPlugin(ctx, t, pluginSetup{pods: []*v1.Pod{pending}})
	gone := dataPod("cached").Name("gone").UID("gone").Annotation(annWait, "10s").Obj()
	recreated := dataPod("cached").UID("old-uid").Annotation(annWait, "10s").Obj()
	for _, pod := range []*v1.Pod{pending, gone, recreated} {
		p.PreFilter(ctx, framework.NewCycleState(), pod, nodeInfos())
	}
	p.tracker.sweep(p.podPending)
	if d, _ := p.tracker.waiting(pending.UID); d == nil {
		t.Errorf("the pending pod was forgotten")
	}
	for _, pod := range []*v1.Pod{gone, recreated} {
		if d, _ := p.tracker.waiting(pod.UID); d != nil {
			t.Errorf("pod %s (uid %s) is still tracked", pod.Name, pod.UID)
		}
	}
}
