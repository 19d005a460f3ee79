package explain

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	schedscheme "k8s.io/kubernetes/pkg/scheduler/apis/config/scheme"

	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
)

// Where the deployment keeps locus-scheduler's configuration (manifests/base).
const (
	ConfigNamespace  = "kube-system"
	ConfigMapName    = "locus-scheduler-config"
	ConfigMapKey     = "scheduler-config.yaml"
	DeploymentName   = "locus-scheduler"
	embeddedConfigAt = "the configuration built into kubectl-locus (manifests/base/scheduler-config.yaml)"
)

// DecodeConfig decodes a KubeSchedulerConfiguration as kube-scheduler does
// (with defaults) and validates locus's plugin args in it.
func DecodeConfig(data []byte) (*schedconfig.KubeSchedulerConfiguration, error) {
	obj, gvk, err := schedscheme.Codecs.UniversalDecoder().Decode(data, nil, nil)
	if err != nil {
		return nil, fmt.Errorf("decoding KubeSchedulerConfiguration: %w", err)
	}
	cfg, ok := obj.(*schedconfig.KubeSchedulerConfiguration)
	if !ok {
		return nil, fmt.Errorf("got %v, want a KubeSchedulerConfiguration", gvk)
	}
	if err := plugins.ValidateConfig(cfg); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Profile returns the profile of that scheduler name.
func Profile(cfg *schedconfig.KubeSchedulerConfiguration, schedulerName string) (*schedconfig.KubeSchedulerProfile, error) {
	for i := range cfg.Profiles {
		if cfg.Profiles[i].SchedulerName == schedulerName {
			return &cfg.Profiles[i], nil
		}
	}
	return nil, fmt.Errorf("the KubeSchedulerConfiguration has no profile %q", schedulerName)
}

// ClusterConfig reads locus-scheduler's KubeSchedulerConfiguration from the
// cluster: the ConfigMap kube-system/locus-scheduler-config (manifests/base
// generates it with that fixed name, which the locus-reader role grants),
// else the ConfigMap that the locus-scheduler Deployment mounts (an overlay
// may rename it, or let kustomize append a hash), else the configuration
// built into this binary. It returns the data and where it came from.
func ClusterConfig(ctx context.Context, client kubernetes.Interface) ([]byte, string, error) {
	names := []string{ConfigMapName}
	dep, err := client.AppsV1().Deployments(ConfigNamespace).Get(ctx, DeploymentName, metav1.GetOptions{})
	switch {
	case err == nil:
		names = append(names, mountedConfigMaps(dep)...)
	case apierrors.IsNotFound(err) || apierrors.IsForbidden(err):
	default:
		return nil, "", fmt.Errorf("reading Deployment %s/%s: %w", ConfigNamespace, DeploymentName, err)
	}
	for _, name := range names {
		cm, err := client.CoreV1().ConfigMaps(ConfigNamespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) {
			continue
		}
		if err != nil {
			return nil, "", fmt.Errorf("reading ConfigMap %s/%s: %w", ConfigNamespace, name, err)
		}
		if data, ok := cm.Data[ConfigMapKey]; ok {
			return []byte(data), fmt.Sprintf("ConfigMap %s/%s", ConfigNamespace, name), nil
		}
	}
	return manifests.SchedulerConfig, embeddedConfigAt, nil
}

func mountedConfigMaps(dep *appsv1.Deployment) []string {
	var names []string
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name != ConfigMapName {
			names = append(names, v.ConfigMap.Name)
		}
	}
	return names
}
