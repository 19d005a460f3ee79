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
	apiextensionsclient "k8s.io/apiextensions-apiserver/pkg/client/clientset/clientset"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/manifests"
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

// Fault: the ElasticQuota and PodGroup CRDs are missing when locus starts.
// The scheduler still starts (its informer factory does not wait forever)
// and places pods, as no quota or gang can exist; once the CRDs are
// installed, quotas apply.
func TestMissingCRDsAtStart(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{})
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	ext, err := apiextensionsclient.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	crds := []string{"elasticquotas.scheduling.x-k8s.io", "podgroups.scheduling.x-k8s.io"}
	for _, name := range crds {
		if err := ext.ApiextensionsV1().CustomResourceDefinitions().Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	// Deleting a CRD waits for its instances to be removed: slow on a busy machine.
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		for _, name := range crds {
			if _, err := ext.ApiextensionsV1().CustomResourceDefinitions().Get(ctx, name, metav1.GetOptions{}); err == nil {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cp.Config)
	if err != nil {
		t.Fatal(err)
	}
	env := &testenv.Env{ControlPlane: cp, Dynamic: dyn}
	started := make(chan struct{})
	go func() {
		defer close(started)
		env.StartScheduler(ctx, t, manifests.SchedulerConfig)
	}()
	select {
	case <-started:
	case <-time.After(60 * time.Second):
		t.Fatal("locus did not start without the ElasticQuota and PodGroup CRDs")
	}
	if _, err := testenv.CreateNode(ctx, cp.Client, testenv.NodeSpec{Name: "node-0", CPU: "8", Memory: "16Gi"}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateNamespace(ctx, cp.Client, "team", nil); err != nil {
		t.Fatal(err)
	}
	createPods(ctx, t, cp.Client, "team", "before", 1, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, cp.Client, "team", "", 1, 30*time.Second)

	// The CRDs arrive: quotas apply.
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	e := &quotaEnv{Env: env}
	cfg := rest.CopyConfig(cp.Config)
	cfg.ContentType = "application/json"
	if e.sched, err = schedclient.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sched.SchedulingV1alpha1().ElasticQuotas("team").Create(ctx, &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "quota"},
		Spec:       schedv1alpha1.ElasticQuotaSpec{Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}, Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := e.waitUsedCPU(ctx, "team", "1", 60*time.Second); err != nil {
		t.Fatal(err)
	}
	createPods(ctx, t, cp.Client, "team", "after", 3, "1", nil, plugins.SchedulerName)
	waitBound(ctx, t, cp.Client, "team", "", 2, 30*time.Second)
	time.Sleep(2 * time.Second)
	if pods, _ := boundPods(ctx, cp.Client, "team", ""); len(pods) != 2 {
		t.Errorf("%d pods bound once the quota of 2 exists, want 2", len(pods))
	}
}
