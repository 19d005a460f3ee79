package integration

import (
	"context"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

const certPrefix = "node-restriction.kubernetes.io/compliance."

// complianceCluster builds 16 nodes: ten plain ones in us-east-1, and a few
// with certifications or in eu regions.
func complianceCluster(ctx context.Context, t *testing.T, env *testenv.Env) {
	t.Helper()
	var nodes []testenv.NodeSpec
	for i := 0; i < 10; i++ {
		nodes = append(nodes, testenv.NodeSpec{Name: "plain-" + string(rune('a'+i)), Labels: map[string]string{
			v1.LabelTopologyRegion: "us-east-1", v1.LabelTopologyZone: "us-east-1" + string(rune('a'+i%3)),
		}})
	}
	nodes = append(nodes,
		testenv.NodeSpec{Name: "pci-1", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", certPrefix + "pci-dss": "true"}},
		testenv.NodeSpec{Name: "iso-expired", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1", certPrefix + "iso27001": "2020-01-31"}},
		testenv.NodeSpec{Name: "eu-west", Labels: map[string]string{v1.LabelTopologyRegion: "eu-west-1"}},
		testenv.NodeSpec{Name: "eu-central", Labels: map[string]string{v1.LabelTopologyRegion: "eu-central-1"}},
		testenv.NodeSpec{Name: "hipaa-eu", Labels: map[string]string{v1.LabelTopologyRegion: "eu-west-1", certPrefix + "hipaa": "2099-12-31"}},
		testenv.NodeSpec{Name: "late", Labels: map[string]string{v1.LabelTopologyRegion: "us-east-1"}},
	)
	for _, n := range nodes {
		if _, err := testenv.CreateNode(ctx, env.Client, n); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCompliance(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	env := testenv.Start(ctx, t, nil)
	complianceCluster(ctx, t, env)
	c := env.Client

	newNS := func(t *testing.T, name string, ann map[string]string) string {
		t.Helper()
		if err := testenv.CreateNamespace(ctx, c, name, ann); err != nil {
			t.Fatal(err)
		}
		return name
	}
	locusPod := func(ns, name string, ann map[string]string) testenv.PodSpec {
		return testenv.PodSpec{Namespace: ns, Name: name, SchedulerName: plugins.SchedulerName, Annotations: ann, CPU: "100m"}
	}
	create := func(t *testing.T, spec testenv.PodSpec) {
		t.Helper()
		if _, err := testenv.CreatePod(ctx, c, spec); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("pci pods land only on the certified node, with an audit event", func(t *testing.T) {
		ns := newNS(t, "payments", nil)
		for i := 0; i < 5; i++ {
			name := "pay-" + string(rune('0'+i))
			create(t, locusPod(ns, name, map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}))
		}
		for i := 0; i < 5; i++ {
			name := "pay-" + string(rune('0'+i))
			node, err := testenv.WaitForPodBound(ctx, c, ns, name, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if node != "pci-1" {
				t.Errorf("pod %s bound to %s, want pci-1 (the only pci-dss node)", name, node)
			}
			note, err := testenv.WaitForPodEvent(ctx, c, ns, name, locusv1alpha1.EventReasonCompliantPlacement, "node pci-1 holds pci-dss (no expiry)", 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("audit: %s", note)
		}
	})

	t.Run("unregulated pods stay off certified nodes", func(t *testing.T) {
		ns := newNS(t, "batch", nil)
		for i := 0; i < 10; i++ {
			create(t, locusPod(ns, "job-"+string(rune('a'+i)), nil))
		}
		for i := 0; i < 10; i++ {
			node, err := testenv.WaitForPodBound(ctx, c, ns, "job-"+string(rune('a'+i)), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if node == "pci-1" || node == "hipaa-eu" {
				t.Errorf("unregulated pod landed on certified node %s while uncertified nodes had room", node)
			}
		}
	})

	t.Run("an expired certification is refused", func(t *testing.T) {
		ns := newNS(t, "audit", nil)
		create(t, locusPod(ns, "iso", map[string]string{locusv1alpha1.AnnotationCompliance: "iso27001"}))
		msg, err := testenv.WaitForPodUnschedulable(ctx, c, ns, "iso", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "certification iso27001 expired 2020-01-31") {
			t.Errorf("unschedulable message %q does not name the expired certification", msg)
		}
	})

	t.Run("a pending pod binds within seconds of a node being certified", func(t *testing.T) {
		ns := newNS(t, "soc", nil)
		create(t, locusPod(ns, "soc2", map[string]string{locusv1alpha1.AnnotationCompliance: "soc2"}))
		msg, err := testenv.WaitForPodUnschedulable(ctx, c, ns, "soc2", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(msg, "missing certification soc2") {
			t.Errorf("message %q, want it to say missing certification soc2", msg)
		}
		// Let the pod settle in the unschedulable queue; only a queueing hint
		// (not the 5 minute flush) can bring it back in the time allowed below.
		time.Sleep(2 * time.Second)
		if err := testenv.SetNodeLabel(ctx, c, "late", certPrefix+"soc2", "true", false); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		node, err := testenv.WaitForPodBound(ctx, c, ns, "soc2", 15*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if node != "late" {
			t.Errorf("bound to %s, want late", node)
		}
		t.Logf("bound %v after the label was set", time.Since(start))
	})

	t.Run("data residency keeps eu pods in eu regions", func(t *testing.T) {
		ns := newNS(t, "eu-analytics", map[string]string{locusv1alpha1.AnnotationDataResidency: "eu"})
		for i := 0; i < 6; i++ {
			create(t, locusPod(ns, "eu-"+string(rune('a'+i)), nil))
		}
		for i := 0; i < 6; i++ {
			node, err := testenv.WaitForPodBound(ctx, c, ns, "eu-"+string(rune('a'+i)), 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			n, err := c.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r := n.Labels[v1.LabelTopologyRegion]; r != "eu-west-1" && r != "eu-central-1" {
				t.Errorf("eu pod landed on %s in region %s", node, r)
			}
		}
	})

	t.Run("namespace requirements add to the pod's", func(t *testing.T) {
		ns := newNS(t, "health", map[string]string{locusv1alpha1.AnnotationCompliance: "hipaa"})
		create(t, locusPod(ns, "records", map[string]string{locusv1alpha1.AnnotationDataResidency: "eu"}))
		node, err := testenv.WaitForPodBound(ctx, c, ns, "records", 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if node != "hipaa-eu" {
			t.Errorf("bound to %s, want hipaa-eu", node)
		}
	})

	t.Run("malformed annotations fail closed with an event naming the bad value", func(t *testing.T) {
		ns := newNS(t, "typos", nil)
		cases := map[string]map[string]string{
			"bad-standard":  {locusv1alpha1.AnnotationCompliance: "pci-dss,PCI_DSS"},
			"unknown-group": {locusv1alpha1.AnnotationDataResidency: "mars"},
		}
		want := map[string]string{"bad-standard": `"PCI_DSS"`, "unknown-group": `"mars"`}
		for name, ann := range cases {
			create(t, locusPod(ns, name, ann))
		}
		for name := range cases {
			if _, err := testenv.WaitForPodEvent(ctx, c, ns, name, "FailedScheduling", want[name], 30*time.Second); err != nil {
				t.Error(err)
			}
		}
		// Conflicting residency between pod and namespace names both.
		conflict := newNS(t, "eu-only", map[string]string{locusv1alpha1.AnnotationDataResidency: "eu"})
		create(t, locusPod(conflict, "us-pod", map[string]string{locusv1alpha1.AnnotationDataResidency: "us"}))
		if _, err := testenv.WaitForPodEvent(ctx, c, conflict, "us-pod", "FailedScheduling", `pod says "us", namespace eu-only says "eu"`, 30*time.Second); err != nil {
			t.Error(err)
		}
		// The scheduler keeps running: a good pod still binds, and the bad ones never do.
		create(t, locusPod(ns, "good", map[string]string{locusv1alpha1.AnnotationCompliance: "pci-dss"}))
		if _, err := testenv.WaitForPodBound(ctx, c, ns, "good", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		for name := range cases {
			p, err := c.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Spec.NodeName != "" {
				t.Errorf("pod %s with a malformed annotation was bound to %s", name, p.Spec.NodeName)
			}
		}
	})

	t.Run("pods of other schedulers are left to them", func(t *testing.T) {
		ns := newNS(t, "default-sched", nil)
		spec := locusPod(ns, "plain", map[string]string{locusv1alpha1.AnnotationCompliance: "fedramp"})
		spec.SchedulerName = "" // the default scheduler's pod: locus must not touch it
		create(t, spec)
		if _, err := testenv.WaitForPodBound(ctx, c, ns, "plain", 30*time.Second); err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.WaitForPodEvent(ctx, c, ns, "plain", "Scheduled", "", 10*time.Second); err != nil {
			t.Fatal(err)
		}
		evs, err := testenv.PodEvents(ctx, c, ns, "plain", "Scheduled")
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].ReportingController != v1.DefaultSchedulerName {
			t.Errorf("want one Scheduled event from %s, got %+v", v1.DefaultSchedulerName, evs)
		}
		if evs, _ := testenv.PodEvents(ctx, c, ns, "plain", locusv1alpha1.EventReasonCompliantPlacement); len(evs) != 0 {
			t.Errorf("locus recorded %d audit events on a pod it does not schedule", len(evs))
		}
	})
}
