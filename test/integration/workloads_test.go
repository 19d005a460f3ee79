package integration

import (
	"context"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"k8s.io/utils/ptr"

	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// TestJobPodsArePlacedByLocus: a real kube-controller-manager turns a Job
// into pods, and locus-scheduler places them.
func TestJobPodsArePlacedByLocus(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	env.StartControllerManager(ctx, t)
	if _, err := testenv.CreateNode(ctx, env.Client, testenv.NodeSpec{Name: "worker"}); err != nil {
		t.Fatal(err)
	}
	if err := testenv.CreateNamespace(ctx, env.Client, "prefect", nil); err != nil {
		t.Fatal(err)
	}
	pod := testenv.NewPod(testenv.PodSpec{SchedulerName: plugins.SchedulerName, CPU: "100m"})
	pod.Spec.RestartPolicy = v1.RestartPolicyNever
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "flow-run", Namespace: "prefect"},
		Spec: batchv1.JobSpec{
			Parallelism: ptr.To[int32](3), Completions: ptr.To[int32](3),
			Template: v1.PodTemplateSpec{Spec: pod.Spec},
		},
	}
	if _, err := env.Client.BatchV1().Jobs("prefect").Create(ctx, job, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		pods, err := env.Client.CoreV1().Pods("prefect").List(ctx, metav1.ListOptions{LabelSelector: "job-name=flow-run"})
		if err != nil {
			return false, err
		}
		bound := 0
		for _, p := range pods.Items {
			if p.Spec.NodeName == "worker" && p.Spec.SchedulerName == plugins.SchedulerName {
				bound++
			}
		}
		return bound == 3, nil
	})
	if err != nil {
		t.Fatalf("the Job's 3 pods were not created and bound by locus: %v", err)
	}
}
