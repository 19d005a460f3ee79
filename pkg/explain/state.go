package explain

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/generated/clientset/versioned"
)

// State is a copy of the cluster objects that scheduling reads. An Engine
// runs on it in memory; nothing done to it reaches the cluster.
type State struct {
	Nodes      []*v1.Node
	Pods       []*v1.Pod
	Namespaces []*v1.Namespace
	// Other holds the rest of what kube-scheduler's in-tree plugins read:
	// volumes and storage classes, CSI objects, services and workload
	// controllers (default topology spreading), DRA objects.
	Other []runtime.Object

	Datasets      []*locusv1alpha1.Dataset
	ElasticQuotas []*schedv1alpha1.ElasticQuota
	PodGroups     []*schedv1alpha1.PodGroup
	// PriorityClasses resolve spec.priorityClassName of simulated pods, as
	// the Priority admission plugin does for created ones.
	PriorityClasses []*schedulingv1.PriorityClass

	// Warnings name the kinds that could not be read (not served by this
	// cluster, or not allowed to this user); the engine runs without them.
	Warnings []string
}

// Load reads the state from a cluster with list calls only. Pods that have
// finished (Succeeded, Failed) are left out, as kube-scheduler leaves them
// out. Custom resources are read as JSON.
func Load(ctx context.Context, cfg *rest.Config) (*State, error) {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	jsonCfg := rest.CopyConfig(cfg)
	jsonCfg.ContentType, jsonCfg.AcceptContentTypes = runtime.ContentTypeJSON, runtime.ContentTypeJSON
	locus, err := versioned.NewForConfig(jsonCfg)
	if err != nil {
		return nil, err
	}
	sched, err := schedclient.NewForConfig(jsonCfg)
	if err != nil {
		return nil, err
	}

	s := &State{}
	// Served from the API server's watch cache, as informers list.
	opts := metav1.ListOptions{ResourceVersion: "0"}
	all := metav1.NamespaceAll
	core, storage := client.CoreV1(), client.StorageV1()

	required := []struct {
		kind string
		list func() error
	}{
		{"nodes", func() error {
			l, err := core.Nodes().List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					s.Nodes = append(s.Nodes, &l.Items[i])
				}
			}
			return err
		}},
		{"pods", func() error {
			l, err := core.Pods(all).List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					if p := &l.Items[i]; p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed {
						s.Pods = append(s.Pods, p)
					}
				}
			}
			return err
		}},
		{"namespaces", func() error {
			l, err := core.Namespaces().List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					s.Namespaces = append(s.Namespaces, &l.Items[i])
				}
			}
			return err
		}},
	}
	for _, r := range required {
		if err := r.list(); err != nil {
			return nil, fmt.Errorf("listing %s: %w", r.kind, err)
		}
	}

	other := func(l runtime.Object, err error) error {
		if err != nil {
			return err
		}
		items, err := meta.ExtractList(l)
		if err != nil {
			return err
		}
		s.Other = append(s.Other, items...)
		return nil
	}
	optional := []struct {
		kind string
		list func() error
	}{
		{"persistentvolumeclaims", func() error { return other(core.PersistentVolumeClaims(all).List(ctx, opts)) }},
		{"persistentvolumes", func() error { return other(core.PersistentVolumes().List(ctx, opts)) }},
		{"services", func() error { return other(core.Services(all).List(ctx, opts)) }},
		{"replicationcontrollers", func() error { return other(core.ReplicationControllers(all).List(ctx, opts)) }},
		{"replicasets", func() error { return other(client.AppsV1().ReplicaSets(all).List(ctx, opts)) }},
		{"statefulsets", func() error { return other(client.AppsV1().StatefulSets(all).List(ctx, opts)) }},
		{"storageclasses", func() error { return other(storage.StorageClasses().List(ctx, opts)) }},
		{"csinodes", func() error { return other(storage.CSINodes().List(ctx, opts)) }},
		{"csidrivers", func() error { return other(storage.CSIDrivers().List(ctx, opts)) }},
		{"csistoragecapacities", func() error { return other(storage.CSIStorageCapacities(all).List(ctx, opts)) }},
		{"volumeattachments", func() error { return other(storage.VolumeAttachments().List(ctx, opts)) }},
		{"resourceclaims", func() error { return other(client.ResourceV1().ResourceClaims(all).List(ctx, opts)) }},
		{"resourceslices", func() error { return other(client.ResourceV1().ResourceSlices().List(ctx, opts)) }},
		{"deviceclasses", func() error { return other(client.ResourceV1().DeviceClasses().List(ctx, opts)) }},
		{"priorityclasses", func() error {
			l, err := client.SchedulingV1().PriorityClasses().List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					s.PriorityClasses = append(s.PriorityClasses, &l.Items[i])
				}
			}
			return err
		}},
		{"datasets.locus.dev", func() error {
			l, err := locus.LocusV1alpha1().Datasets(all).List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					s.Datasets = append(s.Datasets, &l.Items[i])
				}
			}
			return err
		}},
		{"elasticquotas.scheduling.x-k8s.io", func() error {
			l, err := sched.SchedulingV1alpha1().ElasticQuotas(all).List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					s.ElasticQuotas = append(s.ElasticQuotas, &l.Items[i])
				}
			}
			return err
		}},
		{"podgroups.scheduling.x-k8s.io", func() error {
			l, err := sched.SchedulingV1alpha1().PodGroups(all).List(ctx, opts)
			if err == nil {
				for i := range l.Items {
					s.PodGroups = append(s.PodGroups, &l.Items[i])
				}
			}
			return err
		}},
	}
	for _, r := range optional {
		if err := r.list(); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsForbidden(err) || apierrors.IsMethodNotSupported(err) || meta.IsNoMatchError(err) {
				s.Warnings = append(s.Warnings, fmt.Sprintf("cannot list %s (%v); evaluating without them", r.kind, err))
				continue
			}
			return nil, fmt.Errorf("listing %s: %w", r.kind, err)
		}
	}
	return s, nil
}

// Pod returns the pod of that name, or nil.
func (s *State) Pod(namespace, name string) *v1.Pod {
	for _, p := range s.Pods {
		if p.Namespace == namespace && p.Name == name {
			return p
		}
	}
	return nil
}

// Unbind replaces a pod by an unbound copy and returns the copy: the state
// as if the pod had not been scheduled yet, so that it counts against
// neither its node's resources nor its quota.
func (s *State) Unbind(pod *v1.Pod) *v1.Pod {
	c := pod.DeepCopy()
	c.Spec.NodeName = ""
	c.Status.NominatedNodeName = ""
	for i, p := range s.Pods {
		if p.UID == pod.UID && p.Namespace == pod.Namespace && p.Name == pod.Name {
			s.Pods[i] = c
			return c
		}
	}
	s.Pods = append(s.Pods, c)
	return c
}

// Apply adds an object to the state, or replaces the one of the same kind,
// namespace and name: manifests layered over the cluster. It takes Pods,
// Nodes, Namespaces, Datasets, ElasticQuotas and PodGroups.
func (s *State) Apply(obj runtime.Object) error {
	switch o := obj.(type) {
	case *v1.Pod:
		s.Pods = replace(s.Pods, o)
	case *v1.Node:
		s.Nodes = replace(s.Nodes, o)
	case *v1.Namespace:
		s.Namespaces = replace(s.Namespaces, o)
	case *locusv1alpha1.Dataset:
		s.Datasets = replace(s.Datasets, o)
	case *schedv1alpha1.ElasticQuota:
		// One quota per namespace: a quota in the file stands for the
		// namespace's quota, whatever its name.
		out := s.ElasticQuotas[:0:0]
		for _, q := range s.ElasticQuotas {
			if q.Namespace != o.Namespace {
				out = append(out, q)
			}
		}
		s.ElasticQuotas = append(out, o)
	case *schedv1alpha1.PodGroup:
		s.PodGroups = replace(s.PodGroups, o)
	default:
		return fmt.Errorf("%T is not supported here: use Pods, Nodes, Namespaces, Datasets, ElasticQuotas or PodGroups", obj)
	}
	return nil
}

func replace[T metav1.Object](list []T, obj T) []T {
	for i, o := range list {
		if o.GetNamespace() == obj.GetNamespace() && o.GetName() == obj.GetName() {
			list[i] = obj
			return list
		}
	}
	return append(list, obj)
}

// priorityOf resolves a pod's priority class as the Priority admission
// plugin would: the named class, else the global default, else zero.
func (s *State) priorityOf(pod *v1.Pod) (int32, error) {
	if pod.Spec.Priority != nil {
		return *pod.Spec.Priority, nil
	}
	name := pod.Spec.PriorityClassName
	for _, pc := range s.PriorityClasses {
		if (name != "" && pc.Name == name) || (name == "" && pc.GlobalDefault) {
			return pc.Value, nil
		}
	}
	if name == "" {
		return 0, nil
	}
	return 0, fmt.Errorf("pod %s/%s: no PriorityClass %q", pod.Namespace, pod.Name, name)
}
