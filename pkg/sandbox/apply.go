// Package sandbox loads a scenario (ordinary Kubernetes manifests: Nodes,
// Namespaces, Pods, ...) into a control plane, lets the schedulers place the
// pods, and reports where each pod landed and why.
package sandbox

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"locus.dev/locus/pkg/testenv"
)

// Decode splits multi-document YAML (or JSON) into objects.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document %d (%q): apiVersion and kind are required", i, u.GetName())
		}
		objs = append(objs, u)
	}
}

// Apply creates the objects in order. Nodes are created as ready simulated
// nodes (there is no kubelet: status is set and the not-ready taint lifted);
// everything else goes through the API as written.
func Apply(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, objs []*unstructured.Unstructured) error {
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(client.Discovery()))
	for _, u := range objs {
		gvk := u.GroupVersionKind()
		if gvk.Group == "" && gvk.Kind == "Node" {
			if err := applyNode(ctx, client, u); err != nil {
				return err
			}
			continue
		}
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			mapper.Reset()
			if mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version); err != nil {
				return fmt.Errorf("%s %q: %w", gvk.Kind, u.GetName(), err)
			}
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if u.GetNamespace() == "" {
				u.SetNamespace(metav1.NamespaceDefault)
			}
			ri = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
		}
		if _, err := ri.Create(ctx, u, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("creating %s %s: %w", gvk.Kind, objectName(u), err)
		}
	}
	return nil
}

func applyNode(ctx context.Context, client kubernetes.Interface, u *unstructured.Unstructured) error {
	var node v1.Node
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &node); err != nil {
		return fmt.Errorf("node %q: %w", u.GetName(), err)
	}
	spec := testenv.NodeSpec{Name: node.Name, Labels: node.Labels}
	res := node.Status.Allocatable
	if len(res) == 0 {
		res = node.Status.Capacity
	}
	if q, ok := res[v1.ResourceCPU]; ok {
		spec.CPU = q.String()
	}
	if q, ok := res[v1.ResourceMemory]; ok {
		spec.Memory = q.String()
	}
	if q, ok := res[v1.ResourcePods]; ok {
		spec.Pods = int(q.Value())
	}
	_, err := testenv.CreateNode(ctx, client, spec)
	return err
}

func objectName(u *unstructured.Unstructured) string {
	if u.GetNamespace() == "" {
		return u.GetName()
	}
	return u.GetNamespace() + "/" + u.GetName()
}
