package explain

import (
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	corev1defaults "k8s.io/kubernetes/pkg/apis/core/v1"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
)

var manifestScheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(manifestScheme))
	utilruntime.Must(locusv1alpha1.AddToScheme(manifestScheme))
	utilruntime.Must(schedv1alpha1.AddToScheme(manifestScheme))
}

// DecodeManifests reads YAML or JSON documents (and List objects) into
// typed objects. Unknown fields are errors, as with kubectl's validation.
func DecodeManifests(r io.Reader) ([]runtime.Object, error) {
	decoder := serializer.NewCodecFactory(manifestScheme, serializer.EnableStrict).UniversalDeserializer()
	docs := yaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []runtime.Object
	for i := 1; ; i++ {
		var u unstructured.Unstructured
		if err := docs.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		objs := []unstructured.Unstructured{u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i, err)
			}
			objs = list.Items
		}
		for _, o := range objs {
			obj, err := decodeObject(decoder, &o)
			if err != nil {
				return nil, fmt.Errorf("document %d (%s %s): %w", i, o.GetKind(), o.GetName(), err)
			}
			out = append(out, obj)
		}
	}
}

// DecodeObject decodes one manifest into its type, strictly (unknown fields
// are errors). A kind that the engine knows no type of is an error for
// which runtime.IsNotRegisteredError holds.
func DecodeObject(u *unstructured.Unstructured) (runtime.Object, error) {
	return decodeObject(serializer.NewCodecFactory(manifestScheme, serializer.EnableStrict).UniversalDeserializer(), u)
}

func decodeObject(decoder runtime.Decoder, u *unstructured.Unstructured) (runtime.Object, error) {
	data, err := u.MarshalJSON()
	if err != nil {
		return nil, err
	}
	obj, _, err := decoder.Decode(data, nil, nil)
	return obj, err
}

// PreparePod makes a pod from a manifest look as the API server would store
// it: the namespace (defaultNamespace when it names none), a name for
// generateName, a UID, API defaults (requests from limits, for one) and the
// priority of its PriorityClass. It is not bound, whatever the manifest says.
func (s *State) PreparePod(pod *v1.Pod, defaultNamespace string) error {
	if pod.Namespace == "" {
		pod.Namespace = defaultNamespace
	}
	if pod.Name == "" {
		if pod.GenerateName == "" {
			return fmt.Errorf("a pod in namespace %s has neither name nor generateName", pod.Namespace)
		}
		pod.Name = pod.GenerateName + utilrand.String(5)
	}
	pod.UID = uuid.NewUUID()
	pod.Spec.NodeName = ""
	pod.Status = v1.PodStatus{Phase: v1.PodPending}
	corev1defaults.SetObjectDefaults_Pod(pod)
	prio, err := s.priorityOf(pod)
	if err != nil {
		return err
	}
	pod.Spec.Priority = &prio
	return nil
}

// WorkloadPods returns the pods that a workload would create now: the
// replicas of a Deployment, ReplicaSet or StatefulSet, the parallel pods of a
// Job, the pods of a CronJob's next run. They are named after the workload
// (checkout-0, checkout-1, ...). ok is false for other kinds.
func WorkloadPods(obj runtime.Object) (pods []*v1.Pod, ok bool) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return templatePods(o.Namespace, o.Name, &o.Spec.Template, replicas(o.Spec.Replicas)), true
	case *appsv1.ReplicaSet:
		return templatePods(o.Namespace, o.Name, &o.Spec.Template, replicas(o.Spec.Replicas)), true
	case *appsv1.StatefulSet:
		return templatePods(o.Namespace, o.Name, &o.Spec.Template, replicas(o.Spec.Replicas)), true
	case *batchv1.Job:
		return templatePods(o.Namespace, o.Name, &o.Spec.Template, jobPods(&o.Spec)), true
	case *batchv1.CronJob:
		return templatePods(o.Namespace, o.Name, &o.Spec.JobTemplate.Spec.Template, jobPods(&o.Spec.JobTemplate.Spec)), true
	}
	return nil, false
}

func replicas(n *int32) int {
	if n == nil {
		return 1
	}
	return int(*n)
}

// jobPods is how many pods a Job runs at once.
func jobPods(spec *batchv1.JobSpec) int {
	n := replicas(spec.Parallelism)
	if spec.Completions != nil && int(*spec.Completions) < n {
		n = int(*spec.Completions)
	}
	return n
}

func templatePods(namespace, name string, t *v1.PodTemplateSpec, n int) []*v1.Pod {
	pods := make([]*v1.Pod, 0, n)
	for i := 0; i < n; i++ {
		p := &v1.Pod{ObjectMeta: *t.ObjectMeta.DeepCopy(), Spec: *t.Spec.DeepCopy()}
		p.Namespace, p.Name, p.GenerateName = namespace, fmt.Sprintf("%s-%d", name, i), ""
		pods = append(pods, p)
	}
	return pods
}
