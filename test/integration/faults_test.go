package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// Fault: 1,000 pods created in one burst into a namespace already at its
// quota. None binds over max (the invariant checker watches every bind);
// freeing 5 CPUs lets exactly 5 more in.
func TestBurstIntoAFullQuota(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 2, "100")
	e.quota(ctx, t, "burst", "10", "10")
	holders := createPods(ctx, t, e.Client, "burst", "holder", 10, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "burst", "", 10, 30*time.Second)

	const burst = 1000
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < burst; i += 8 {
				if _, err := testenv.CreatePod(ctx, e.Client, testenv.PodSpec{Namespace: "burst", Name: fmt.Sprintf("burst-%04d", i), SchedulerName: plugins.SchedulerName, CPU: "1"}); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	wg.Wait()
	time.Sleep(5 * time.Second) // every burst pod tried at least once
	if pods, _ := boundPods(ctx, e.Client, "burst", ""); len(pods) != 10 {
		t.Fatalf("%d pods bound after the burst, want the 10 holders", len(pods))
	}
	forceDelete(ctx, t, e.Client, "burst", holders[:5]...)
	waitBound(ctx, t, e.Client, "burst", "", 10, 60*time.Second)
	time.Sleep(2 * time.Second)
	if pods, _ := boundPods(ctx, e.Client, "burst", ""); len(pods) != 10 {
		t.Errorf("%d pods bound once 5 CPUs were freed, want 10", len(pods))
	}
	if err := e.waitUsedCPU(ctx, "burst", "10", 10*time.Second); err != nil {
		t.Error(err)
	}
}

// Fault: the API server rejects a pod's bind (an admission policy refuses
// the binding). Each failed bind is unreserved: the pod's quota is
// released every time, so the other pods of its namespace fill the quota
// around it, and the count stays what the bound pods use.
func TestRejectedBindReleasesItsQuota(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	e := startQuotaEnv(ctx, t, 1, "16")
	e.quota(ctx, t, "binds", "4", "4")
	policy := &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "refuse-some-binds"},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/binding"}},
				},
			}}},
			Validations: []admissionv1.Validation{{
				Expression: "!object.metadata.name.startsWith('refused-')",
				Message:    "this bind is refused by the test",
			}},
		},
	}
	if _, err := e.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "refuse-some-binds"},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        "refuse-some-binds",
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
		},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The policy takes a moment to apply: bind a probe by hand until refused.
	if err := testenv.CreateNamespace(ctx, e.Client, "probe", nil); err != nil {
		t.Fatal(err)
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		name := fmt.Sprintf("refused-probe-%d", time.Now().UnixNano())
		if _, err := testenv.CreatePod(ctx, e.Client, testenv.PodSpec{Namespace: "probe", Name: name, SchedulerName: "nobody"}); err != nil {
			return false, err
		}
		err := e.Client.CoreV1().Pods("probe").Bind(ctx, &v1.Binding{ObjectMeta: metav1.ObjectMeta{Namespace: "probe", Name: name},
			Target: v1.ObjectReference{Kind: "Node", Name: "node-0"}}, metav1.CreateOptions{})
		return err != nil && strings.Contains(err.Error(), "refused by the test"), nil
	}); err != nil {
		t.Fatalf("the bind policy never applied: %v", err)
	}

	createPods(ctx, t, e.Client, "binds", "refused", 2, "1", nil, plugins.SchedulerName)
	if _, err := testenv.WaitForPodEvent(ctx, e.Client, "binds", "refused-00", "FailedScheduling", "refused by the test", 30*time.Second); err != nil {
		t.Fatalf("no failed bind seen: %v", err)
	}
	// Were a failed bind's quota kept, these 4 would not all fit in max 4.
	createPods(ctx, t, e.Client, "binds", "ok", 4, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, e.Client, "binds", "", 4, 60*time.Second)
	if err := e.waitUsedCPU(ctx, "binds", "4", 10*time.Second); err != nil {
		t.Error(err)
	}
	for _, n := range []string{"refused-00", "refused-01"} {
		p, err := e.Client.CoreV1().Pods("binds").Get(ctx, n, metav1.GetOptions{})
		if err != nil || p.Spec.NodeName != "" {
			t.Errorf("pod %s: node %q, err %v; want it pending", n, p.Spec.NodeName, err)
		}
	}
}
