package testenv

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	podutil "k8s.io/kubernetes/pkg/api/v1/pod"
)

// NodeSpec describes a simulated node.
type NodeSpec struct {
	Name   string
	Labels map[string]string
	// CPU and Memory are the node's allocatable resources ("8", "32Gi").
	CPU, Memory string
	// Pods is the allocatable pod count; 0 means 110.
	Pods int
}

// CreateNode creates a Ready node with the given capacity. There is no
// kubelet, so it also sets the node's status and lifts the not-ready taint
// that the TaintNodesByCondition admission plugin puts on new nodes.
func CreateNode(ctx context.Context, client kubernetes.Interface, spec NodeSpec) (*v1.Node, error) {
	pods := spec.Pods
	if pods == 0 {
		pods = 110
	}
	alloc := v1.ResourceList{
		v1.ResourceCPU:    resource.MustParse(orDefault(spec.CPU, "8")),
		v1.ResourceMemory: resource.MustParse(orDefault(spec.Memory, "32Gi")),
		v1.ResourcePods:   *resource.NewQuantity(int64(pods), resource.DecimalSI),
	}
	labels := map[string]string{v1.LabelHostname: spec.Name, v1.LabelOSStable: "linux"}
	for k, v := range spec.Labels {
		labels[k] = v
	}
	node, err := client.CoreV1().Nodes().Create(ctx, &v1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating node %s: %w", spec.Name, err)
	}
	node.Status = v1.NodeStatus{
		Capacity:    alloc,
		Allocatable: alloc,
		Phase:       v1.NodeRunning,
		Conditions: []v1.NodeCondition{{
			Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady",
			LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(),
		}},
	}
	if node, err = client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("setting status of node %s: %w", spec.Name, err)
	}
	node.Spec.Taints = nil
	if node, err = client.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{}); err != nil {
		return nil, fmt.Errorf("lifting taints of node %s: %w", spec.Name, err)
	}
	return node, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// SetNodeLabel sets (or, with an empty value and remove, deletes) one label on a node.
func SetNodeLabel(ctx context.Context, client kubernetes.Interface, node, key, value string, remove bool) error {
	n, err := client.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if remove {
		delete(n.Labels, key)
	} else {
		n.Labels[key] = value
	}
	_, err = client.CoreV1().Nodes().Update(ctx, n, metav1.UpdateOptions{})
	return err
}

// CreateNamespace creates a namespace with annotations.
func CreateNamespace(ctx context.Context, client kubernetes.Interface, name string, annotations map[string]string) error {
	_, err := client.CoreV1().Namespaces().Create(ctx, &v1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: annotations},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// PodSpec describes a pod to create.
type PodSpec struct {
	Namespace, Name string
	SchedulerName   string
	Annotations     map[string]string
	Labels          map[string]string
	CPU, Memory     string
}

// NewPod builds a one-container pod.
func NewPod(spec PodSpec) *v1.Pod {
	req := v1.ResourceList{}
	if spec.CPU != "" {
		req[v1.ResourceCPU] = resource.MustParse(spec.CPU)
	}
	if spec.Memory != "" {
		req[v1.ResourceMemory] = resource.MustParse(spec.Memory)
	}
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: spec.Namespace, Name: spec.Name,
			Annotations: spec.Annotations, Labels: spec.Labels,
		},
		Spec: v1.PodSpec{
			SchedulerName: spec.SchedulerName,
			Containers: []v1.Container{{
				Name: "main", Image: "registry.k8s.io/pause:3.10",
				Resources: v1.ResourceRequirements{Requests: req},
			}},
		},
	}
}

// CreatePod creates a pod built by NewPod.
func CreatePod(ctx context.Context, client kubernetes.Interface, spec PodSpec) (*v1.Pod, error) {
	p, err := client.CoreV1().Pods(spec.Namespace).Create(ctx, NewPod(spec), metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("creating pod %s/%s: %w", spec.Namespace, spec.Name, err)
	}
	return p, nil
}

// WaitForPodBound waits until the pod is bound and returns its node.
func WaitForPodBound(ctx context.Context, client kubernetes.Interface, ns, name string, timeout time.Duration) (string, error) {
	var node string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = p.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("pod %s/%s not bound within %v: %w", ns, name, timeout, err)
	}
	return node, nil
}

// WaitForPodUnschedulable waits until the scheduler has marked the pod
// unschedulable and returns the condition's message.
func WaitForPodUnschedulable(ctx context.Context, client kubernetes.Interface, ns, name string, timeout time.Duration) (string, error) {
	var msg string
	err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		p, err := client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if p.Spec.NodeName != "" {
			return false, fmt.Errorf("pod %s/%s was bound to %s", ns, name, p.Spec.NodeName)
		}
		if _, c := podutil.GetPodCondition(&p.Status, v1.PodScheduled); c != nil && c.Status == v1.ConditionFalse && c.Reason == v1.PodReasonUnschedulable {
			msg = c.Message
			return true, nil
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("pod %s/%s not marked unschedulable within %v: %w", ns, name, timeout, err)
	}
	return msg, nil
}

// PodEvents lists the events (events.k8s.io/v1) about a pod, optionally of one reason.
func PodEvents(ctx context.Context, client kubernetes.Interface, ns, name, reason string) ([]eventsv1.Event, error) {
	sel := fields.Set{"regarding.kind": "Pod", "regarding.name": name}
	if reason != "" {
		sel["reason"] = reason
	}
	list, err := client.EventsV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel.AsSelector().String()})
	if err != nil {
		return nil, err
	}
	return list.Items, nil
}

// WaitForPodEvent waits for an event about a pod with the reason whose note
// contains substr, and returns its note.
func WaitForPodEvent(ctx context.Context, client kubernetes.Interface, ns, name, reason, substr string, timeout time.Duration) (string, error) {
	var note string
	var seen []string
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		evs, err := PodEvents(ctx, client, ns, name, reason)
		if err != nil {
			return false, err
		}
		seen = seen[:0]
		for _, e := range evs {
			if strings.Contains(e.Note, substr) {
				note = e.Note
				return true, nil
			}
			seen = append(seen, e.Note)
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("no %s event on pod %s/%s containing %q within %v (saw %q): %w", reason, ns, name, substr, timeout, seen, err)
	}
	return note, nil
}
