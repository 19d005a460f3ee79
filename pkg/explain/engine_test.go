package explain

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2/ktesting"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/manifests"
	"locus.dev/locus/pkg/plugins"
)

const pciLabel = "node-restriction.kubernetes.io/compliance.pci-dss"

func locusProfile(t *testing.T) *schedconfig.KubeSchedulerProfile {
	t.Helper()
	cfg, err := DecodeConfig(manifests.SchedulerConfig)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Profile(cfg, plugins.SchedulerName)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func node(name, cpu, zone string, labels map[string]string) *v1.Node {
	n := st.MakeNode().Name(name).Label(v1.LabelHostname, name).Label(v1.LabelTopologyZone, zone).
		Capacity(map[v1.ResourceName]string{v1.ResourceCPU: cpu, v1.ResourceMemory: "8Gi"})
	for k, v := range labels {
		n.Label(k, v)
	}
	return n.Obj()
}

func pod(ns, name, cpu string) *st.PodWrapper {
	return st.MakePod().Namespace(ns).Name(name).UID(ns + "-" + name).SchedulerName(plugins.SchedulerName).
		Req(map[v1.ResourceName]string{v1.ResourceCPU: cpu})
}

func namespace(name string) *v1.Namespace {
	return &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// fixture: three nodes (one certified for pci-dss, one small), a quota of
// 2 CPUs in etl, and a Dataset in etl cached on node plain.
func fixture() *State {
	return &State{
		Nodes: []*v1.Node{
			node("plain", "4", "zone-a", nil),
			node("pci", "4", "zone-b", map[string]string{pciLabel: "true"}),
			node("small", "1", "zone-b", nil),
		},
		Namespaces: []*v1.Namespace{namespace("pay"), namespace("etl"), namespace("spark")},
		ElasticQuotas: []*schedv1alpha1.ElasticQuota{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "quota"},
			Spec: schedv1alpha1.ElasticQuotaSpec{
				Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
				Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("2")},
			},
		}},
		Datasets: []*locusv1alpha1.Dataset{{
			ObjectMeta: metav1.ObjectMeta{Namespace: "etl", Name: "sales"},
			Spec: locusv1alpha1.DatasetSpec{Locations: []locusv1alpha1.DatasetLocation{
				{Node: "plain", Bytes: resource.MustParse("100Gi")},
			}},
		}},
	}
}

func newEngine(ctx context.Context, t *testing.T, s *State) *Engine {
	t.Helper()
	e, err := New(ctx, locusProfile(t), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// failures lists each node's failures as "node: Plugin: reason".
func failures(ev *Evaluation) []string {
	var out []string
	for _, n := range ev.Nodes {
		for _, f := range n.Failures {
			out = append(out, n.Node+": "+f.String())
		}
	}
	return out
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name         string
		pod          *v1.Pod
		wantBest     string
		wantFailures []string
		wantReason   string
		wantScored   string // a plugin with a non-zero score on the best node
	}{
		{
			name:     "a pci pod fits only the certified node",
			pod:      pod("pay", "card", "1").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Obj(),
			wantBest: "pci",
			wantFailures: []string{
				"plain: Compliance: missing certification pci-dss",
				"small: Compliance: missing certification pci-dss",
			},
		},
		{
			name: "every failing plugin of a node is listed, not only the first",
			pod:  pod("pay", "big-card", "3").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Node("").Obj(),
			// pci has room; plain and small lack the certification, small also the CPUs.
			wantBest: "pci",
			// Compliance filters first (the shipped profile), then the defaults.
			wantFailures: []string{
				"plain: Compliance: missing certification pci-dss",
				"small: Compliance: missing certification pci-dss",
				"small: NodeResourcesFit: Insufficient cpu",
			},
		},
		{
			name: "nothing fits",
			pod:  pod("pay", "huge-card", "6").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Obj(),
			wantFailures: []string{
				"pci: NodeResourcesFit: Insufficient cpu",
				"plain: Compliance: missing certification pci-dss",
				"plain: NodeResourcesFit: Insufficient cpu",
				"small: Compliance: missing certification pci-dss",
				"small: NodeResourcesFit: Insufficient cpu",
			},
			// Each node counts by its first failure, as the scheduler reports.
			wantReason: "0/3 nodes are available: 2 Compliance: missing certification pci-dss; 1 NodeResourcesFit: Insufficient cpu",
		},
		{
			name: "over quota: rejected as a whole by BatchQuota",
			pod:  pod("etl", "greedy", "3").Obj(),
			wantFailures: []string{
				"pci: BatchQuota: quota etl/quota: cpu would be 3 (used 0 + request 3), over max 2",
				"plain: BatchQuota: quota etl/quota: cpu would be 3 (used 0 + request 3), over max 2",
				"small: NodeResourcesFit: Insufficient cpu",
				"small: BatchQuota: quota etl/quota: cpu would be 3 (used 0 + request 3), over max 2",
			},
			wantReason: "BatchQuota: quota etl/quota: cpu would be 3 (used 0 + request 3), over max 2",
		},
		{
			name:       "a pod that reads a dataset prefers the node that holds it",
			pod:        pod("etl", "report", "1").Annotation(locusv1alpha1.AnnotationDatasets, "sales").Obj(),
			wantBest:   "plain",
			wantScored: "DataLocality",
		},
		{
			name:       "a gated pod is not scheduled at all",
			pod:        pod("etl", "gated", "1").SchedulingGates([]string{"example.com/wait"}).Obj(),
			wantReason: "SchedulingGates: waiting for scheduling gates: [example.com/wait]",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s := fixture()
			s.Pods = append(s.Pods, tc.pod)
			e := newEngine(ctx, t, s)
			ev, err := e.Evaluate(ctx, tc.pod)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Best != tc.wantBest {
				t.Errorf("best node: want %q, got %q (%s)", tc.wantBest, ev.Best, ev.Reason())
			}
			if tc.wantFailures != nil {
				if diff := cmp.Diff(tc.wantFailures, failures(ev)); diff != "" {
					t.Errorf("failures (-want,+got):\n%s", diff)
				}
			}
			if tc.wantReason != "" && !strings.HasPrefix(ev.Reason(), tc.wantReason) {
				t.Errorf("reason: want prefix %q, got %q", tc.wantReason, ev.Reason())
			}
			if tc.wantScored != "" {
				if r := ev.Node(ev.Best); r == nil || r.Scores[tc.wantScored] == 0 {
					t.Errorf("want a %s score on %s, got %+v", tc.wantScored, ev.Best, r)
				}
			}
		})
	}
}

// A bound pod is evaluated as if it were not yet scheduled: its own requests
// count neither on its node nor against its quota.
func TestEvaluateUnbound(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	state := func() (*State, *v1.Pod) {
		s := fixture()
		// Together they fill the quota (max 2); running fills small's only CPU.
		running := pod("etl", "running", "1").Node("small").Obj()
		s.Pods = append(s.Pods, running, pod("etl", "neighbour", "1").Node("plain").Obj())
		return s, running
	}

	// Counted: a pod just like it, not yet scheduled, has neither room on
	// small nor quota left.
	s, running := state()
	twin := pod("etl", "twin", "1").Obj()
	s.Pods = append(s.Pods, twin)
	ev, err := newEngine(ctx, t, s).Evaluate(ctx, twin)
	if err != nil {
		t.Fatal(err)
	}
	if ev.PreFilter == nil || ev.PreFilter.Plugin != "BatchQuota" {
		t.Errorf("with the pod counted, the quota must be full, got %v", ev.PreFilter)
	}
	if diff := cmp.Diff([]Failure{{Plugin: "NodeResourcesFit", Reason: "Insufficient cpu"}}, ev.Node("small").Failures[:1]); diff != "" {
		t.Errorf("with the pod counted, small must be full (-want,+got):\n%s", diff)
	}

	// Unbound: the pod fits its own node and its quota.
	s, running = state()
	unbound := s.Unbind(running)
	if unbound.Spec.NodeName != "" || running.Spec.NodeName != "small" {
		t.Fatalf("Unbind must clear the copy's node and leave the original: copy %q, original %q", unbound.Spec.NodeName, running.Spec.NodeName)
	}
	e := newEngine(ctx, t, s)
	if ev, err = e.Evaluate(ctx, unbound); err != nil {
		t.Fatal(err)
	}
	if r := ev.Node("small"); r == nil || !r.Feasible() {
		t.Errorf("the pod's own node must fit it when it is not counted there, got %+v", r)
	}
	if ev.PreFilter != nil {
		t.Errorf("the pod's own requests must not count against its quota, got %v", ev.PreFilter)
	}
	if _, err := e.Evaluate(ctx, running); err == nil {
		t.Errorf("evaluating a bound pod must fail")
	}
}

func TestSimulate(t *testing.T) {
	gang := func(name string) *v1.Pod {
		return pod("spark", name, "3").Label(schedv1alpha1.PodGroupLabel, "job").
			NodeSelector(map[string]string{v1.LabelTopologyZone: "zone-a"}).Obj()
	}
	tests := []struct {
		name      string
		pods      []*v1.Pod
		podGroups []*schedv1alpha1.PodGroup
		// want is "pod verdict node" per pod, in scheduling order.
		want []string
		// wantReason holds a substring of each waiting or held pod's reason.
		wantReason map[string]string
	}{
		{
			name: "placed pods take the quota from the pods after them",
			pods: []*v1.Pod{
				pod("etl", "a", "1").Obj(),
				pod("etl", "b", "1").Obj(),
				pod("etl", "c", "1").Obj(),
				pod("pay", "card", "1").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Obj(),
			},
			// Fair share orders pods by their quota's use when they were
			// queued (the scheduler's queue is a heap, whose order must not
			// change under it): all four are queued with nothing used, so
			// they go by age and name.
			want: []string{"etl/a placed", "etl/b placed", "etl/c waits", "pay/card placed pci"},
			wantReason: map[string]string{
				"etl/c": "BatchQuota: quota etl/quota: cpu would be 3 (used 2 + request 1), over max 2",
			},
		},
		{
			name: "placed pods take the room on their node",
			pods: []*v1.Pod{
				pod("pay", "card-1", "3").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Obj(),
				pod("pay", "card-2", "3").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Obj(),
			},
			want:       []string{"pay/card-1 placed pci", "pay/card-2 waits"},
			wantReason: map[string]string{"pay/card-2": "NodeResourcesFit: Insufficient cpu"},
		},
		{
			name: "higher priority goes first",
			pods: []*v1.Pod{
				pod("pay", "low", "3").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Priority(1).Obj(),
				pod("pay", "high", "3").Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Priority(10).Obj(),
			},
			want: []string{"pay/high placed pci", "pay/low waits"},
		},
		{
			name:      "a gang that fits is placed whole",
			podGroups: []*schedv1alpha1.PodGroup{{ObjectMeta: metav1.ObjectMeta{Namespace: "spark", Name: "job"}, Spec: schedv1alpha1.PodGroupSpec{MinMember: 2}}},
			pods: []*v1.Pod{
				pod("spark", "x", "1").Label(schedv1alpha1.PodGroupLabel, "job").Obj(),
				pod("spark", "y", "1").Label(schedv1alpha1.PodGroupLabel, "job").Obj(),
			},
			want: []string{"spark/x placed", "spark/y placed"},
		},
		{
			name:      "a gang that does not fit holds its reserved members",
			podGroups: []*schedv1alpha1.PodGroup{{ObjectMeta: metav1.ObjectMeta{Namespace: "spark", Name: "job"}, Spec: schedv1alpha1.PodGroupSpec{MinMember: 2}}},
			// Only plain is in zone-a, with room for one of them.
			pods: []*v1.Pod{gang("x"), gang("y")},
			want: []string{"spark/x held plain", "spark/y waits"},
			wantReason: map[string]string{
				"spark/x": "gang job: 1 of minMember 2 members could be reserved",
				"spark/y": "NodeResourcesFit: Insufficient cpu",
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			s := fixture()
			s.PodGroups = tc.podGroups
			s.Pods = append(s.Pods, tc.pods...)
			e := newEngine(ctx, t, s)
			outcomes, err := e.Simulate(ctx, tc.pods)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range outcomes {
				key := o.Pod.Namespace + "/" + o.Pod.Name
				line := key + " " + string(o.Verdict)
				// Pods without a node constraint may land on any node that fits.
				if o.Node != "" && strings.Contains(strings.Join(tc.want, ","), line+" ") {
					line += " " + o.Node
				}
				got = append(got, line)
				if want, ok := tc.wantReason[key]; ok && !strings.Contains(o.Reason, want) {
					t.Errorf("%s: want a reason containing %q, got %q", key, want, o.Reason)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("outcomes (-want,+got):\n%s", diff)
			}
		})
	}
}

// Right after New, BatchQuota has counted every bound pod: an engine that
// evaluated pods against a half-counted quota would admit too much.
func TestQuotaCountedBeforeFirstCycle(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	for round := 0; round < 3; round++ {
		s := fixture()
		// 2000 pods of 1m fill etl's max of 2 CPUs.
		for i := 0; i < 2000; i++ {
			s.Pods = append(s.Pods, pod("etl", fmt.Sprintf("p-%d", i), "1m").Node("plain").Obj())
		}
		p := pod("etl", "one-more", "1m").Obj()
		s.Pods = append(s.Pods, p)
		e := newEngine(ctx, t, s)
		ev, err := e.Evaluate(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		if want := "BatchQuota: quota etl/quota: cpu would be 2001m (used 2 + request 1m), over max 2"; ev.Reason() != want {
			t.Fatalf("round %d: want %q, got %q", round, want, ev.Reason())
		}
	}
}

// Bound members of a gang are counted as members of it from the start, so a
// late member of a placed gang is admitted on its own requests, not on a new
// gang's minMember worth.
func TestBoundGangMembersCountedAsTheGang(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	for round := 0; round < 5; round++ {
		s := fixture()
		s.ElasticQuotas = append(s.ElasticQuotas, &schedv1alpha1.ElasticQuota{
			ObjectMeta: metav1.ObjectMeta{Namespace: "spark", Name: "quota"},
			Spec: schedv1alpha1.ElasticQuotaSpec{
				Min: v1.ResourceList{v1.ResourceCPU: resource.MustParse("3")},
				Max: v1.ResourceList{v1.ResourceCPU: resource.MustParse("3")},
			},
		})
		s.PodGroups = []*schedv1alpha1.PodGroup{{ObjectMeta: metav1.ObjectMeta{Namespace: "spark", Name: "job"}, Spec: schedv1alpha1.PodGroupSpec{MinMember: 2}}}
		member := func(name string) *st.PodWrapper {
			return pod("spark", name, "1").Label(schedv1alpha1.PodGroupLabel, "job")
		}
		late := member("late").Obj()
		s.Pods = append(s.Pods, member("a").Node("plain").Obj(), member("b").Node("plain").Obj(), late)
		e := newEngine(ctx, t, s)
		ev, err := e.Evaluate(ctx, late)
		if err != nil {
			t.Fatal(err)
		}
		if ev.PreFilter != nil {
			t.Fatalf("round %d: the placed gang's late member must fit (used 2 + 1 of max 3), got %v", round, ev.PreFilter)
		}
	}
}
