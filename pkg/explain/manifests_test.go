package explain

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
)

const manifestsYAML = `apiVersion: v1
kind: Pod
metadata: {name: lone, annotations: {locus.dev/compliance: pci-dss}}
spec:
  priorityClassName: batch-high
  containers:
  - {name: c, image: busybox, resources: {limits: {cpu: 500m}}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: etl, namespace: shop}
spec:
  parallelism: 3
  completions: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: List
items:
- apiVersion: scheduling.x-k8s.io/v1alpha1
  kind: PodGroup
  metadata: {name: gang, namespace: shop}
  spec: {minMember: 2}
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: settings, namespace: shop}
`

func TestDecodeManifests(t *testing.T) {
	objs, err := DecodeManifests(strings.NewReader(manifestsYAML))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var pods []*v1.Pod
	for _, o := range objs {
		got = append(got, describeObject(o))
		if p, ok := o.(*v1.Pod); ok {
			pods = append(pods, p)
		}
		if wp, ok := WorkloadPods(o); ok {
			for _, p := range wp {
				pods = append(pods, p)
				got = append(got, "  "+describeObject(p))
			}
		}
	}
	want := []string{
		"*v1.Pod /lone",
		"*v1.Deployment shop/web",
		"  *v1.Pod shop/web-0",
		"  *v1.Pod shop/web-1",
		"*v1.Job shop/etl",
		"  *v1.Pod shop/etl-0",
		"  *v1.Pod shop/etl-1",
		"*v1alpha1.PodGroup shop/gang",
		"*v1.ConfigMap shop/settings",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("objects (-want,+got):\n%s", diff)
	}
	if pods[1].Labels["app"] != "web" {
		t.Errorf("a workload's pods carry its template's labels, got %v", pods[1].Labels)
	}

	s := &State{PriorityClasses: []*schedulingv1.PriorityClass{{ObjectMeta: metav1.ObjectMeta{Name: "batch-high"}, Value: 1000}}}
	lone := pods[0]
	if err := s.PreparePod(lone, "payments"); err != nil {
		t.Fatal(err)
	}
	if lone.Namespace != "payments" || lone.UID == "" || lone.Spec.SchedulerName != v1.DefaultSchedulerName {
		t.Errorf("want namespace payments, a UID and the default schedulerName, got %q %q %q", lone.Namespace, lone.UID, lone.Spec.SchedulerName)
	}
	if got := lone.Spec.Containers[0].Resources.Requests.Cpu().String(); got != "500m" {
		t.Errorf("requests default to limits: want cpu 500m, got %s", got)
	}
	if lone.Spec.Priority == nil || *lone.Spec.Priority != 1000 {
		t.Errorf("want the priority of batch-high (1000), got %v", lone.Spec.Priority)
	}
	missing := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "x"}, Spec: v1.PodSpec{PriorityClassName: "nope"}}
	if err := s.PreparePod(missing, "payments"); err == nil {
		t.Errorf("a pod of an unknown PriorityClass must be an error")
	}
}

func TestDecodeManifestsErrors(t *testing.T) {
	for _, doc := range []string{
		"apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {containerz: []}\n",
		"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n",
		"{not yaml",
	} {
		if _, err := DecodeManifests(strings.NewReader(doc)); err == nil {
			t.Errorf("want an error for %q", doc)
		}
	}
}

func TestApply(t *testing.T) {
	s := fixture()
	eq := &schedv1alpha1.ElasticQuota{ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "other-name"}}
	if err := s.Apply(eq); err != nil {
		t.Fatal(err)
	}
	if len(s.ElasticQuotas) != 1 || s.ElasticQuotas[0] != eq {
		t.Errorf("a quota replaces its namespace's, whatever its name: got %d quotas", len(s.ElasticQuotas))
	}
	n := node("plain", "64", "zone-a", nil)
	if err := s.Apply(n); err != nil {
		t.Fatal(err)
	}
	if len(s.Nodes) != 3 || s.Nodes[0] != n {
		t.Errorf("a node replaces the node of its name")
	}
	if err := s.Apply(&v1.ConfigMap{}); err == nil {
		t.Errorf("a ConfigMap is not part of the state")
	}
}

func describeObject(o runtime.Object) string {
	m := o.(metav1.Object)
	return fmt.Sprintf("%T %s/%s", o, m.GetNamespace(), m.GetName())
}
