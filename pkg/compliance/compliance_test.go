package compliance

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	testingclock "k8s.io/utils/clock/testing"

	"locus.dev/locus/apis/config"
	configvalidation "locus.dev/locus/apis/config/validation"
	"locus.dev/locus/pkg/leader"
)

// testNow is the plugin's clock in these tests unless a case sets its own.
var testNow = time.Date(2026, 2, 15, 12, 0, 0, 0, time.UTC)

func defaultArgs() config.ComplianceArgs {
	return config.ComplianceArgs{
		CertificationLabelPrefix:  defaultPrefix,
		Residency:                 testResidency,
		ResidencyLabel:            v1.LabelTopologyRegion,
		PreserveCertifiedCapacity: true,
	}
}

// testNamespaces are in the informer of every plugin built by newTestPlugin.
func testNamespaces() []*v1.Namespace {
	return []*v1.Namespace{
		namespace("default", nil),
		namespace("payments", map[string]string{annCompliance: "pci-dss"}),
		namespace("eu-data", map[string]string{annResidency: "eu"}),
		namespace("broken", map[string]string{annCompliance: "Pci-Dss"}),
	}
}

type pluginSetup struct {
	// args defaults to defaultArgs().
	args *config.ComplianceArgs
	// nodes are in both the node informer and the scheduler's snapshot.
	nodes []*v1.Node
	// snapshotOnlyNodes are in the snapshot but not (yet) in the informer.
	snapshotOnlyNodes []*v1.Node
	// now defaults to testNow.
	now time.Time
	// elected defaults to a leader from the start.
	elected *leader.Elected
	// pods are in the pod informer.
	pods []*v1.Pod
}

// newTestPlugin builds the plugin through a real framework handle whose
// informer factory is backed by a fake clientset holding testNamespaces and
// the setup's nodes. It returns the recorder that receives the plugin's events.
func newTestPlugin(ctx context.Context, t testing.TB, s pluginSetup) (*Compliance, *events.FakeRecorder) {
	t.Helper()
	args := defaultArgs()
	if s.args != nil {
		args = *s.args
	}
	now := testNow
	if !s.now.IsZero() {
		now = s.now
	}
	var objs []runtime.Object
	for _, ns := range testNamespaces() {
		objs = append(objs, ns)
	}
	for _, n := range s.nodes {
		objs = append(objs, n)
	}
	for _, p := range s.pods {
		objs = append(objs, p)
	}
	client := fake.NewClientset(objs...)
	informerFactory := informers.NewSharedInformerFactory(client, 0)
	recorder := events.NewFakeRecorder(10)
	snapshot := internalcache.NewSnapshot(nil, append(append([]*v1.Node{}, s.nodes...), s.snapshotOnlyNodes...))

	ctx, cancel := context.WithCancel(ctx)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithInformerFactory(informerFactory),
		frameworkruntime.WithEventRecorder(recorder),
		frameworkruntime.WithClientSet(client),
	)
	if err != nil {
		cancel()
		t.Fatalf("NewFramework: %v", err)
	}
	if err := configvalidation.ValidateComplianceArgs(nil, &args); err != nil {
		cancel()
		t.Fatalf("args: %v", err)
	}
	// Built as New builds it, with a fake clock.
	elected := s.elected
	if elected == nil {
		elected = leader.Always()
	}
	pl := newPlugin(ctx, args, fh, elected, testingclock.NewFakeClock(now))
	informerFactory.Start(ctx.Done())
	t.Cleanup(func() {
		cancel()
		informerFactory.Shutdown()
	})
	for typ, synced := range informerFactory.WaitForCacheSync(ctx.Done()) {
		if !synced {
			t.Fatalf("informer for %v did not sync", typ)
		}
	}
	return pl, recorder
}

func nodeInfo(n *v1.Node) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		args    runtime.Object
		wantErr string
	}{
		{name: "valid args", args: func() runtime.Object { a := defaultArgs(); return &a }()},
		{name: "wrong args type", args: &config.DataLocalityArgs{}, wantErr: "ComplianceArgs"},
		{name: "missing prefix", args: &config.ComplianceArgs{Residency: testResidency, ResidencyLabel: v1.LabelTopologyRegion}, wantErr: "certificationLabelPrefix"},
		{name: "missing residency label", args: &config.ComplianceArgs{CertificationLabelPrefix: defaultPrefix}, wantErr: "residencyLabel"},
		{
			name:    "residency group without regions",
			args:    &config.ComplianceArgs{CertificationLabelPrefix: defaultPrefix, ResidencyLabel: v1.LabelTopologyRegion, Residency: map[string][]string{"eu": nil}},
			wantErr: "residency",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			informerFactory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
			fh, err := frameworkruntime.NewFramework(ctx, nil, nil, frameworkruntime.WithInformerFactory(informerFactory))
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(ctx, tt.args, fh)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New() unexpected error: %v", err)
				}
				if p.Name() != Name {
					t.Errorf("Name() = %q, want %q", p.Name(), Name)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestEventsToRegister(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pl, _ := newTestPlugin(ctx, t, pluginSetup{})
	got, err := pl.EventsToRegister(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []fwk.ClusterEvent{
		{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeLabel},
		{Resource: fwk.Pod, ActionType: fwk.Update},
		{Resource: "namespaces.v1.", ActionType: fwk.Add | fwk.Update},
	}
	var gotEvents []fwk.ClusterEvent
	for _, e := range got {
		if e.QueueingHintFn == nil {
			t.Errorf("event %v has no queueing hint", e.Event)
		}
		gotEvents = append(gotEvents, e.Event)
	}
	if diff := cmp.Diff(want, gotEvents); diff != "" {
		t.Errorf("EventsToRegister() (-want,+got):\n%s", diff)
	}
}

func TestPreFilter(t *testing.T) {
	tests := []struct {
		name     string
		pod      *v1.Pod
		wantCode fwk.Code
		// wantMsg lists substrings of the status message.
		wantMsg []string
		// wantState is the requirements PreFilter stores, when it succeeds.
		wantState *Requirements
	}{
		{
			name:     "no requirements skips Filter",
			pod:      st.MakePod().Name("p").Namespace("default").Obj(),
			wantCode: fwk.Skip,
		},
		{
			name:      "pod requirements",
			pod:       st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			wantCode:  fwk.Success,
			wantState: &Requirements{Standards: []string{"pci-dss"}},
		},
		{
			name:      "namespace requirements read from the informer",
			pod:       st.MakePod().Name("p").Namespace("payments").Annotation(annCompliance, "hipaa").Obj(),
			wantCode:  fwk.Success,
			wantState: &Requirements{Standards: []string{"hipaa", "pci-dss"}},
		},
		{
			name:      "namespace residency read from the informer",
			pod:       st.MakePod().Name("p").Namespace("eu-data").Obj(),
			wantCode:  fwk.Success,
			wantState: &Requirements{Residency: "eu", Regions: sets.New("eu-west-1", "eu-central-1")},
		},
		{
			name:     "namespace not in the cache fails closed",
			pod:      st.MakePod().Name("p").Namespace("not-yet-seen").Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"namespace not-yet-seen"},
		},
		{
			name:     "standard too long to form a label key with the prefix",
			pod:      st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, strings.Repeat("a", 60)).Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{"is not a valid label key"},
		},
		{
			name:     "malformed pod standard",
			pod:      st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "PCI_DSS").Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{`"PCI_DSS"`, "pod"},
		},
		{
			name:     "malformed namespace standard",
			pod:      st.MakePod().Name("p").Namespace("broken").Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{`"Pci-Dss"`, "namespace"},
		},
		{
			name:     "unknown residency group",
			pod:      st.MakePod().Name("p").Namespace("default").Annotation(annResidency, "apac").Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{`"apac"`},
		},
		{
			name:     "residency conflicting with the namespace's",
			pod:      st.MakePod().Name("p").Namespace("eu-data").Annotation(annResidency, "us").Obj(),
			wantCode: fwk.UnschedulableAndUnresolvable,
			wantMsg:  []string{`"us"`, `"eu"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{})
			state := framework.NewCycleState()
			result, status := pl.PreFilter(ctx, state, tt.pod, nil)
			if result != nil {
				t.Errorf("PreFilter() result = %+v, want nil", result)
			}
			if diff := cmp.Diff(tt.wantCode, status.Code()); diff != "" {
				t.Errorf("PreFilter() code (-want,+got):\n%s\nstatus: %v", diff, status)
			}
			for _, m := range tt.wantMsg {
				if !strings.Contains(status.Message(), m) {
					t.Errorf("PreFilter() message %q does not contain %q", status.Message(), m)
				}
			}
			s, err := getPreFilterState(state)
			if tt.wantState == nil {
				if err == nil {
					t.Errorf("PreFilter() wrote state %+v, want none", s.req)
				}
				return
			}
			if err != nil {
				t.Fatalf("PreFilter() wrote no state: %v", err)
			}
			if diff := cmp.Diff(tt.wantState, s.req, cmpopts.EquateEmpty(), cmpopts.IgnoreUnexported(Requirements{}),
				cmpopts.IgnoreFields(Requirements{}, "RegionLabel")); diff != "" {
				t.Errorf("PreFilter() state (-want,+got):\n%s", diff)
			}
			if s.req.RegionLabel != v1.LabelTopologyRegion {
				t.Errorf("PreFilter() state RegionLabel = %q, want the residencyLabel arg %q", s.req.RegionLabel, v1.LabelTopologyRegion)
			}
			if !s.now.Equal(testNow) {
				t.Errorf("PreFilter() state time = %v, want the clock's %v", s.now, testNow)
			}
		})
	}
}

func TestFilter(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		node *v1.Node
		// now defaults to testNow.
		now  time.Time
		want *fwk.Status
	}{
		{
			name: "missing certification",
			pod:  st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"hipaa", "true").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "missing certification pci-dss"),
		},
		{
			name: "expired certification",
			pod:  st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "2026-01-31").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "certification pci-dss expired 2026-01-31"),
		},
		{
			name: "certification valid through the last second of its day",
			pod:  st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "2026-01-31").Obj(),
			now:  time.Date(2026, 1, 31, 23, 59, 59, 0, time.UTC),
		},
		{
			name: "certification expired at midnight UTC",
			pod:  st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "2026-01-31").Obj(),
			now:  time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "certification pci-dss expired 2026-01-31"),
		},
		{
			name: "invalid certification value",
			pod:  st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "yes").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, `certification pci-dss has invalid value "yes"`),
		},
		{
			name: "outside data residency",
			pod:  st.MakePod().Name("p").Namespace("default").Annotation(annResidency, "eu").Obj(),
			node: st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "us-east-1").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "outside data residency eu"),
		},
		{
			name: "node without a region is outside data residency",
			pod:  st.MakePod().Name("p").Namespace("eu-data").Obj(),
			node: st.MakeNode().Name("n").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "outside data residency eu"),
		},
		{
			name: "namespace requirement applies to a pod without annotations",
			pod:  st.MakePod().Name("p").Namespace("payments").Obj(),
			node: st.MakeNode().Name("n").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "missing certification pci-dss"),
		},
		{
			name: "pod adds a requirement to its namespace's",
			pod:  st.MakePod().Name("p").Namespace("payments").Annotation(annCompliance, "hipaa").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "true").Obj(),
			want: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, "missing certification hipaa"),
		},
		{
			name: "all satisfied",
			pod: st.MakePod().Name("p").Namespace("payments").Annotation(annCompliance, "hipaa").
				Annotation(annResidency, "eu").Obj(),
			node: st.MakeNode().Name("n").Label(defaultPrefix+"pci-dss", "true").Label(defaultPrefix+"hipaa", "2026-02-15").
				Label(v1.LabelTopologyRegion, "eu-central-1").Obj(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{nodes: []*v1.Node{tt.node}, now: tt.now})
			state := framework.NewCycleState()
			if _, status := pl.PreFilter(ctx, state, tt.pod, nil); !status.IsSuccess() {
				t.Fatalf("PreFilter() = %v, want success", status)
			}
			got := pl.Filter(ctx, state, tt.pod, nodeInfo(tt.node))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Filter() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestFilterWithoutPreFilterState(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pl, _ := newTestPlugin(ctx, t, pluginSetup{})
	pod := st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj()
	got := pl.Filter(ctx, framework.NewCycleState(), pod, nodeInfo(st.MakeNode().Name("n").Obj()))
	if diff := cmp.Diff(fwk.Error, got.Code()); diff != "" {
		t.Errorf("Filter() code (-want,+got):\n%s", diff)
	}
}

func TestScore(t *testing.T) {
	plain := st.MakeNode().Name("plain").Label(v1.LabelTopologyRegion, "us-east-1").Obj()
	pci := st.MakeNode().Name("pci").Label(defaultPrefix+"pci-dss", "true").Obj()
	pciHipaa := st.MakeNode().Name("pci-hipaa").Label(defaultPrefix+"pci-dss", "true").
		Label(defaultPrefix+"hipaa", "2099-12-31").Obj()
	pciHipaaSoc2 := st.MakeNode().Name("pci-hipaa-soc2").Label(defaultPrefix+"pci-dss", "2026-12-31").
		Label(defaultPrefix+"hipaa", "true").Label(defaultPrefix+"soc2", "true").Obj()
	expired := st.MakeNode().Name("expired").Label(defaultPrefix+"pci-dss", "2026-01-31").
		Label(defaultPrefix+"hipaa", "2020-01-01").Obj()
	invalid := st.MakeNode().Name("invalid").Label(defaultPrefix+"pci-dss", "yes").Obj()
	otherPrefix := st.MakeNode().Name("other-prefix").Label("certs.example.com/pci-dss", "true").Obj()

	tests := []struct {
		name    string
		pod     *v1.Pod
		nodes   []*v1.Node
		wantRaw []int64
		want    framework.NodeScoreList
	}{
		{
			name:    "unregulated pod prefers uncertified nodes",
			pod:     st.MakePod().Name("p").Namespace("default").Obj(),
			nodes:   []*v1.Node{plain, pci, pciHipaa},
			wantRaw: []int64{0, 1, 2},
			want:    framework.NodeScoreList{{Name: "plain", Score: 100}, {Name: "pci", Score: 50}, {Name: "pci-hipaa", Score: 0}},
		},
		{
			name:    "expired certifications do not count",
			pod:     st.MakePod().Name("p").Namespace("default").Obj(),
			nodes:   []*v1.Node{plain, expired, pci},
			wantRaw: []int64{0, 0, 1},
			want:    framework.NodeScoreList{{Name: "plain", Score: 100}, {Name: "expired", Score: 100}, {Name: "pci", Score: 0}},
		},
		{
			name:    "invalid values and other prefixes do not count",
			pod:     st.MakePod().Name("p").Namespace("default").Obj(),
			nodes:   []*v1.Node{invalid, otherPrefix, pciHipaa},
			wantRaw: []int64{0, 0, 2},
			want:    framework.NodeScoreList{{Name: "invalid", Score: 100}, {Name: "other-prefix", Score: 100}, {Name: "pci-hipaa", Score: 0}},
		},
		{
			name:    "no certified node: all score the maximum",
			pod:     st.MakePod().Name("p").Namespace("default").Obj(),
			nodes:   []*v1.Node{plain, expired},
			wantRaw: []int64{0, 0},
			want:    framework.NodeScoreList{{Name: "plain", Score: 100}, {Name: "expired", Score: 100}},
		},
		{
			name:    "regulated pod: its required standards do not count against a node",
			pod:     st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			nodes:   []*v1.Node{pci, pciHipaa, pciHipaaSoc2},
			wantRaw: []int64{0, 1, 2},
			want:    framework.NodeScoreList{{Name: "pci", Score: 100}, {Name: "pci-hipaa", Score: 50}, {Name: "pci-hipaa-soc2", Score: 0}},
		},
		{
			name:    "regulated pod needing all of a node's certifications",
			pod:     st.MakePod().Name("p").Namespace("payments").Annotation(annCompliance, "hipaa").Obj(),
			nodes:   []*v1.Node{pci, pciHipaa},
			wantRaw: []int64{0, 0},
			want:    framework.NodeScoreList{{Name: "pci", Score: 100}, {Name: "pci-hipaa", Score: 100}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{nodes: tt.nodes})
			state := framework.NewCycleState()
			if _, status := pl.PreFilter(ctx, state, tt.pod, nil); !status.IsSuccess() && !status.IsSkip() {
				t.Fatalf("PreFilter() = %v", status)
			}
			if status := pl.PreScore(ctx, state, tt.pod, nil); status.IsSkip() {
				// Nothing to count: the framework leaves the plugin out,
				// which is right only when every node would score the same.
				for _, r := range tt.wantRaw {
					if r != tt.wantRaw[0] {
						t.Fatalf("PreScore() skipped, but the nodes score %v", tt.wantRaw)
					}
				}
				return
			} else if !status.IsSuccess() {
				t.Fatalf("PreScore() = %v, want success", status)
			}
			var raw []int64
			var scores framework.NodeScoreList
			for _, n := range tt.nodes {
				s, status := pl.Score(ctx, state, tt.pod, nodeInfo(n))
				if !status.IsSuccess() {
					t.Fatalf("Score(%s) = %v", n.Name, status)
				}
				raw = append(raw, s)
				scores = append(scores, framework.NodeScore{Name: n.Name, Score: s})
			}
			if diff := cmp.Diff(tt.wantRaw, raw); diff != "" {
				t.Errorf("Score() (-want,+got):\n%s", diff)
			}
			if status := pl.ScoreExtensions().NormalizeScore(ctx, state, tt.pod, scores); !status.IsSuccess() {
				t.Fatalf("NormalizeScore() = %v", status)
			}
			if diff := cmp.Diff(tt.want, scores); diff != "" {
				t.Errorf("NormalizeScore() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPreScore(t *testing.T) {
	certified := []*v1.Node{st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "true").Obj(), st.MakeNode().Name("n2").Obj()}
	tests := []struct {
		name     string
		preserve bool
		nodes    []*v1.Node
		want     *fwk.Status
	}{
		{name: "preserveCertifiedCapacity off skips Score", preserve: false, nodes: certified, want: fwk.NewStatus(fwk.Skip)},
		{name: "preserveCertifiedCapacity on", preserve: true, nodes: certified, want: nil},
		{name: "no node carries a certification: every node scores the same, Score skipped", preserve: true,
			nodes: []*v1.Node{st.MakeNode().Name("n2").Obj()}, want: fwk.NewStatus(fwk.Skip)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			args := defaultArgs()
			args.PreserveCertifiedCapacity = tt.preserve
			pl, _ := newTestPlugin(ctx, t, pluginSetup{args: &args, nodes: tt.nodes})
			pod := st.MakePod().Name("p").Namespace("default").Obj()
			got := pl.PreScore(ctx, framework.NewCycleState(), pod, nil)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PreScore() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestScoreWithoutPreScoreState(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	pl, _ := newTestPlugin(ctx, t, pluginSetup{})
	pod := st.MakePod().Name("p").Namespace("default").Obj()
	_, got := pl.Score(ctx, framework.NewCycleState(), pod, nodeInfo(st.MakeNode().Name("n").Obj()))
	if diff := cmp.Diff(fwk.Error, got.Code()); diff != "" {
		t.Errorf("Score() code (-want,+got):\n%s", diff)
	}
}

func TestIsSchedulableAfterNodeChange(t *testing.T) {
	pciPod := st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "pci-dss").Obj()
	euPciPod := st.MakePod().Name("p").Namespace("eu-data").UID("p").Annotation(annCompliance, "pci-dss").Obj()
	plain := st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "eu-west-1").Obj()
	certified := st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "eu-west-1").Label(defaultPrefix+"pci-dss", "true").Obj()
	certifiedRelabelled := st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "eu-west-1").Label(defaultPrefix+"pci-dss", "true").
		Label("team", "payments").Obj()
	expired := st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "eu-west-1").Label(defaultPrefix+"pci-dss", "2026-01-31").Obj()
	renewed := st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "eu-west-1").Label(defaultPrefix+"pci-dss", "2027-01-31").Obj()
	certifiedUS := st.MakeNode().Name("n").Label(v1.LabelTopologyRegion, "us-east-1").Label(defaultPrefix+"pci-dss", "true").Obj()

	tests := []struct {
		name    string
		pod     *v1.Pod
		oldObj  interface{}
		newObj  interface{}
		want    fwk.QueueingHint
		wantErr bool
	}{
		{name: "new node that satisfies", pod: pciPod, oldObj: nil, newObj: certified, want: fwk.Queue},
		{name: "new node without the certification", pod: pciPod, oldObj: nil, newObj: plain, want: fwk.QueueSkip},
		{name: "new node with an expired certification", pod: pciPod, oldObj: nil, newObj: expired, want: fwk.QueueSkip},
		{name: "update where the old node already satisfied", pod: pciPod, oldObj: certified, newObj: certifiedRelabelled, want: fwk.QueueSkip},
		{name: "update that adds the certification", pod: pciPod, oldObj: plain, newObj: certified, want: fwk.Queue},
		{name: "update that renews an expired certification", pod: pciPod, oldObj: expired, newObj: renewed, want: fwk.Queue},
		{name: "update that removes the certification", pod: pciPod, oldObj: certified, newObj: plain, want: fwk.QueueSkip},
		{name: "update that moves the node into the residency group", pod: euPciPod, oldObj: certifiedUS, newObj: certified, want: fwk.Queue},
		{name: "update that moves the node out of the residency group", pod: euPciPod, oldObj: certified, newObj: certifiedUS, want: fwk.QueueSkip},
		{
			name:   "namespace requirement still unmet",
			pod:    st.MakePod().Name("p").Namespace("payments").UID("p").Annotation(annCompliance, "hipaa").Obj(),
			oldObj: plain, newObj: st.MakeNode().Name("n").Label(defaultPrefix+"hipaa", "true").Obj(),
			want: fwk.QueueSkip,
		},
		{
			name:   "pod with a malformed annotation",
			pod:    st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "PCI").Obj(),
			oldObj: plain, newObj: certified,
			want: fwk.QueueSkip,
		},
		{
			name:   "pod in a namespace with a malformed annotation",
			pod:    st.MakePod().Name("p").Namespace("broken").UID("p").Obj(),
			oldObj: nil, newObj: certified,
			want: fwk.QueueSkip,
		},
		{name: "new object of the wrong type", pod: pciPod, oldObj: nil, newObj: pciPod, want: fwk.Queue, wantErr: true},
		{name: "old object of the wrong type", pod: pciPod, oldObj: "node", newObj: certified, want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{})
			got, err := pl.isSchedulableAfterNodeChange(logger, tt.pod, tt.oldObj, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Errorf("isSchedulableAfterNodeChange() error = %v, want error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("isSchedulableAfterNodeChange() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestIsSchedulableAfterPodUpdate(t *testing.T) {
	pending := st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "PCI").Obj()
	fixed := st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "pci-dss").Obj()
	withResidency := st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "PCI").
		Annotation(annResidency, "eu").Obj()
	bare := st.MakePod().Name("p").Namespace("default").UID("p").Obj()
	relabelled := st.MakePod().Name("p").Namespace("default").UID("p").Annotation(annCompliance, "PCI").
		Label("app", "pay").Annotation("other", "x").Obj()
	otherOld := st.MakePod().Name("q").Namespace("default").UID("q").Annotation(annCompliance, "PCI").Obj()
	otherNew := st.MakePod().Name("q").Namespace("default").UID("q").Annotation(annCompliance, "pci-dss").Obj()

	tests := []struct {
		name    string
		oldObj  interface{}
		newObj  interface{}
		want    fwk.QueueingHint
		wantErr bool
	}{
		{name: "compliance annotation changed on the pod", oldObj: pending, newObj: fixed, want: fwk.Queue},
		{name: "residency annotation added on the pod", oldObj: pending, newObj: withResidency, want: fwk.Queue},
		{name: "compliance annotation removed from the pod", oldObj: pending, newObj: bare, want: fwk.Queue},
		{name: "compliance annotation changed on another pod", oldObj: otherOld, newObj: otherNew, want: fwk.QueueSkip},
		{name: "unrelated change on the pod", oldObj: pending, newObj: relabelled, want: fwk.QueueSkip},
		{name: "no change", oldObj: pending, newObj: pending, want: fwk.QueueSkip},
		{name: "new object of the wrong type", oldObj: pending, newObj: st.MakeNode().Name("n").Obj(), want: fwk.Queue, wantErr: true},
		{name: "old object of the wrong type", oldObj: st.MakeNode().Name("n").Obj(), newObj: fixed, want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{})
			got, err := pl.isSchedulableAfterPodUpdate(logger, pending, tt.oldObj, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Errorf("isSchedulableAfterPodUpdate() error = %v, want error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("isSchedulableAfterPodUpdate() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPostBind(t *testing.T) {
	const customPrefix = "certs.example.com/"
	customArgs := defaultArgs()
	customArgs.CertificationLabelPrefix = customPrefix

	tests := []struct {
		name              string
		args              *config.ComplianceArgs
		pod               *v1.Pod
		nodes             []*v1.Node
		snapshotOnlyNodes []*v1.Node
		nodeName          string
		want              []string
	}{
		{
			name: "standards with and without expiry, and residency",
			pod: st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss,hipaa").
				Annotation(annResidency, "eu").Obj(),
			nodes: []*v1.Node{st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "2026-12-31").
				Label(defaultPrefix+"hipaa", "true").Label(defaultPrefix+"soc2", "true").Label(v1.LabelTopologyRegion, "eu-west-1").Obj()},
			nodeName: "n1",
			want: []string{"Normal CompliantPlacement node n1 holds hipaa (no expiry), pci-dss (expires 2026-12-31); " +
				"data residency eu: region eu-west-1"},
		},
		{
			name: "requirements from the namespace",
			pod:  st.MakePod().Name("p").Namespace("payments").Obj(),
			nodes: []*v1.Node{
				st.MakeNode().Name("n0").Label(defaultPrefix+"pci-dss", "true").Obj(),
				st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "2027-03-01").Obj(),
			},
			nodeName: "n1",
			want:     []string{"Normal CompliantPlacement node n1 holds pci-dss (expires 2027-03-01)"},
		},
		{
			name:     "residency only",
			pod:      st.MakePod().Name("p").Namespace("eu-data").Obj(),
			nodes:    []*v1.Node{st.MakeNode().Name("n1").Label(v1.LabelTopologyRegion, "eu-central-1").Obj()},
			nodeName: "n1",
			want:     []string{"Normal CompliantPlacement node n1; data residency eu: region eu-central-1"},
		},
		{
			name:     "custom label prefix",
			args:     &customArgs,
			pod:      st.MakePod().Name("p").Namespace("default").Annotation(annCompliance, "pci-dss").Obj(),
			nodes:    []*v1.Node{st.MakeNode().Name("n1").Label(customPrefix+"pci-dss", "true").Label(defaultPrefix+"pci-dss", "2026-12-31").Obj()},
			nodeName: "n1",
			want:     []string{"Normal CompliantPlacement node n1 holds pci-dss (no expiry)"},
		},
		{
			name:     "unregulated pod records nothing",
			pod:      st.MakePod().Name("p").Namespace("default").Obj(),
			nodes:    []*v1.Node{st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "true").Obj()},
			nodeName: "n1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			pl, recorder := newTestPlugin(ctx, t, pluginSetup{args: tt.args, nodes: tt.nodes, snapshotOnlyNodes: tt.snapshotOnlyNodes})
			state := framework.NewCycleState()
			if _, status := pl.PreFilter(ctx, state, tt.pod, nil); !status.IsSuccess() && !status.IsSkip() {
				t.Fatalf("PreFilter() = %v", status)
			}
			if status := pl.PreBind(ctx, state, tt.pod, tt.nodeName); !status.IsSuccess() {
				t.Fatalf("PreBind() = %v", status)
			}
			pl.PostBind(ctx, state, tt.pod, tt.nodeName)
			var got []string
		drain:
			for {
				select {
				case e := <-recorder.Events:
					got = append(got, e)
				default:
					break drain
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PostBind() events (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPlacementAuditNote(t *testing.T) {
	const customPrefix = "certs.example.com/"
	now := testNow
	tests := []struct {
		name   string
		req    *Requirements
		node   *v1.Node
		prefix string
		want   string
	}{
		{
			name: "standards and residency",
			req:  &Requirements{Standards: []string{"hipaa", "pci-dss"}, Residency: "eu", Regions: sets.New("eu-west-1")},
			node: st.MakeNode().Name("n1").Label(defaultPrefix+"pci-dss", "2026-12-31").Label(defaultPrefix+"hipaa", "true").
				Label(v1.LabelTopologyRegion, "eu-west-1").Obj(),
			prefix: defaultPrefix,
			want:   "node n1 holds hipaa (no expiry), pci-dss (expires 2026-12-31); data residency eu: region eu-west-1",
		},
		{
			name:   "one standard without expiry",
			req:    &Requirements{Standards: []string{"soc2"}},
			node:   st.MakeNode().Name("worker-7").Label(defaultPrefix+"soc2", "true").Label(defaultPrefix+"hipaa", "true").Obj(),
			prefix: defaultPrefix,
			want:   "node worker-7 holds soc2 (no expiry)",
		},
		{
			name:   "residency only",
			req:    &Requirements{Residency: "us", Regions: sets.New("us-east-1")},
			node:   st.MakeNode().Name("n2").Label(v1.LabelTopologyRegion, "us-east-1").Obj(),
			prefix: defaultPrefix,
			want:   "node n2; data residency us: region us-east-1",
		},
		{
			name: "residency from a custom region label",
			req:  &Requirements{Residency: "us", Regions: sets.New("us-east-1"), RegionLabel: "node-restriction.kubernetes.io/region"},
			node: st.MakeNode().Name("n2").Label(v1.LabelTopologyRegion, "eu-west-1").
				Label("node-restriction.kubernetes.io/region", "us-east-1").Obj(),
			prefix: defaultPrefix,
			want:   "node n2; data residency us: region us-east-1",
		},
		{
			name:   "no requirements",
			req:    &Requirements{},
			node:   st.MakeNode().Name("n3").Obj(),
			prefix: defaultPrefix,
			want:   "node n3",
		},
		{
			name:   "custom prefix",
			req:    &Requirements{Standards: []string{"pci-dss"}},
			node:   st.MakeNode().Name("n4").Label(customPrefix+"pci-dss", "2030-01-01").Label(defaultPrefix+"pci-dss", "true").Obj(),
			prefix: customPrefix,
			want:   "node n4 holds pci-dss (expires 2030-01-01)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newPlacementAudit(tt.req, tt.node, tt.prefix, now)
			if diff := cmp.Diff(tt.want, a.note()); diff != "" {
				t.Errorf("note() (-want,+got):\n%s", diff)
			}
			if !a.checkedAt.Equal(now) {
				t.Errorf("checkedAt = %v, want %v", a.checkedAt, now)
			}
		})
	}
}

func TestIsSchedulableAfterNamespaceChange(t *testing.T) {
	pod := st.MakePod().Name("p").Namespace("payments").UID("p").Obj()
	ns := func(name string, ann map[string]string) *v1.Namespace {
		return &v1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann}}
	}
	unstructuredNS := func(n *v1.Namespace) interface{} {
		obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(n)
		if err != nil {
			t.Fatal(err)
		}
		return &unstructured.Unstructured{Object: obj}
	}
	broken := ns("payments", map[string]string{annCompliance: "PCI"})
	fixed := ns("payments", map[string]string{annCompliance: "pci-dss"})
	relabelled := ns("payments", map[string]string{annCompliance: "PCI", "team": "x"})
	tests := []struct {
		name           string
		oldObj, newObj interface{}
		want           fwk.QueueingHint
		wantErr        bool
	}{
		{name: "pod's namespace created", newObj: fixed, want: fwk.Queue},
		{name: "pod's namespace annotation fixed", oldObj: broken, newObj: fixed, want: fwk.Queue},
		{name: "unstructured, as from a dynamic informer", oldObj: unstructuredNS(broken), newObj: unstructuredNS(fixed), want: fwk.Queue},
		{name: "residency added", oldObj: fixed, newObj: ns("payments", map[string]string{annCompliance: "pci-dss", annResidency: "eu"}), want: fwk.Queue},
		{name: "unrelated change", oldObj: broken, newObj: relabelled, want: fwk.QueueSkip},
		{name: "another namespace", oldObj: ns("other", nil), newObj: ns("other", map[string]string{annCompliance: "x"}), want: fwk.QueueSkip},
		{name: "wrong type", oldObj: nil, newObj: st.MakeNode().Name("n").Obj(), want: fwk.Queue, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logger, ctx := ktesting.NewTestContext(t)
			pl, _ := newTestPlugin(ctx, t, pluginSetup{})
			got, err := pl.isSchedulableAfterNamespaceChange(logger, pod, tt.oldObj, tt.newObj)
			if (err != nil) != tt.wantErr {
				t.Errorf("error = %v, want error: %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("isSchedulableAfterNamespaceChange() (-want,+got):\n%s", diff)
			}
		})
	}
}
