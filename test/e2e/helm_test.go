package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/klog/v2/ktesting"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"sigs.k8s.io/yaml"

	"locus.dev/locus/apis/config"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

const (
	chartDir = "../../charts/locus"
	repoRoot = "../.."
)

// helmBinary is bin/helm at the version the Makefile pins (HELM_VERSION),
// built from the Go module proxy as `make helm` does when it is missing or
// another version, so that a clean clone needs nothing installed by hand.
var helmBinary = sync.OnceValues(func() (string, error) {
	makefile, err := os.ReadFile(filepath.Join(repoRoot, "Makefile"))
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^HELM_VERSION\s*[:?]?=\s*(v\S+)\s*$`).FindSubmatch(makefile)
	if m == nil {
		return "", fmt.Errorf("no HELM_VERSION in the Makefile")
	}
	version := string(m[1])
	gobin, err := filepath.Abs(filepath.Join(repoRoot, "bin"))
	if err != nil {
		return "", err
	}
	helm := filepath.Join(gobin, "helm")
	// A go-installed helm reports only its minor version; its module version
	// is in its build info.
	built := func() bool {
		out, err := exec.Command("go", "version", "-m", helm).Output()
		return err == nil && regexp.MustCompile(`(?m)^\s*mod\s+helm\.sh/helm/v3\s+`+regexp.QuoteMeta(version)+`\s`).Match(out)
	}
	if built() {
		return helm, nil
	}
	install := exec.Command("go", "install", "helm.sh/helm/v3/cmd/helm@"+version)
	install.Env = append(os.Environ(), "GOBIN="+gobin)
	if out, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install helm.sh/helm/v3/cmd/helm@%s: %v\n%s", version, err, out)
	}
	if !built() {
		return "", fmt.Errorf("go install helm.sh/helm/v3/cmd/helm@%s did not give %s", version, helm)
	}
	return helm, nil
})

// runHelm runs the pinned Helm with its cache, config and data in a scratch
// directory, and returns its stdout; stderr goes into the error.
func runHelm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helm, err := helmBinary()
	if err != nil {
		t.Fatalf("getting Helm: %v", err)
	}
	home := t.TempDir()
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, stderr.String(), stdout.String())
	}
	return stdout.String(), nil
}

// kubeVersion is the Kubernetes release that locus is built on and the
// tests run (k8s.io/kubernetes in go.mod, as the Makefile's KUBE_VERSION),
// for Helm's .Capabilities.KubeVersion and the chart's kubeVersion
// constraint: a go-installed helm defaults to v1.20.0.
var kubeVersion = sync.OnceValue(func() string {
	out, err := exec.Command("go", "list", "-m", "-f", "{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}", "k8s.io/kubernetes").Output()
	if err != nil {
		panic(fmt.Sprintf("go list -m k8s.io/kubernetes: %v", err))
	}
	return strings.TrimSpace(string(out))
})

// helmTemplate renders charts/locus as release "locus" in namespace ns
// with helm template and the extra args (values files, --set, --include-crds).
func helmTemplate(t *testing.T, ns string, args ...string) string {
	t.Helper()
	out, err := runHelm(t, append([]string{"template", "locus", chartDir, "--namespace", ns, "--kube-version", kubeVersion()}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helmLint runs helm lint --strict on the chart with the extra args.
func helmLint(t *testing.T, args ...string) {
	t.Helper()
	out, err := runHelm(t, append([]string{"lint", "--strict", chartDir, "--kube-version", kubeVersion()}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
		t.Errorf("helm lint %v:\n%s", args, out)
	}
}

// decodeObjects splits a multi-document YAML stream into objects.
func decodeObjects(t *testing.T, data string) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for {
		var raw runtime.RawExtension
		if err := dec.Decode(&raw); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("decoding rendered objects: %v", err)
		}
		raw.Raw = bytes.TrimSpace(raw.Raw)
		if len(raw.Raw) == 0 || string(raw.Raw) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw.Raw); err != nil {
			t.Fatalf("decoding %s: %v", raw.Raw, err)
		}
		objs = append(objs, u)
	}
	return objs
}

// squashStrings collapses the runs of blanks in every string of v.
func squashStrings(v any) any {
	switch v := v.(type) {
	case string:
		return strings.Join(strings.Fields(v), " ")
	case map[string]any:
		for k, e := range v {
			v[k] = squashStrings(e)
		}
	case []any:
		for i, e := range v {
			v[i] = squashStrings(e)
		}
	}
	return v
}

func objectKey(u *unstructured.Unstructured) string {
	return u.GetKind() + " " + u.GetNamespace() + "/" + u.GetName()
}

func objectKeys(objs []*unstructured.Unstructured) []string {
	var ks []string
	for _, o := range objs {
		ks = append(ks, objectKey(o))
	}
	sort.Strings(ks)
	return ks
}

func findObject(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among %v", kind, name, objectKeys(objs))
	return nil
}

// typed converts an unstructured object into a typed one.
func typed[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	var obj T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &obj); err != nil {
		t.Fatalf("converting %s: %v", objectKey(u), err)
	}
	return &obj
}

// renderedConfig loads the KubeSchedulerConfiguration of the rendered
// locus-scheduler-config ConfigMap through kube-scheduler's own decoder
// (with defaults) and locus's validation of the plugins' args.
func renderedConfig(t *testing.T, objs []*unstructured.Unstructured) (*schedconfig.KubeSchedulerConfiguration, error) {
	t.Helper()
	cm := typed[v1.ConfigMap](t, findObject(t, objs, "ConfigMap", "locus-scheduler-config"))
	data, ok := cm.Data["scheduler-config.yaml"]
	if !ok {
		t.Fatalf("ConfigMap locus-scheduler-config has no scheduler-config.yaml: %v", cm.Data)
	}
	return testenv.LoadConfig([]byte(data))
}

// pluginArgs returns the args of a plugin in the locus-scheduler profile.
func pluginArgs[T any](t *testing.T, cfg *schedconfig.KubeSchedulerConfiguration, plugin string) *T {
	t.Helper()
	for _, p := range cfg.Profiles {
		if p.SchedulerName != plugins.SchedulerName {
			continue
		}
		for _, pc := range p.PluginConfig {
			if pc.Name == plugin {
				args, ok := any(pc.Args).(*T)
				if !ok {
					t.Fatalf("%s args decoded as %T", plugin, pc.Args)
				}
				return args
			}
		}
	}
	t.Fatalf("no pluginConfig for %s in profile %s", plugin, plugins.SchedulerName)
	return nil
}

func chartAppVersion(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		APIVersion string `json:"apiVersion"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.APIVersion != "v2" || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml: apiVersion %q, appVersion %q; want v2 and an appVersion", chart.APIVersion, chart.AppVersion)
	}
	return chart.AppVersion
}

// TestChartCRDsMatchManifests: the chart's crds/ are byte-for-byte the
// files of manifests/crds (generated by hack/update-codegen.sh and
// hack/update-crds.sh), so the two ways to install cannot drift apart.
func TestChartCRDsMatchManifests(t *testing.T) {
	list := func(dir string) []string {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") && e.Name() != "kustomization.yaml" {
				names = append(names, e.Name())
			}
		}
		return names
	}
	want, got := list("../../manifests/crds"), list(filepath.Join(chartDir, "crds"))
	if len(want) != len(locusCRDs) {
		t.Errorf("manifests/crds holds %v, want the %d CRDs %v", want, len(locusCRDs), locusCRDs)
	}
	if !slices.Equal(got, want) {
		t.Errorf("charts/locus/crds holds %v, manifests/crds %v: copy manifests/crds/*.yaml into charts/locus/crds", got, want)
	}
	for _, name := range want {
		a, err := os.ReadFile(filepath.Join("../../manifests/crds", name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chartDir, "crds", name))
		if err != nil {
			continue // reported above
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/locus/crds/%s differs from manifests/crds/%s: copy it again", name, name)
		}
	}
}

// chartOnlyLabels are the labels the chart puts on its objects beside
// those of manifests/base.
var chartOnlyLabels = []string{"helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/instance", "app.kubernetes.io/version", "app.kubernetes.io/part-of"}

// TestChartRendersBase: with default values, helm template (release
// namespace kube-system) renders the objects of kustomize build
// manifests/base, field for field, but for Helm's labels, the pod
// template's config checksum and the image tag (the chart's appVersion,
// the base's latest); the KubeSchedulerConfiguration loads, through
// kube-scheduler's decoder with defaults, into the same configuration as
// the base's. In another namespace every namespaced object, subject and the
// Lease follow the release's namespace.
func TestChartRendersBase(t *testing.T) {
	helmLint(t)
	chart := decodeObjects(t, helmTemplate(t, "kube-system"))
	out, err := kubectl(t, "", "kustomize", "../../manifests/base")
	if err != nil {
		t.Fatalf("kubectl kustomize manifests/base: %v\n%s", err, out)
	}
	base := decodeObjects(t, out)
	for _, o := range base {
		// kustomize's namespace transformer does not know that
		// ValidatingAdmissionPolicies are cluster-scoped; kubectl and the API
		// server ignore the namespace it gives them.
		if strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") {
			o.SetNamespace("")
		}
	}
	// kustomize's YAML parser keeps an extra line break before the
	// more-indented lines of the policy's folded (>-) CEL expressions; CEL
	// reads any run of blanks alike.
	for _, objs := range [][]*unstructured.Unstructured{chart, base} {
		for _, o := range objs {
			if o.GetKind() == "ValidatingAdmissionPolicy" {
				o.Object["spec"] = squashStrings(o.Object["spec"])
			}
		}
	}
	if got, want := objectKeys(chart), objectKeys(base); !slices.Equal(got, want) {
		t.Fatalf("the chart renders\n  %v\nmanifests/base\n  %v", got, want)
	}
	if len(base) < 10 {
		t.Fatalf("kustomize build manifests/base gave only %v", objectKeys(base))
	}

	// The configuration, as kube-scheduler reads it.
	chartCfg, err := renderedConfig(t, chart)
	if err != nil {
		t.Fatalf("the chart's KubeSchedulerConfiguration: %v", err)
	}
	baseCfg, err := renderedConfig(t, base)
	if err != nil {
		t.Fatalf("the base's KubeSchedulerConfiguration: %v", err)
	}
	shipped, err := testenv.LoadConfig(manifests.SchedulerConfig)
	if err != nil {
		t.Fatal(err)
	}
	if !apiequality.Semantic.DeepEqual(baseCfg, shipped) {
		t.Error("the base's ConfigMap does not hold manifests/base/scheduler-config.yaml")
	}
	if diff := cmp.Diff(baseCfg, chartCfg); diff != "" {
		t.Errorf("the chart's KubeSchedulerConfiguration differs from the base's (-base +chart):\n%s", diff)
	}

	image := "locus-scheduler:" + chartAppVersion(t)
	for _, side := range []struct {
		objs    []*unstructured.Unstructured
		isChart bool
	}{{chart, true}, {base, false}} {
		for _, o := range side.objs {
			if o.GetKind() == "ConfigMap" {
				unstructured.RemoveNestedField(o.Object, "data", "scheduler-config.yaml") // compared above
			}
			if o.GetKind() == "Deployment" {
				dep := typed[appsv1.Deployment](t, o)
				if side.isChart {
					if got := dep.Spec.Template.Spec.Containers[0].Image; got != image {
						t.Errorf("the chart's image %q, want %q (the chart's appVersion)", got, image)
					}
					if dep.Spec.Template.Annotations["checksum/config"] == "" {
						t.Error("the chart's pod template has no checksum/config annotation")
					}
				}
				containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
				containers[0].(map[string]any)["image"] = "<image>"
				if err := unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers"); err != nil {
					t.Fatal(err)
				}
				unstructured.RemoveNestedField(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			}
			labels := o.GetLabels()
			for _, l := range chartOnlyLabels {
				if side.isChart && labels[l] == "" {
					t.Errorf("%s: no label %s", objectKey(o), l)
				}
				delete(labels, l)
			}
			if len(labels) == 0 {
				labels = nil
			}
			o.SetLabels(labels)
		}
	}
	for i := range chart {
		b := findObject(t, base, chart[i].GetKind(), chart[i].GetName())
		if diff := cmp.Diff(b.Object, chart[i].Object); diff != "" {
			t.Errorf("%s differs from manifests/base (-base +chart):\n%s", objectKey(b), diff)
		}
	}

	// Another namespace: nothing stays behind in kube-system but the binding
	// to kube-system's extension-apiserver-authentication-reader Role.
	const ns = "locus-system"
	objs := decodeObjects(t, helmTemplate(t, ns))
	for _, o := range objs {
		switch {
		case o.GetKind() == "RoleBinding" && o.GetName() == "locus-scheduler-authentication-reader":
			if o.GetNamespace() != "kube-system" {
				t.Errorf("%s: want it in kube-system, beside the Role extension-apiserver-authentication-reader", objectKey(o))
			}
		case strings.HasPrefix(o.GetKind(), "Cluster") || strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy"):
			if o.GetNamespace() != "" {
				t.Errorf("%s: a cluster-scoped object with a namespace", objectKey(o))
			}
		case o.GetNamespace() != ns:
			t.Errorf("%s: want namespace %s", objectKey(o), ns)
		}
		subjects, _, _ := unstructured.NestedSlice(o.Object, "subjects")
		for _, s := range subjects {
			if got := s.(map[string]any)["namespace"]; got != ns {
				t.Errorf("%s: subject %v, want the ServiceAccount of %s", objectKey(o), s, ns)
			}
		}
	}
	cfg, err := renderedConfig(t, objs)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.LeaderElection.ResourceNamespace; got != ns {
		t.Errorf("leaderElection.resourceNamespace %q, want %q", got, ns)
	}
}

// customValues change what users change: replicas, image, leader election,
// every plugin's args, logging, resources, placement, the PDB; and turn the
// admission guard off. Maps merge with the chart's defaults: residency keeps
// eu, drops us (null) and adds apac.
const customValues = `
replicaCount: 3
image:
  repository: registry.example.com/platform/locus-scheduler
  tag: v0.2.0-rc.1
  pullPolicy: Always
leaderElection:
  leaseDuration: 30s
  renewDeadline: 20s
  retryPeriod: 4s
pluginArgs:
  compliance:
    certificationLabelPrefix: certified.example.com/
    residencyLabel: example.com/region
    preserveCertifiedCapacity: false
    residency:
      us: null
      apac: [ap-southeast-1]
  dataLocality:
    zoneWeight: 0.8
    regionWeight: 0.3
    defaultLocalityWait: 30s
  batchQuota:
    defaultScheduleTimeoutSeconds: 120
    statusUpdateInterval: 5s
logging:
  verbosity: 4
resources:
  requests: {cpu: 100m, memory: 128Mi}
  limits: {cpu: "1", memory: 512Mi}
nodeSelector:
  example.com/pool: system
tolerations:
- {key: example.com/system, operator: Exists, effect: NoSchedule}
podDisruptionBudget:
  minAvailable: 2
admissionGuard:
  enabled: false
`

func writeValues(t *testing.T, values string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// checkCustomRendering checks the objects rendered with customValues in
// namespace ns.
func checkCustomRendering(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	for _, o := range objs {
		if strings.HasPrefix(o.GetKind(), "ValidatingAdmissionPolicy") {
			t.Errorf("admissionGuard.enabled=false, but the chart renders %s", objectKey(o))
		}
	}
	dep := typed[appsv1.Deployment](t, findObject(t, objs, "Deployment", "locus-scheduler"))
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 3 {
		t.Errorf("replicas %v, want 3", dep.Spec.Replicas)
	}
	pod := dep.Spec.Template.Spec
	ctr := pod.Containers[0]
	if ctr.Image != "registry.example.com/platform/locus-scheduler:v0.2.0-rc.1" || ctr.ImagePullPolicy != v1.PullAlways {
		t.Errorf("image %s (%s), want registry.example.com/platform/locus-scheduler:v0.2.0-rc.1 (Always)", ctr.Image, ctr.ImagePullPolicy)
	}
	if !slices.Contains(ctr.Args, "--v=4") || slices.Contains(ctr.Args, "--v=2") {
		t.Errorf("args %v, want --v=4 alone", ctr.Args)
	}
	if got := ctr.Resources.Limits.Memory().String(); got != "512Mi" {
		t.Errorf("memory limit %s, want 512Mi", got)
	}
	if pod.NodeSelector["example.com/pool"] != "system" || len(pod.Tolerations) != 1 || pod.Tolerations[0].Key != "example.com/system" {
		t.Errorf("nodeSelector %v, tolerations %v: want the values'", pod.NodeSelector, pod.Tolerations)
	}
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot {
		t.Errorf("pod securityContext %+v: want the default runAsNonRoot", pod.SecurityContext)
	}
	pdb := findObject(t, objs, "PodDisruptionBudget", "locus-scheduler")
	if got, _, _ := unstructured.NestedInt64(pdb.Object, "spec", "minAvailable"); got != 2 {
		t.Errorf("PDB minAvailable %d, want 2", got)
	}

	cfg, err := renderedConfig(t, objs)
	if err != nil {
		t.Fatalf("the KubeSchedulerConfiguration does not load: %v", err)
	}
	le := cfg.LeaderElection
	if !le.LeaderElect || le.ResourceName != "locus-scheduler" || le.ResourceNamespace != ns ||
		le.LeaseDuration.Duration != 30*time.Second || le.RenewDeadline.Duration != 20*time.Second || le.RetryPeriod.Duration != 4*time.Second {
		t.Errorf("leaderElection %+v: want locus-scheduler in %s, 30s/20s/4s", le, ns)
	}
	wantCompliance := &config.ComplianceArgs{
		CertificationLabelPrefix: "certified.example.com/",
		ResidencyLabel:           "example.com/region",
		Residency:                map[string][]string{"eu": {"eu-west-1", "eu-central-1"}, "apac": {"ap-southeast-1"}},
	}
	wantDataLocality := &config.DataLocalityArgs{ZoneWeight: 0.8, RegionWeight: 0.3, DefaultLocalityWait: metav1.Duration{Duration: 30 * time.Second}}
	wantBatchQuota := &config.BatchQuotaArgs{DefaultScheduleTimeoutSeconds: 120, StatusUpdateInterval: metav1.Duration{Duration: 5 * time.Second}}
	for _, c := range []struct {
		plugin    string
		got, want any
	}{
		{"Compliance", pluginArgs[config.ComplianceArgs](t, cfg, "Compliance"), wantCompliance},
		{"DataLocality", pluginArgs[config.DataLocalityArgs](t, cfg, "DataLocality"), wantDataLocality},
		{"BatchQuota", pluginArgs[config.BatchQuotaArgs](t, cfg, "BatchQuota"), wantBatchQuota},
	} {
		if diff := cmp.Diff(c.want, c.got, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".TypeMeta" }, cmp.Ignore())); diff != "" {
			t.Errorf("%s args (-want +got):\n%s", c.plugin, diff)
		}
	}
}

// TestChartValues renders the chart with values that change replicas, the
// image, leader election, every plugin's args and more, and with the
// admission guard off: helm lint passes, the objects carry the values, and
// the KubeSchedulerConfiguration loads through kube-scheduler's decoder and
// locus's validation with the changed args. Values the schema or the
// templates refuse fail helm template; args the schema cannot judge (a
// region weight above the zone weight) fail the config loader.
func TestChartValues(t *testing.T) {
	values := writeValues(t, customValues)
	helmLint(t, "-f", values)
	checkCustomRendering(t, decodeObjects(t, helmTemplate(t, "locus-system", "-f", values)), "locus-system")

	t.Run("leader election off with one replica", func(t *testing.T) {
		objs := decodeObjects(t, helmTemplate(t, "kube-system", "--set", "leaderElection.enabled=false,replicaCount=1,podDisruptionBudget.enabled=false"))
		cfg, err := renderedConfig(t, objs)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.LeaderElection.LeaderElect {
			t.Error("leaderElection.leaderElect is true")
		}
		for _, o := range objs {
			if o.GetKind() == "PodDisruptionBudget" {
				t.Error("podDisruptionBudget.enabled=false, but the chart renders a PDB")
			}
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			flag, value, want string
		}{
			{"--set-json", "pluginArgs.dataLocality.zoneWeight=1.5", "/pluginArgs/dataLocality/zoneWeight': maximum"},
			{"--set", "pluginArgs.compliance.residencyLable=example.com/region", "additional properties 'residencyLable' not allowed"},
			{"--set", "pluginArgs.batchQuota.statusUpdateInterval=soon", "/pluginArgs/batchQuota/statusUpdateInterval"},
			{"--set-json", "pluginArgs.batchQuota.defaultScheduleTimeoutSeconds=0", "/pluginArgs/batchQuota/defaultScheduleTimeoutSeconds': minimum"},
			{"--set", "admissionGuard.validationActions={Block}", "/admissionGuard/validationActions/0"},
			{"--set", "replicaTotal=2", "additional properties 'replicaTotal' not allowed"},
			{"--set", "leaderElection.enabled=false", "replicaCount > 1 needs leaderElection.enabled"},
		} {
			out, err := runHelm(t, "template", "locus", chartDir, "--namespace", "kube-system", "--kube-version", kubeVersion(), tc.flag, tc.value)
			if err == nil {
				t.Errorf("%s %s: rendered, want refused\n%.300s", tc.flag, tc.value, out)
			} else if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %s: the error does not say %q:\n%v", tc.flag, tc.value, tc.want, err)
			}
		}
	})

	t.Run("Kubernetes older than the scheduler refused", func(t *testing.T) {
		// kube-scheduler v1.34 must not be newer than the API server.
		if out, err := runHelm(t, "template", "locus", chartDir, "--kube-version", "v1.33.5"); err == nil || !strings.Contains(err.Error(), "kubeVersion") {
			t.Errorf("Kubernetes v1.33.5: want refused for the chart's kubeVersion, got %v\n%.300s", err, out)
		}
	})

	t.Run("args refused by the config loader", func(t *testing.T) {
		objs := decodeObjects(t, helmTemplate(t, "kube-system", "--set-json", "pluginArgs.dataLocality.regionWeight=0.9"))
		if _, err := renderedConfig(t, objs); err == nil || !strings.Contains(err.Error(), "regionWeight") {
			t.Errorf("regionWeight 0.9 above zoneWeight 0.5: want an error naming regionWeight, got %v", err)
		}
	})
}

// waitForCRDs waits until locus's CRDs are established.
func waitForCRDs(t *testing.T, kubeconfig string) {
	t.Helper()
	for _, crd := range locusCRDs {
		if out, err := kubectl(t, kubeconfig, "wait", "--for=condition=Established", "--timeout=30s", "crd/"+crd); err != nil {
			t.Fatalf("CRD %s: %v\n%s", crd, err, out)
		}
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestChartInstall installs the chart as kubectl apply -f of helm
// template's output (--include-crds), on an API server that enforces RBAC.
// (helm install itself would refuse the test server: an unstamped
// kube-apiserver reports version v0.0.0, below the chart's kubeVersion.)
// First with default values in kube-system, with the same checks as the
// kustomize base: restricted Pod Security, least privilege, the admission
// guard enforced and type-checked; removing the release keeps the CRDs.
// Then with customValues in locus-system: the same checks, no guard, and
// the binary run as the Deployment's container with the ConfigMap's config
// and the ServiceAccount's token for everything (API, delegated
// authentication and authorization of its secure port, as in-cluster
// config gives it): it takes its Lease in locus-system, places a PCI pod on
// the node certified under the changed label prefix, serves /readyz,
// refuses anonymous /metrics, and hits no RBAC denial.
func TestChartInstall(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cp := testenv.StartControlPlane(t, testenv.Options{APIServerFlags: []string{"--authorization-mode=RBAC"}})
	c := cp.Client
	admin := cp.KubeconfigFile(t)
	cp.StartControllerManager(ctx, t, "validatingadmissionpolicy-status-controller")
	for _, ns := range []string{"kube-system", "locus-system"} {
		if err := testenv.CreateNamespace(ctx, c, ns, nil); err != nil {
			t.Fatal(err)
		}
	}

	// Default values, in kube-system, with the CRDs.
	defaults := helmTemplate(t, "kube-system", "--include-crds")
	if out, err := kubectlStdin(t, admin, defaults, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply -f (helm template, defaults): %v\n%s", err, out)
	}
	waitForCRDs(t, admin)
	dep, err := c.AppsV1().Deployments("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if *dep.Spec.Replicas != 2 {
		t.Errorf("replicas %d, want 2", *dep.Spec.Replicas)
	}
	checkPodTemplate(ctx, t, cp, admin, dep)
	checkLeastPrivilege(t, admin, "kube-system")
	createNamespace(ctx, t, cp, "payments", map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}, nil)
	waitForGuard(ctx, t, cp, "payments")
	if _, err := c.CoreV1().Pods("payments").Create(ctx, testenv.NewPod(testenv.PodSpec{Namespace: "payments", Name: "card", SchedulerName: plugins.SchedulerName}),
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a locus-scheduler pod in a guarded namespace: want admitted, got %v", err)
	}

	// Removing the release (its objects without the CRDs, as helm uninstall
	// does) keeps the CRDs, and with them every team's quotas, PodGroups and
	// Datasets.
	if out, err := kubectlStdin(t, admin, helmTemplate(t, "kube-system"), "delete", "--wait=true", "-f", "-"); err != nil {
		t.Fatalf("kubectl delete -f (helm template, defaults): %v\n%s", err, out)
	}
	if _, err := c.AppsV1().Deployments("kube-system").Get(ctx, "locus-scheduler", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("Deployment kube-system/locus-scheduler after removing the release: want NotFound, got %v", err)
	}
	for _, crd := range locusCRDs {
		if out, err := kubectl(t, admin, "get", "crd/"+crd); err != nil {
			t.Errorf("CRD %s gone after removing the release: %v\n%s", crd, err, out)
		}
	}

	// customValues, in locus-system.
	const ns = "locus-system"
	custom := helmTemplate(t, ns, "--include-crds", "-f", writeValues(t, customValues))
	checkCustomRendering(t, decodeObjects(t, custom), ns)
	if out, err := kubectlStdin(t, admin, custom, "apply", "--server-side", "-f", "-"); err != nil {
		t.Fatalf("kubectl apply -f (helm template, custom values): %v\n%s", err, out)
	}
	if dep, err = c.AppsV1().Deployments(ns).Get(ctx, "locus-scheduler", metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	checkPodTemplate(ctx, t, cp, admin, dep)
	checkLeastPrivilege(t, admin, ns)
	if _, err := c.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(ctx, guardPolicy, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("ValidatingAdmissionPolicy %s with the guard disabled: want NotFound, got %v", guardPolicy, err)
	}

	for _, n := range []testenv.NodeSpec{
		{Name: "plain", Labels: map[string]string{v1.LabelTopologyZone: "a"}},
		{Name: "default-certified", Labels: map[string]string{v1.LabelTopologyZone: "a", "node-restriction.kubernetes.io/compliance.pci-dss": "true"}},
		{Name: "certified", Labels: map[string]string{v1.LabelTopologyZone: "b", "certified.example.com/pci-dss": "true"}},
	} {
		if _, err := testenv.CreateNode(ctx, c, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := testenv.CreateNamespace(ctx, c, "team", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.CreatePod(ctx, c, testenv.PodSpec{Namespace: "team", Name: "payment", SchedulerName: plugins.SchedulerName, CPU: "100m",
		Annotations: map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}}); err != nil {
		t.Fatal(err)
	}
	// In a pod, in-cluster config (the ServiceAccount's token) serves the
	// delegated authentication and authorization of the secure port too.
	sa := serviceAccountKubeconfig(ctx, t, cp, ns)
	port := freePort(t)
	stderr := startAsDeployment(ctx, t, cp, ns, "--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(port),
		"--authentication-kubeconfig="+sa, "--authorization-kubeconfig="+sa)
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		lease, err := c.CoordinationV1().Leases(ns).Get(ctx, "locus-scheduler", metav1.GetOptions{})
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity != "", nil
	}); err != nil {
		t.Fatalf("no lease %s/locus-scheduler held: %v\nscheduler stderr:\n%s", ns, err, tail(stderr.String()))
	}
	node, err := testenv.WaitForPodBound(ctx, c, "team", "payment", 60*time.Second)
	if err != nil {
		t.Fatalf("%v\nscheduler stderr:\n%s", err, tail(stderr.String()))
	}
	if node != "certified" {
		t.Errorf("the PCI pod bound to %s, want certified (label certified.example.com/pci-dss)", node)
	}

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // the scheduler's self-signed certificate
	get := func(path string) (int, string) {
		resp, err := client.Get(fmt.Sprintf("https://127.0.0.1:%d%s", port, path))
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	var code int
	var body string
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		code, body = get("/readyz")
		return code == http.StatusOK, nil
	}); err != nil {
		t.Errorf("/readyz: %d %s", code, body)
	}
	if strings.Contains(stderr.String(), "forbidden") {
		t.Errorf("the scheduler hit RBAC denials:\n%s", grepLines(stderr.String(), "forbidden"))
	}
	if code, body := get("/metrics"); code != http.StatusForbidden && code != http.StatusUnauthorized {
		t.Errorf("anonymous /metrics: %d %.200s, want 401 or 403", code, body)
	}
}
