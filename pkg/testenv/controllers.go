package testenv

import (
	"context"
	"strings"

	kcmtesting "k8s.io/kubernetes/cmd/kube-controller-manager/app/testing"
)

// workloadControllers are the kube-controller-manager controllers that turn
// the workloads data platforms submit (Jobs, CronJobs, Deployments) into pods.
const workloadControllers = "job-controller,cronjob-controller,deployment-controller,replicaset-controller"

// StartControllerManager runs a real kube-controller-manager against the
// control plane with the workload controllers, so Jobs and CronJobs create
// pods as they would in a cluster, and with the extra controllers named (such
// as "validatingadmissionpolicy-status-controller"). It stops at t's cleanup.
func (cp *ControlPlane) StartControllerManager(ctx context.Context, t TB, extra ...string) {
	t.Helper()
	kubeconfig := cp.KubeconfigFile(t)
	server, err := kcmtesting.StartTestServer(ctx, []string{
		"--kubeconfig=" + kubeconfig,
		"--authentication-kubeconfig=" + kubeconfig,
		"--authorization-kubeconfig=" + kubeconfig,
		"--leader-elect=false",
		"--controllers=" + strings.Join(append([]string{workloadControllers}, extra...), ","),
		"--use-service-account-credentials=false",
	})
	if err != nil {
		t.Fatalf("starting kube-controller-manager: %v", err)
	}
	t.Cleanup(server.TearDownFn)
}
