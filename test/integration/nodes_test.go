package integration

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// Fault: a node deleted between Filter and bind. A gang member reserved on
// node-0 waits at Permit for its sibling, which has no room; node-0 is
// deleted, and a bigger node comes. Both members bind to the new node, none
// to the deleted one (left waiting, the first would have been bound to it
// once its sibling was placed), with no schedule-timeout backoff in
// between, and the quota counts exactly the two.
func TestNodeDeletedWhileGangWaits(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 1, "1")
	const ns = "batch"
	e.quota(ctx, t, ns, "4", "4")
	e.podGroup(ctx, t, ns, "gang", 2, 600)
	createPods(ctx, t, e.Client, ns, "member", 2, "1", map[string]string{schedv1alpha1.PodGroupLabel: "gang"}, plugins.SchedulerName)
	// One member reserved (and counted) on node-0, waiting at Permit.
	if err := e.waitUsedCPU(ctx, ns, "1", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.CoreV1().Nodes().Delete(ctx, "node-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreateNode(ctx, e.Client, testenv.NodeSpec{Name: "node-1", CPU: "4", Memory: "64Gi"}); err != nil {
		t.Fatal(err)
	}
	// Well inside the gang's 600s schedule timeout.
	waitBound(ctx, t, e.Client, ns, "gang", 2, 45*time.Second)
	pods, err := boundPods(ctx, e.Client, ns, "gang")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods {
		if p.Spec.NodeName != "node-1" {
			t.Errorf("%s bound to %s, want node-1 (node-0 was deleted)", p.Name, p.Spec.NodeName)
		}
	}
	if err := e.waitUsedCPU(ctx, ns, "2", 30*time.Second); err != nil {
		t.Fatal(err)
	}
}
