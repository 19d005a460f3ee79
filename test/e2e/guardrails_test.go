package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

const guardPolicy = "locus-scheduler-required"

// applyBase applies manifests/base with the real kubectl, as users deploy it,
// and returns the admin kubeconfig it used.
func applyBase(ctx context.Context, t *testing.T, cp *testenv.ControlPlane) string {
	t.Helper()
	admin := cp.KubeconfigFile(t)
	if err := testenv.CreateNamespace(ctx, cp.Client, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	installWithKubectl(t, admin)
	return admin
}

// createNamespace creates a namespace with annotations and labels.
func createNamespace(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, name string, annotations, labels map[string]string) {
	t.Helper()
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations, Labels: labels},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// waitForGuard waits until the API server has compiled the admission guard
// and enforces it (a policy takes effect a moment after it is created), and
// fails if type checking found anything wrong with its expressions.
func waitForGuard(ctx context.Context, t *testing.T, cp *testenv.ControlPlane, guardedNamespace string) {
	t.Helper()
	probe := testenv.NewPod(testenv.PodSpec{Namespace: guardedNamespace, Name: "probe"})
	var last error
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		_, last = cp.Client.CoreV1().Pods(guardedNamespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return apierrors.IsForbidden(last) && strings.Contains(last.Error(), guardPolicy), nil
	}); err != nil {
		t.Fatalf("the admission guard is not enforced in namespace %s (last answer: %v)", guardedNamespace, last)
	}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cp.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, guardPolicy, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Status.ObservedGeneration != p.Generation || p.Status.TypeChecking == nil {
			return false, nil
		}
		for _, w := range p.Status.TypeChecking.ExpressionWarnings {
			t.Errorf("type checking %s: %s", w.FieldRef, w.Warning)
		}
		return true, nil
	}); err != nil {
		t.Errorf("the policy's type checking never finished: %v", err)
	}
}

// daemonSetPod is a pod as the DaemonSet controller creates it: owned by the
// DaemonSet and pinned to one node by required node affinity.
func daemonSetPod(ns, name, node, schedulerName string) *v1.Pod {
	p := testenv.NewPod(testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: schedulerName})
	p.OwnerReferences = []metav1.OwnerReference{{
		APIVersion: "apps/v1", Kind: "DaemonSet", Name: "agent", UID: "5e1f3f3c-0000-4000-8000-000000000001",
		Controller: ptrBool(true), BlockOwnerDeletion: ptrBool(true),
	}}
	p.Spec.Affinity = &v1.Affinity{NodeAffinity: &v1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &v1.NodeSelector{NodeSelectorTerms: []v1.NodeSelectorTerm{{
			MatchFields: []v1.NodeSelectorRequirement{{Key: "metadata.name", Operator: v1.NodeSelectorOpIn, Values: []string{node}}},
		}}},
	}}
	return p
}

// TestAdmissionGuard applies manifests/base with kubectl and checks, with the
// API server's own ValidatingAdmissionPolicy admission, that a guarded
// namespace (compliance or residency annotation, or the label
// locus.dev/scheduler=required) admits only pods that locus-scheduler will
// place, with a message that names the requirement and the fix; that mirror
// pods, kube-system and unguarded namespaces are left alone; and that a Job's
// pods are refused through the job controller with the same message.
func TestAdmissionGuard(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{})
	c := cp.Client
	// The job controller, and the controller that type-checks policies and
	// reports it in their status.
	cp.StartControllerManager(ctx, t, "validatingadmissionpolicy-status-controller")
	applyBase(ctx, t, cp)

	createNamespace(ctx, t, cp, "payments", map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}, nil)
	createNamespace(ctx, t, cp, "eu-data", map[string]string{locusv1alpha1.AnnotationDataResidency: "eu"}, nil)
	createNamespace(ctx, t, cp, "strict", nil, map[string]string{"locus.dev/scheduler": "required"})
	createNamespace(ctx, t, cp, "both", map[string]string{locusv1alpha1.AnnotationCompliance: "hipaa,soc2", locusv1alpha1.AnnotationDataResidency: "eu"}, nil)
	createNamespace(ctx, t, cp, "open", nil, nil)
	createNamespace(ctx, t, cp, "optional", nil, map[string]string{"locus.dev/scheduler": "optional"})
	waitForGuard(ctx, t, cp, "payments")

	locus := plugins.SchedulerName
	fix := ": set spec.schedulerName: locus-scheduler and leave spec.nodeName unset"
	mirror := testenv.NewPod(testenv.PodSpec{Namespace: "payments", Name: "static-agent-node-a",
		Annotations: map[string]string{v1.MirrorPodAnnotationKey: "3f1e0c9a7b"}})
	mirror.Spec.NodeName = "node-a" // the API server requires it of mirror pods
	preset := testenv.NewPod(testenv.PodSpec{Namespace: "payments", Name: "preset", SchedulerName: locus})
	preset.Spec.NodeName = "node-a"

	for _, tc := range []struct {
		name    string
		pod     *v1.Pod
		wantErr string // the guard's whole message; empty: admitted
	}{
		{
			name:    "compliance namespace, default scheduler",
			pod:     testenv.NewPod(testenv.PodSpec{Namespace: "payments", Name: "card"}),
			wantErr: "namespace payments requires locus-scheduler (annotation locus.dev/compliance: pci-dss), but the pod has spec.schedulerName default-scheduler" + fix,
		},
		{
			name:    "residency namespace, another scheduler",
			pod:     testenv.NewPod(testenv.PodSpec{Namespace: "eu-data", Name: "etl", SchedulerName: "volcano"}),
			wantErr: "namespace eu-data requires locus-scheduler (annotation locus.dev/data-residency: eu), but the pod has spec.schedulerName volcano" + fix,
		},
		{
			name:    "labelled namespace, default scheduler",
			pod:     testenv.NewPod(testenv.PodSpec{Namespace: "strict", Name: "batch"}),
			wantErr: "namespace strict requires locus-scheduler (label locus.dev/scheduler: required), but the pod has spec.schedulerName default-scheduler" + fix,
		},
		{
			name:    "every requirement of the namespace is named",
			pod:     testenv.NewPod(testenv.PodSpec{Namespace: "both", Name: "claims"}),
			wantErr: "namespace both requires locus-scheduler (annotation locus.dev/compliance: hipaa,soc2, annotation locus.dev/data-residency: eu), but the pod has spec.schedulerName default-scheduler" + fix,
		},
		{
			name:    "locus-scheduler with a preset nodeName",
			pod:     preset,
			wantErr: "namespace payments requires locus-scheduler (annotation locus.dev/compliance: pci-dss), but the pod presets spec.nodeName node-a" + fix,
		},
		{
			name:    "DaemonSet pod without locus-scheduler",
			pod:     daemonSetPod("payments", "agent-x1", "node-a", ""),
			wantErr: "namespace payments requires locus-scheduler (annotation locus.dev/compliance: pci-dss), but the pod has spec.schedulerName default-scheduler" + fix,
		},
		{name: "compliance namespace, locus-scheduler", pod: testenv.NewPod(testenv.PodSpec{Namespace: "payments", Name: "card", SchedulerName: locus})},
		{name: "residency namespace, locus-scheduler", pod: testenv.NewPod(testenv.PodSpec{Namespace: "eu-data", Name: "etl", SchedulerName: locus})},
		{name: "labelled namespace, locus-scheduler", pod: testenv.NewPod(testenv.PodSpec{Namespace: "strict", Name: "batch", SchedulerName: locus})},
		{name: "DaemonSet pod with locus-scheduler", pod: daemonSetPod("payments", "agent-x2", "node-a", locus)},
		{name: "mirror pod of a static pod", pod: mirror},
		{name: "unguarded namespace", pod: testenv.NewPod(testenv.PodSpec{Namespace: "open", Name: "web"})},
		{name: "unguarded namespace, preset nodeName", pod: func() *v1.Pod {
			p := testenv.NewPod(testenv.PodSpec{Namespace: "open", Name: "pinned"})
			p.Spec.NodeName = "node-a"
			return p
		}()},
		{name: "label locus.dev/scheduler with another value", pod: testenv.NewPod(testenv.PodSpec{Namespace: "optional", Name: "web"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CoreV1().Pods(tc.pod.Namespace).Create(ctx, tc.pod, metav1.CreateOptions{})
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("want admitted, got %v", err)
			case tc.wantErr != "" && err == nil:
				t.Errorf("want rejected with %q, got admitted", tc.wantErr)
			case tc.wantErr != "" && (!apierrors.IsForbidden(err) || !strings.HasSuffix(err.Error(), "denied request: "+tc.wantErr)):
				t.Errorf("want Forbidden by %s: %s\ngot %v", guardPolicy, tc.wantErr, err)
			}
		})
	}

	t.Run("kube-system is exempt even when annotated", func(t *testing.T) {
		ns, err := c.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ns.Annotations = map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}
		if _, err := c.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		// The same annotation does guard another namespace at this time.
		if _, err := c.CoreV1().Pods("payments").Create(ctx, testenv.NewPod(testenv.PodSpec{Namespace: "payments", Name: "control"}),
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); !apierrors.IsForbidden(err) {
			t.Errorf("payments: want Forbidden, got %v", err)
		}
		if _, err := c.CoreV1().Pods("kube-system").Create(ctx, testenv.NewPod(testenv.PodSpec{Namespace: "kube-system", Name: "locus-scheduler-0"}), metav1.CreateOptions{}); err != nil {
			t.Errorf("kube-system: want admitted, got %v", err)
		}
	})

	t.Run("a Job's pods are refused through the job controller", func(t *testing.T) {
		job := func(name, schedulerName string) *batchv1.Job {
			p := testenv.NewPod(testenv.PodSpec{SchedulerName: schedulerName})
			p.Spec.RestartPolicy = v1.RestartPolicyNever
			return &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Namespace: "payments", Name: name},
				Spec:       batchv1.JobSpec{Template: v1.PodTemplateSpec{Spec: p.Spec}},
			}
		}
		for _, j := range []*batchv1.Job{job("settle", ""), job("settle-locus", locus)} {
			if _, err := c.BatchV1().Jobs("payments").Create(ctx, j, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		want := "namespace payments requires locus-scheduler (annotation locus.dev/compliance: pci-dss), but the pod has spec.schedulerName default-scheduler" + fix
		var seen []string
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			events, err := c.CoreV1().Events("payments").List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=settle,reason=FailedCreate"})
			if err != nil {
				return false, err
			}
			seen = seen[:0]
			for _, e := range events.Items {
				seen = append(seen, e.Message)
				if strings.Contains(e.Message, want) {
					return true, nil
				}
			}
			return false, nil
		}); err != nil {
			t.Errorf("Job settle: no FailedCreate event with %q; events: %q", want, seen)
		}
		if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := c.CoreV1().Pods("payments").List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=settle-locus"})
			return err == nil && len(pods.Items) == 1, err
		}); err != nil {
			t.Errorf("Job settle-locus: its pod was not created: %v", err)
		}
	})
}

// buildKubectlLocus builds the kubectl plugin into binDir once, for the tests
// that run `kubectl locus` as users do.
var buildKubectlLocus = sync.OnceValue(func() error {
	build := exec.Command("go", "build", "-o", binDir+"/", "../../cmd/kubectl-locus")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	return build.Run()
})

// kubectlPlugin runs the real kubectl with binDir on PATH, so that
// `kubectl locus ...` runs the kubectl-locus binary, and returns its stdout and
// stderr apart.
func kubectlPlugin(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "kubectl"), args...)
	cmd.Env = append(os.Environ(), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	t.Logf("$ kubectl %s\n%s%s", strings.Join(args, " "), out.String(), errOut.String())
	return out.String(), errOut.String(), err
}

// TestReaderRoleSuffices applies manifests/base and
// manifests/kubectl-locus-reader.yaml with kubectl to an API server that
// enforces RBAC, binds the reader roles to a user as the file's header says,
// and runs `kubectl locus explain` as that user on a pod that locus-scheduler
// (the binary) has found unschedulable: the roles are enough to read the
// scheduler's ConfigMap and everything the what-if engine reads, with no
// warning; and the user can read no other ConfigMap in kube-system.
func TestReaderRoleSuffices(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := buildKubectlLocus(); err != nil {
		t.Fatalf("building kubectl-locus: %v", err)
	}
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{"--authorization-mode=RBAC"}})
	c := cp.Client
	admin := applyBase(ctx, t, cp)
	for _, args := range [][]string{
		{"apply", "--server-side", "-f", "../../manifests/kubectl-locus-reader.yaml"},
		{"create", "clusterrolebinding", "locus-readers", "--clusterrole=locus-reader", "--user=jane"},
		{"create", "rolebinding", "locus-readers", "-n", "kube-system", "--role=locus-reader-config", "--user=jane"},
		{"create", "configmap", "other", "-n", "kube-system", "--from-literal=secret-ish=value"},
	} {
		if out, err := kubectl(t, admin, args...); err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
	}

	// locus-scheduler (the binary, as admin here) tries the pod and finds no
	// certified node, so the pod has its condition and event.
	if _, err := testenv.CreateNode(ctx, c, testenv.NodeSpec{Name: "plain"}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateNamespace(ctx, c, "payments", map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "payments", Name: "card", SchedulerName: plugins.SchedulerName, CPU: "100m"}); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	sched := exec.Command(filepath.Join(binDir, "locus-scheduler"), "--config", configWithKubeconfig(t, manifests.SchedulerConfig, admin), "--secure-port=0", "-v=2")
	sched.Stderr = &stderr
	if err := sched.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sched.Process.Kill(); _ = sched.Wait() }()
	if _, err := testenv.WaitForPodEvent(ctx, c, "payments", "card", "FailedScheduling", "", 60*time.Second); err != nil {
		t.Fatalf("%v\nscheduler stderr:\n%s", err, tail(stderr.String()))
	}

	out, errOut, err := kubectlPlugin(t, "locus", "explain", "card", "-n", "payments", "--kubeconfig", admin, "--as", "jane")
	if err != nil {
		t.Fatalf("kubectl locus explain as jane: %v", err)
	}
	if strings.Contains(errOut, "warning:") {
		t.Errorf("explain as jane could not read everything it reads:\n%s", errOut)
	}
	if got := strings.Join(row(out, "plain"), " "); !strings.Contains(got, "Compliance: missing certification pci-dss") {
		t.Errorf("row of node plain: want Compliance: missing certification pci-dss, got %q", got)
	}
	for _, want := range []string{
		"Profile: locus-scheduler, from ConfigMap kube-system/locus-scheduler-config",
		"Node: <none> (Unschedulable: ",
		"Verdict: pending; would wait now: ",
		"FailedScheduling",
	} {
		if !strings.Contains(squash(out), want) {
			t.Errorf("explain as jane: output lacks %q", want)
		}
	}

	// By name only: no other ConfigMap in kube-system, and no listing them.
	if out, err := kubectl(t, admin, "get", "configmap", "other", "-n", "kube-system", "--as", "jane"); err == nil ||
		!strings.Contains(out, `configmaps "other" is forbidden: User "jane" cannot get resource "configmaps"`) {
		t.Errorf("jane reading ConfigMap kube-system/other: want Forbidden, got %v\n%s", err, out)
	}
	for _, check := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "configmaps/locus-scheduler-config", "-n", "kube-system"}, "yes"},
		{[]string{"list", "configmaps", "-n", "kube-system"}, "no"},
		{[]string{"get", "configmaps/locus-scheduler-config", "-n", "default"}, "no"},
		{[]string{"get", "secrets", "-n", "kube-system"}, "no"},
		{[]string{"create", "pods", "-n", "payments"}, "no"},
		{[]string{"list", "pods", "-A"}, "yes"},
	} {
		out, _ := kubectl(t, admin, append([]string{"auth", "can-i", "--as", "jane"}, check.args...)...)
		if got := strings.TrimSpace(out); got != check.want {
			t.Errorf("can jane %v? %q, want %q", check.args, got, check.want)
		}
	}
}

// squash collapses runs of blanks, so that assertions do not depend on
// column widths.
func squash(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.Join(strings.Fields(l), " ")
	}
	return strings.Join(lines, "\n")
}

// row returns the first line of a table whose first field is key, as fields.
func row(out, key string) []string {
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == key {
			return f
		}
	}
	return nil
}

func ptrBool(v bool) *bool { return &v }
