package explain

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"

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
