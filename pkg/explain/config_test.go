package explain

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/manifests"
)

const otherConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
profiles:
- schedulerName: locus-scheduler
  plugins:
    multiPoint:
      enabled:
      - name: Compliance
`

func configMap(name, data string) *v1.ConfigMap {
	return &v1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ConfigNamespace, Name: name},
		Data:       map[string]string{ConfigMapKey: data},
	}
}

func TestClusterConfig(t *testing.T) {
	mounting := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ConfigNamespace, Name: DeploymentName},
		Spec: appsv1.DeploymentSpec{Template: v1.PodTemplateSpec{Spec: v1.PodSpec{Volumes: []v1.Volume{{
			Name: "config",
			VolumeSource: v1.VolumeSource{ConfigMap: &v1.ConfigMapVolumeSource{
				LocalObjectReference: v1.LocalObjectReference{Name: "locus-scheduler-config-7h2k9"},
			}},
		}}}}},
	}
	tests := []struct {
		name       string
		objs       []runtime.Object
		wantData   string
		wantSource string
	}{
		{
			name:       "the ConfigMap of the plain name",
			objs:       []runtime.Object{configMap(ConfigMapName, otherConfig)},
			wantData:   otherConfig,
			wantSource: "ConfigMap kube-system/locus-scheduler-config",
		},
		{
			name:       "the ConfigMap that the Deployment mounts (a kustomize hash in its name)",
			objs:       []runtime.Object{mounting, configMap("locus-scheduler-config-7h2k9", otherConfig), configMap("locus-scheduler-config-old", "stale")},
			wantData:   otherConfig,
			wantSource: "ConfigMap kube-system/locus-scheduler-config-7h2k9",
		},
		{
			name:       "neither: the built-in configuration",
			objs:       []runtime.Object{mounting},
			wantData:   string(manifests.SchedulerConfig),
			wantSource: "the configuration built into kubectl-locus",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			data, source, err := ClusterConfig(ctx, fake.NewClientset(tc.objs...))
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tc.wantData {
				t.Errorf("data: want %q, got %q", tc.wantData, data)
			}
			if !strings.HasPrefix(source, tc.wantSource) {
				t.Errorf("source: want %q, got %q", tc.wantSource, source)
			}
		})
	}
}

func TestDecodeConfig(t *testing.T) {
	if _, err := DecodeConfig([]byte(otherConfig)); err != nil {
		t.Errorf("a valid configuration: %v", err)
	}
	bad := otherConfig + `  pluginConfig:
  - name: DataLocality
    args: {zoneWeight: 2}
`
	if _, err := DecodeConfig([]byte(bad)); err == nil || !strings.Contains(err.Error(), "zoneWeight") {
		t.Errorf("invalid args must be an error that names the field, got %v", err)
	}
	cfg, err := DecodeConfig([]byte(otherConfig))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Profile(cfg, "default-scheduler"); err == nil {
		t.Errorf("a profile that the configuration lacks must be an error")
	}
}

// The in-memory API serves the plugins' reads and refuses their writes.
func TestMemAPI(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	eq := &schedv1alpha1.ElasticQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "quota"},
		Spec:       schedv1alpha1.ElasticQuotaSpec{Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")}},
	}
	api, err := newMemAPI(eq)
	if err != nil {
		t.Fatal(err)
	}
	client, err := schedclient.NewForConfig(api.config())
	if err != nil {
		t.Fatal(err)
	}
	quotas := client.SchedulingV1alpha1().ElasticQuotas("etl")
	got, err := quotas.Get(ctx, "quota", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Spec.Max.Cpu().Equal(resource.MustParse("2")) {
		t.Errorf("get: want max cpu 2, got %v", got.Spec.Max)
	}
	list, err := client.SchedulingV1alpha1().ElasticQuotas("").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Errorf("list: want 1 quota, got %v, %v", list, err)
	}
	if _, err := quotas.Get(ctx, "other", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get of a missing quota: want NotFound, got %v", err)
	}

	got.Status.Used = v1.ResourceList{v1.ResourceCPU: resource.MustParse("1")}
	if _, err := quotas.UpdateStatus(ctx, got, metav1.UpdateOptions{}); !apierrors.IsMethodNotSupported(err) {
		t.Errorf("a write: want MethodNotSupported, got %v", err)
	}
	if refused := api.Refused(); len(refused) != 1 || refused[0] != "PUT /apis/scheduling.x-k8s.io/v1alpha1/namespaces/etl/elasticquotas/quota/status" {
		t.Errorf("want the write recorded as refused, got %q", refused)
	}

	w, err := quotas.Watch(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if err := api.tracker.Add(&schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "second"}}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if q, ok := ev.Object.(*schedv1alpha1.ElasticQuota); !ok || q.Name != "second" {
			t.Errorf("watch: want the second quota, got %v %#v", ev.Type, ev.Object)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch: no event for the added quota")
	}
}
