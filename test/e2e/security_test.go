package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	v1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/yaml"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// The labels of the trust model: the certification label of the default
// certificationLabelPrefix, the residency label that the README recommends,
// and the default residencyLabel (well known, kubelet-settable).
const (
	pciLabel              = "node-restriction.kubernetes.io/compliance.pci-dss"
	protectedRegionLabel  = "node-restriction.kubernetes.io/region"
	defaultResidencyLabel = v1.LabelTopologyRegion
)

// The GroupVersionResources of locus's objects (manifests/crds).
var (
	datasetsGVR      = schema.GroupVersionResource{Group: "locus.dev", Version: "v1alpha1", Resource: "datasets"}
	elasticQuotasGVR = schema.GroupVersionResource{Group: "scheduling.x-k8s.io", Version: "v1alpha1", Resource: "elasticquotas"}
	podGroupsGVR     = schema.GroupVersionResource{Group: "scheduling.x-k8s.io", Version: "v1alpha1", Resource: "podgroups"}
)

// TestSecurityTrustModel checks the trust model of docs/security.md against
// a real kube-apiserver that runs as production clusters do: the Node and
// RBAC authorizers (--authorization-mode=Node,RBAC), the NodeRestriction
// admission plugin, and locus installed from manifests/crds and
// manifests/base with kubectl (the shipped RBAC and admission guard).
// Requests are made with real clients as a kubelet (system:node:worker-1 in
// system:nodes, from a static token file) and as the locus-scheduler
// ServiceAccount.
//
// A kubelet can change ordinary labels and the well-known region label on
// its own Node, and nothing else: no certification label and no label under
// node-restriction.kubernetes.io/ (through the Node or its status, when it
// registers or later), no other Node, no namespace annotation, no Dataset,
// ElasticQuota or PodGroup. The locus-scheduler ServiceAccount cannot change
// Node labels or namespace annotations either, nor write Datasets or quota
// specs; a namespace's own administrators (the built-in admin role bound in
// it) cannot change its annotations or bind pods. Two subtests named
// "limitation" assert what the trust model does not cover, so that
// docs/security.md states it rightly: a kubelet can record an event that
// looks like locus's CompliantPlacement, and a compromised scheduler can bind
// a regulated pod to any node.
func TestSecurityTrustModel(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	worker1Token, worker3Token := rand.String(32), rand.String(32)
	tokenFile := filepath.Join(t.TempDir(), "tokens.csv")
	// token,user,uid,"groups": the identity a kubelet's client certificate
	// (CN system:node:<name>, O system:nodes) gives it.
	tokens := fmt.Sprintf("%s,system:node:worker-1,uid-worker-1,\"system:nodes\"\n%s,system:node:worker-3,uid-worker-3,\"system:nodes\"\n",
		worker1Token, worker3Token)
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{
		"--authorization-mode=Node,RBAC",
		// With testenv's --disable-admission-plugins=ServiceAccount.
		"--enable-admission-plugins=NodeRestriction",
		"--token-auth-file=" + tokenFile,
	}})
	admin := cp.Client
	applyBase(ctx, t, cp) // CRDs, then manifests/base: RBAC, admission guard, Deployment

	for _, n := range []string{"worker-1", "worker-2"} {
		if _, err := testenv.CreateNode(ctx, admin, testenv.NodeSpec{Name: n}); err != nil {
			t.Fatal(err)
		}
	}
	createNamespace(ctx, t, cp, "payments", map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}, nil)
	adminDyn := mustDynamic(t, cp)
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		yaml string
	}{
		{datasetsGVR, "apiVersion: locus.dev/v1alpha1\nkind: Dataset\nmetadata: {name: ledger, namespace: payments}\nspec:\n  locations: [{node: worker-1, bytes: 1Gi}]\n"},
		{elasticQuotasGVR, "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: ElasticQuota\nmetadata: {name: quota, namespace: payments}\nspec: {min: {cpu: '2'}, max: {cpu: '4'}}\n"},
		{podGroupsGVR, "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: batch, namespace: payments}\nspec: {minMember: 2}\n"},
	} {
		if _, err := adminDyn.Resource(o.gvr).Namespace("payments").Create(ctx, mustUnstructured(t, o.yaml), metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating %s: %v", o.gvr.Resource, err)
		}
	}

	kubeletCfg := tokenConfig(cp, worker1Token)
	kubelet := mustClientset(t, kubeletCfg)

	// The identity works: without this, the refusals below prove nothing.
	who, err := kubelet.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("the kubelet token: %v", err)
	}
	if got := who.Status.UserInfo; got.Username != "system:node:worker-1" || !slices.Contains(got.Groups, "system:nodes") {
		t.Fatalf("the kubelet token authenticates as %s %v, want system:node:worker-1 in system:nodes", got.Username, got.Groups)
	}
	if _, err := patchNodeLabels(ctx, kubelet, "worker-1", map[string]any{"example.com/rack": "r12"}); err != nil {
		t.Fatalf("the kubelet cannot set an ordinary label on its own Node (the identity does not work, so the refusals below would prove nothing): %v", err)
	}
	if n, err := admin.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{}); err != nil || n.Labels["example.com/rack"] != "r12" {
		t.Fatalf("the kubelet's label is not on its Node: %v %v", err, n.Labels)
	}

	t.Run("a kubelet cannot certify its own node", func(t *testing.T) {
		_, err := patchNodeLabels(ctx, kubelet, "worker-1", map[string]any{pciLabel: "true"})
		wantForbidden(t, "set "+pciLabel+"=true on its own Node", err, "is not allowed to modify labels", pciLabel)
		// Labels changed through the status subresource are checked too.
		_, err = patchNodeLabels(ctx, kubelet, "worker-1", map[string]any{pciLabel: "true"}, "status")
		wantForbidden(t, "set "+pciLabel+"=true through nodes/status", err, "is not allowed to modify labels", pciLabel)
		// Nor can it extend a certification an administrator gave it.
		if _, err := patchNodeLabels(ctx, admin, "worker-1", map[string]any{pciLabel: "2020-01-31"}); err != nil {
			t.Fatal(err)
		}
		_, err = patchNodeLabels(ctx, kubelet, "worker-1", map[string]any{pciLabel: "2099-12-31"})
		wantForbidden(t, "extend "+pciLabel+" on its own Node", err, "is not allowed to modify labels", pciLabel)
		n, err := admin.CoreV1().Nodes().Get(ctx, "worker-1", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := n.Labels[pciLabel]; got != "2020-01-31" {
			t.Errorf("%s on worker-1 is %q after the kubelet's attempts, want the administrator's 2020-01-31", pciLabel, got)
		}
		if _, err := patchNodeLabels(ctx, admin, "worker-1", map[string]any{pciLabel: nil}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a kubelet cannot register a certified node", func(t *testing.T) {
		kubelet3 := mustClientset(t, tokenConfig(cp, worker3Token))
		node := func(labels map[string]string) *v1.Node {
			return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "worker-3", Labels: labels}}
		}
		_, err := kubelet3.CoreV1().Nodes().Create(ctx, node(map[string]string{v1.LabelHostname: "worker-3", pciLabel: "true"}), metav1.CreateOptions{})
		wantForbidden(t, "register worker-3 with "+pciLabel, err, "is not allowed to set the following labels", pciLabel)
		_, err = kubelet3.CoreV1().Nodes().Create(ctx, node(map[string]string{v1.LabelHostname: "worker-3", protectedRegionLabel: "eu-west-1"}), metav1.CreateOptions{})
		wantForbidden(t, "register worker-3 with "+protectedRegionLabel, err, "is not allowed to set the following labels", protectedRegionLabel)
		// The same node without them registers: the refusals are for the labels.
		if _, err := kubelet3.CoreV1().Nodes().Create(ctx, node(map[string]string{v1.LabelHostname: "worker-3", defaultResidencyLabel: "eu-west-1"}), metav1.CreateOptions{}); err != nil {
			t.Errorf("worker-3 cannot register without the protected labels: %v", err)
		}
	})

	t.Run("the default residency label is kubelet-settable, node-restriction.kubernetes.io/region is not", func(t *testing.T) {
		// Why the README recommends residencyLabel: node-restriction.kubernetes.io/region
		// and locus warns at start about the default: a kubelet can move
		// its own Node into a residency group under the default label.
		if _, err := patchNodeLabels(ctx, kubelet, "worker-1", map[string]any{defaultResidencyLabel: "eu-west-1"}); err != nil {
			t.Errorf("want the kubelet allowed to set %s on its own Node (the trust model assumes it can), got %v", defaultResidencyLabel, err)
		}
		_, err := patchNodeLabels(ctx, kubelet, "worker-1", map[string]any{protectedRegionLabel: "eu-west-1"})
		wantForbidden(t, "set "+protectedRegionLabel+" on its own Node", err, "is not allowed to modify labels", protectedRegionLabel)
		// An administrator can set it.
		if _, err := patchNodeLabels(ctx, admin, "worker-1", map[string]any{protectedRegionLabel: "eu-west-1"}); err != nil {
			t.Errorf("an administrator cannot set %s: %v", protectedRegionLabel, err)
		}
	})

	t.Run("a kubelet cannot touch another node", func(t *testing.T) {
		_, err := patchNodeLabels(ctx, kubelet, "worker-2", map[string]any{"example.com/rack": "r12"})
		wantForbidden(t, "set an ordinary label on worker-2", err, `is not allowed to modify node "worker-2"`)
		_, err = patchNodeLabels(ctx, kubelet, "worker-2", map[string]any{pciLabel: "true"})
		wantForbidden(t, "certify worker-2", err, `is not allowed to modify node "worker-2"`)
		_, err = patchNodeLabels(ctx, kubelet, "worker-2", map[string]any{"example.com/rack": "r12"}, "status")
		wantForbidden(t, "change worker-2 through nodes/status", err, `is not allowed to modify node "worker-2"`)
		_, err = kubelet.CoreV1().Nodes().Get(ctx, "worker-2", metav1.GetOptions{})
		wantForbidden(t, "read worker-2", err, "only its own Node object")
		err = kubelet.CoreV1().Nodes().Delete(ctx, "worker-2", metav1.DeleteOptions{})
		wantForbidden(t, "delete worker-2", err, `cannot delete resource "nodes"`)
		n, err := admin.CoreV1().Nodes().Get(ctx, "worker-2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := n.Labels["example.com/rack"]; ok || n.Labels[pciLabel] != "" {
			t.Errorf("worker-2 changed by worker-1's kubelet: %v", n.Labels)
		}
	})

	t.Run("a kubelet cannot change a namespace's requirements", func(t *testing.T) {
		_, err := patchAnnotations(ctx, kubelet.CoreV1().RESTClient(), "namespaces", "", "payments", map[string]any{locusv1alpha1.AnnotationCompliance: nil})
		wantForbidden(t, "remove payments' "+locusv1alpha1.AnnotationCompliance, err, `cannot patch resource "namespaces"`)
	})

	t.Run("a kubelet cannot write Datasets, ElasticQuotas or PodGroups", func(t *testing.T) {
		checkCannotWriteLocusObjects(ctx, t, kubeletCfg, "system:node:worker-1")
	})

	t.Run("limitation: a kubelet can record an event that reads as CompliantPlacement", func(t *testing.T) {
		// Events are not evidence: whoever may create events (every kubelet,
		// in any namespace) can write one with locus's reason and reporting
		// controller. docs/security.md makes the scheduler's log line the
		// audit record. If this starts failing, the cluster restricts event
		// creation: update docs/security.md.
		now := metav1.NewTime(time.Now())
		_, err := kubelet.CoreV1().Events("payments").Create(ctx, &v1.Event{
			ObjectMeta:          metav1.ObjectMeta{Name: "card.forged", Namespace: "payments"},
			InvolvedObject:      v1.ObjectReference{Kind: "Pod", Namespace: "payments", Name: "card", APIVersion: "v1"},
			Reason:              locusv1alpha1.EventReasonCompliantPlacement,
			Message:             "node worker-1 holds pci-dss (no expiry)",
			Type:                v1.EventTypeNormal,
			Source:              v1.EventSource{Component: plugins.SchedulerName},
			ReportingController: plugins.SchedulerName,
			ReportingInstance:   "locus-scheduler-0",
			FirstTimestamp:      now, LastTimestamp: now, Count: 1,
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("want the kubelet able to create the event (docs/security.md says it can), got %v", err)
		}
		evs, err := testenv.PodEvents(ctx, admin, "payments", "card", locusv1alpha1.EventReasonCompliantPlacement)
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].ReportingController != plugins.SchedulerName {
			t.Errorf("want the forged event listed as locus-scheduler's CompliantPlacement, got %+v", evs)
		}
	})

	// The locus-scheduler ServiceAccount, as the Deployment's pod runs.
	saCfg, err := clientcmd.BuildConfigFromFlags("", serviceAccountKubeconfig(ctx, t, cp, "kube-system"))
	if err != nil {
		t.Fatal(err)
	}
	sa := mustClientset(t, saCfg)
	const saUser = "system:serviceaccount:kube-system:locus-scheduler"

	t.Run("the scheduler ServiceAccount cannot certify nodes", func(t *testing.T) {
		// The identity works: it reads nodes and writes quota status.
		if _, err := sa.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatalf("the ServiceAccount cannot list nodes (the identity does not work): %v", err)
		}
		saDyn, err := dynamic.NewForConfig(saCfg)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := saDyn.Resource(elasticQuotasGVR).Namespace("payments").Patch(ctx, "quota", types.MergePatchType,
			[]byte(`{"status":{"used":{"cpu":"0"}}}`), metav1.PatchOptions{}, "status"); err != nil {
			t.Fatalf("the ServiceAccount cannot write quota status (the identity does not work): %v", err)
		}

		for _, sub := range []string{"", "status"} {
			_, err := patchNodeLabels(ctx, sa, "worker-2", map[string]any{pciLabel: "true"}, sub)
			res := "nodes"
			if sub != "" {
				res = "nodes/" + sub
			}
			wantForbidden(t, "set "+pciLabel+" through "+res, err, `cannot patch resource "`+res+`"`)
			_, err = patchNodeLabels(ctx, sa, "worker-2", map[string]any{protectedRegionLabel: "eu-west-1"}, sub)
			wantForbidden(t, "set "+protectedRegionLabel+" through "+res, err, `cannot patch resource "`+res+`"`)
		}
		_, err = patchAnnotations(ctx, sa.CoreV1().RESTClient(), "namespaces", "", "payments", map[string]any{locusv1alpha1.AnnotationCompliance: nil})
		wantForbidden(t, "remove payments' "+locusv1alpha1.AnnotationCompliance, err, `cannot patch resource "namespaces"`)
		_, err = saDyn.Resource(datasetsGVR).Namespace("payments").Create(ctx,
			mustUnstructured(t, "apiVersion: locus.dev/v1alpha1\nkind: Dataset\nmetadata: {name: planted, namespace: payments}\nspec:\n  locations: [{node: worker-2, bytes: 1Ti}]\n"), metav1.CreateOptions{})
		wantForbidden(t, "create a Dataset", err, `cannot create resource "datasets"`)
		_, err = saDyn.Resource(elasticQuotasGVR).Namespace("payments").Patch(ctx, "quota", types.MergePatchType,
			[]byte(`{"spec":{"max":{"cpu":"1000"}}}`), metav1.PatchOptions{})
		wantForbidden(t, "raise an ElasticQuota's max", err, `cannot patch resource "elasticquotas"`)

		n, err := admin.CoreV1().Nodes().Get(ctx, "worker-2", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Labels[pciLabel] != "" || n.Labels[protectedRegionLabel] != "" {
			t.Errorf("worker-2 labelled by the ServiceAccount: %v", n.Labels)
		}
	})

	t.Run("limitation: the scheduler ServiceAccount can bind a regulated pod to any node", func(t *testing.T) {
		// Every scheduler can bind (pods/binding): a compromised locus, or
		// anything else allowed to bind, places a regulated pod where it
		// likes. The API server does not check certifications. If this
		// starts failing, something now guards binds: update
		// docs/security.md.
		if _, err := testenv.CreatePod(ctx, admin, testenv.PodSpec{Namespace: "payments", Name: "card", SchedulerName: plugins.SchedulerName}); err != nil {
			t.Fatal(err)
		}
		if err := sa.CoreV1().Pods("payments").Bind(ctx, &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: "card", Namespace: "payments"},
			Target:     v1.ObjectReference{Kind: "Node", Name: "worker-2"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatalf("want the ServiceAccount able to bind (docs/security.md says it can), got %v", err)
		}
		p, err := admin.CoreV1().Pods("payments").Get(ctx, "card", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Spec.NodeName != "worker-2" {
			t.Errorf("card bound to %q, want worker-2", p.Spec.NodeName)
		}
	})

	t.Run("who may change nodes, namespaces and binds", func(t *testing.T) {
		// A namespace's own administrators: what the built-in admin role
		// grants in the namespace (it aggregates these three roles; no
		// controller aggregates them here, so they are bound directly).
		for _, role := range []string{"system:aggregate-to-admin", "system:aggregate-to-edit", "system:aggregate-to-view"} {
			if _, err := admin.RbacV1().RoleBindings("payments").Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "team-" + strings.TrimPrefix(role, "system:")},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: "team-admin"}},
			}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		nodes := []string{"system:nodes"}
		for _, c := range []struct {
			user      string
			groups    []string
			verb, ns  string
			res, sub  string
			name      string
			wantAllow bool
		}{
			{saUser, nil, "get", "", "nodes", "", "worker-2", true},
			{saUser, nil, "patch", "", "nodes", "", "worker-2", false},
			{saUser, nil, "update", "", "nodes", "", "worker-2", false},
			{saUser, nil, "patch", "", "nodes", "status", "worker-2", false},
			{saUser, nil, "patch", "", "namespaces", "", "payments", false},
			{saUser, nil, "create", "payments", "pods", "binding", "card", true},
			// kube-scheduler's own role cannot label nodes either.
			{"system:kube-scheduler", nil, "patch", "", "nodes", "", "worker-2", false},
			// The Node authorizer lets a kubelet patch any Node and leaves
			// the rest to NodeRestriction (the subtests above).
			{"system:node:worker-1", nodes, "patch", "", "nodes", "", "worker-2", true},
			{"system:node:worker-1", nodes, "create", "payments", "pods", "binding", "card", false},
			// The namespace's administrators run pods there, but change
			// neither its requirements nor where pods are bound.
			{"team-admin", nil, "create", "payments", "pods", "", "", true},
			{"team-admin", nil, "patch", "", "namespaces", "", "payments", false},
			{"team-admin", nil, "update", "", "namespaces", "", "payments", false},
			{"team-admin", nil, "create", "payments", "pods", "binding", "card", false},
			{"team-admin", nil, "patch", "", "nodes", "", "worker-2", false},
		} {
			ok, err := accessAllowed(ctx, admin, c.user, c.groups, c.verb, c.ns, c.res, c.sub, c.name)
			if err != nil {
				t.Fatal(err)
			}
			if ok != c.wantAllow {
				t.Errorf("may %s %s %s/%s %s in %q? %v, want %v", c.user, c.verb, c.res, c.sub, c.name, c.ns, ok, c.wantAllow)
			}
		}
	})
}

// checkCannotWriteLocusObjects checks that cfg's user can create, patch and
// delete none of Datasets, ElasticQuotas and PodGroups: the RBAC authorizer
// refuses each with 403.
func checkCannotWriteLocusObjects(ctx context.Context, t *testing.T, cfg *rest.Config, user string) {
	t.Helper()
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range []struct {
		gvr  schema.GroupVersionResource
		name string
		yaml string
	}{
		{datasetsGVR, "ledger", "apiVersion: locus.dev/v1alpha1\nkind: Dataset\nmetadata: {name: planted, namespace: payments}\nspec:\n  locations: [{node: worker-1, bytes: 1Ti}]\n"},
		{elasticQuotasGVR, "quota", "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: ElasticQuota\nmetadata: {name: planted, namespace: payments}\nspec: {min: {cpu: '1000'}, max: {cpu: '1000'}}\n"},
		{podGroupsGVR, "batch", "apiVersion: scheduling.x-k8s.io/v1alpha1\nkind: PodGroup\nmetadata: {name: planted, namespace: payments}\nspec: {minMember: 1}\n"},
	} {
		r := d.Resource(o.gvr).Namespace("payments")
		quoted := fmt.Sprintf("%q", o.gvr.Resource)
		_, err := r.Create(ctx, mustUnstructured(t, o.yaml), metav1.CreateOptions{})
		wantForbidden(t, "create "+o.gvr.Resource, err, user, "cannot create resource "+quoted, o.gvr.Group)
		_, err = r.Patch(ctx, o.name, types.MergePatchType, []byte(`{"metadata":{"labels":{"tampered":"yes"}}}`), metav1.PatchOptions{})
		wantForbidden(t, "patch "+o.gvr.Resource, err, user, "cannot patch resource "+quoted)
		_, err = r.Patch(ctx, o.name, types.MergePatchType, []byte(`{"status":{}}`), metav1.PatchOptions{}, "status")
		wantForbidden(t, "patch "+o.gvr.Resource+"/status", err, user, fmt.Sprintf("cannot patch resource %q", o.gvr.Resource+"/status"))
		err = r.Delete(ctx, o.name, metav1.DeleteOptions{})
		wantForbidden(t, "delete "+o.gvr.Resource, err, user, "cannot delete resource "+quoted)
	}
}

// tokenConfig reaches the control plane's API server, trusting its CA, with
// a bearer token and no other credential.
func tokenConfig(cp *testenv.ControlPlane, token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(cp.Config)
	cfg.BearerToken = token
	return cfg
}

func mustClientset(t *testing.T, cfg *rest.Config) kubernetes.Interface {
	t.Helper()
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustUnstructured(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(y), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// patchNodeLabels merge-patches a node's labels (a nil value removes one),
// through the subresource if one is named.
func patchNodeLabels(ctx context.Context, c kubernetes.Interface, node string, labels map[string]any, subresource ...string) (*v1.Node, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": labels}})
	if err != nil {
		return nil, err
	}
	return c.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, patch, metav1.PatchOptions{}, subresource...)
}

// patchAnnotations merge-patches an object's annotations (a nil value
// removes one).
func patchAnnotations(ctx context.Context, c rest.Interface, resource, ns, name string, annotations map[string]any) (rest.Result, error) {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		return rest.Result{}, err
	}
	res := c.Patch(types.MergePatchType).NamespaceIfScoped(ns, ns != "").Resource(resource).Name(name).Body(patch).Do(ctx)
	return res, res.Error()
}

// wantForbidden fails unless err is a 403 Forbidden whose message holds
// every one of substrs.
func wantForbidden(t *testing.T, what string, err error, substrs ...string) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: want 403 Forbidden, got %v", what, err)
		return
	}
	for _, s := range substrs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("%s: 403 %q, want it to mention %q", what, err, s)
		}
	}
}

// accessAllowed asks the API server's authorizers (a SubjectAccessReview)
// whether user may do verb on the named resource/subresource of the core
// group in namespace ns ("" for cluster-scoped resources).
func accessAllowed(ctx context.Context, c kubernetes.Interface, user string, groups []string, verb, ns, resource, subresource, name string) (bool, error) {
	r, err := c.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: groups,
		ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Namespace: ns, Resource: resource, Subresource: subresource, Name: name},
	}}, metav1.CreateOptions{})
	if err != nil {
		return false, err
	}
	return r.Status.Allowed, nil
}
