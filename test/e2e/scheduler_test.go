// Package e2e runs the built binaries as processes against a real
// kube-apiserver, beside a real kube-scheduler.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/klog/v2/ktesting"
	"sigs.k8s.io/yaml"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

var binDir string

// e2eVersion is the locus version the scheduler binary is built with.
const e2eVersion = "v9.9.9-e2e"

// TestVersion: --version names the locus release and the Kubernetes
// release the binary is built on (go.mod pins k8s.io/kubernetes v1.34.4).
func TestVersion(t *testing.T) {
	out, err := exec.Command(filepath.Join(binDir, "locus-scheduler"), "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("--version: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "locus-scheduler "+e2eVersion+" (Kubernetes v1.34.4)"; got != want {
		t.Errorf("--version printed %q, want %q", got, want)
	}
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "locus-e2e-")
	if err != nil {
		panic(err)
	}
	binDir = dir
	// The scheduler as users run it, and the real kubectl (built from the
	// pinned k8s.io/kubernetes, a go tool of this module).
	// The scheduler is stamped with a version, as make build does.
	for _, pkg := range []string{"../../cmd/locus-scheduler", "k8s.io/kubernetes/cmd/kubectl"} {
		build := exec.Command("go", "build", "-ldflags", "-X locus.dev/locus/pkg/version.version="+e2eVersion, "-o", binDir+"/", pkg)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			panic("building " + pkg + ": " + err.Error())
		}
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// configWithKubeconfig returns the shipped scheduler config with its client
// connection pointed at the test server.
func configWithKubeconfig(t *testing.T, data []byte, kubeconfig string) string {
	t.Helper()
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(file, out, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestBinarySchedulesBesideKubeScheduler starts bin/locus-scheduler with the
// shipped configuration and JSON logs, beside an in-process kube-scheduler:
// it takes its own lease, places a PCI pod on the certified node, logs JSON,
// and exits cleanly on SIGTERM.
func TestBinarySchedulesBesideKubeScheduler(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{})
	c := cp.Client
	if err := testenv.CreateNamespace(ctx, c, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	if err := testenv.InstallCRDs(ctx, cp.Config); err != nil {
		t.Fatal(err)
	}
	// The cluster's own scheduler, with kube-scheduler's default profile and lease.
	defaultCfg, err := testenv.LoadConfig([]byte(testenv.DefaultSchedulerConfig))
	if err != nil {
		t.Fatal(err)
	}
	dyn := mustDynamic(t, cp)
	def, err := testenv.StartScheduler(ctx, defaultCfg, c, dyn)
	if err != nil {
		t.Fatal(err)
	}
	defer def.Stop()

	for _, n := range []testenv.NodeSpec{
		{Name: "plain-1"}, {Name: "plain-2"},
		{Name: "pci", Labels: map[string]string{"node-restriction.kubernetes.io/compliance.pci-dss": "true"}},
	} {
		if _, err := testenv.CreateNode(ctx, c, n); err != nil {
			t.Fatal(err)
		}
	}

	config := configWithKubeconfig(t, manifests.SchedulerConfig, cp.KubeconfigFile(t))
	var stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(binDir, "locus-scheduler"), "--config", config,
		"--logging-format=json", "--secure-port=0", "-v=2")
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	if err := testenv.CreateNamespace(ctx, c, "payments", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "payments", Name: "checkout",
		SchedulerName: plugins.SchedulerName, Annotations: map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "payments", Name: "ordinary"}); err != nil {
		t.Fatal(err)
	}
	node, err := testenv.WaitForPodBound(ctx, c, "payments", "checkout", 60*time.Second)
	if err != nil {
		t.Fatalf("%v\nscheduler stderr:\n%s", err, tail(stderr.String()))
	}
	if node != "pci" {
		t.Errorf("checkout bound to %s, want pci", node)
	}
	if _, err := testenv.WaitForPodBound(ctx, c, "payments", "ordinary", 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.WaitForPodEvent(ctx, c, "payments", "ordinary", "Scheduled", "", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	evs, err := testenv.PodEvents(ctx, c, "payments", "ordinary", "Scheduled")
	if err != nil || len(evs) != 1 || evs[0].ReportingController != "default-scheduler" {
		t.Errorf("ordinary pod: want one Scheduled event from default-scheduler, got %+v (%v)", evs, err)
	}

	lease, err := c.CoordinationV1().Leases("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("locus-scheduler's lease: %v", err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("lease locus-scheduler has no holder")
	}

	// SIGTERM: the upstream command's signal handling stops it cleanly.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		var exitErr *exec.ExitError
		if err != nil && !errors.As(err, &exitErr) {
			t.Errorf("wait: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("locus-scheduler did not exit within 30s of SIGTERM")
	}

	// Every log line is JSON.
	sc := bufio.NewScanner(strings.NewReader(stderr.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	lines := 0
	for sc.Scan() {
		line := sc.Bytes()
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines++
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("log line is not JSON: %s", line)
			break
		}
	}
	if lines == 0 {
		t.Error("locus-scheduler logged nothing at -v=2")
	}
}

// TestBinaryRefusesInvalidArgs: bad plugin args exit non-zero before the
// scheduler takes its lease, with a message that names the field.
func TestBinaryRefusesInvalidArgs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	cp := testenv.StartControlPlane(t, testenv.Options{})
	if err := testenv.CreateNamespace(ctx, cp.Client, "kube-system", nil); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(manifests.SchedulerConfig, []byte("eu: [eu-west-1, eu-central-1]"), []byte("Europe: [eu-west-1]"), 1)
	if bytes.Equal(bad, manifests.SchedulerConfig) {
		t.Fatal("the shipped config no longer has the residency line this test edits")
	}
	config := configWithKubeconfig(t, bad, cp.KubeconfigFile(t))
	out, err := exec.Command(filepath.Join(binDir, "locus-scheduler"), "--config", config, "--secure-port=0").CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() == 0 {
		t.Fatalf("want a non-zero exit, got %v; output:\n%s", err, out)
	}
	if want := `profiles[0].pluginConfig[0].args.residency[Europe]: Invalid value`; !strings.Contains(string(out), want) {
		t.Errorf("output does not name the field %q:\n%s", want, out)
	}
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Second, true, func(ctx context.Context) (bool, error) {
		_, err := cp.Client.CoordinationV1().Leases("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{})
		return err == nil, nil
	})
	if err == nil {
		t.Error("a scheduler with invalid args took the locus-scheduler lease")
	}
}

func tail(s string) string {
	if len(s) > 4000 {
		return s[len(s)-4000:]
	}
	return s
}
