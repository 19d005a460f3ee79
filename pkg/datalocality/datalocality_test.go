package datalocality

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	internalcache "k8s.io/kubernetes/pkg/scheduler/backend/cache"
	"k8s.io/kubernetes/pkg/scheduler/framework"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"
	testingclock "k8s.io/utils/clock/testing"

	"locus.dev/locus/apis/config"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	locusfake "locus.dev/locus/pkg/generated/clientset/versioned/fake"
)

var testNow = time.Date(2026, 2, 15, 12, 0, 0, 0, time.UTC)

func defaultArgs() config.DataLocalityArgs {
	return config.DataLocalityArgs{ZoneWeight: 0.5, RegionWeight: 0.1}
}

// activator records the pods that the plugin moves back to the active queue.
type activator struct {
	mu   sync.Mutex
	pods []string
}

func (a *activator) Activate(_ klog.Logger, pods map[string]*v1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key := range pods {
		a.pods = append(a.pods, key)
	}
}

func (a *activator) activated() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.pods...)
}

type testPlugin struct {
	*DataLocality
	recorder  *events.FakeRecorder
	activator *activator
	clock     *testingclock.FakeClock
	client    *fake.Clientset
}

type pluginSetup struct {
	// args defaults to defaultArgs().
	args *config.DataLocalityArgs
	// pods are in the pod informer.
	pods []*v1.Pod
}

// newTestPlugin builds the plugin through a real framework handle whose
// informers are backed by fake clientsets holding testNodes, testDatasets,
// testVolumes and the setup's pods.
func newTestPlugin(ctx context.Context, t testing.TB, s pluginSetup) *testPlugin {
	t.Helper()
	args := defaultArgs()
	if s.args != nil {
		args = *s.args
	}
	var objs []runtime.Object
	for _, n := range testNodes() {
		objs = append(objs, n)
	}
	pvcs, pvs := testVolumes()
	for _, o := range pvcs {
		objs = append(objs, o)
	}
	for _, o := range pvs {
		objs = append(objs, o)
	}
	for _, o := range s.pods {
		objs = append(objs, o)
	}
	var dsObjs []runtime.Object
	for _, ds := range testDatasets() {
		dsObjs = append(dsObjs, ds)
	}
	client := fake.NewClientset(objs...)
	informerFactory := informers.NewSharedInformerFactory(client, 0)
	recorder := events.NewFakeRecorder(100)
	act := &activator{}
	snapshot := internalcache.NewSnapshot(nil, testNodes())
	ctx, cancel := context.WithCancel(ctx)
	fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
		frameworkruntime.WithSnapshotSharedLister(snapshot),
		frameworkruntime.WithInformerFactory(informerFactory),
		frameworkruntime.WithEventRecorder(recorder),
		frameworkruntime.WithPodActivator(act),
	)
	if err != nil {
		cancel()
		t.Fatalf("NewFramework: %v", err)
	}
	clk := testingclock.NewFakeClock(testNow)
	pl := newPlugin(ctx, args, fh, locusfake.NewSimpleClientset(dsObjs...), clk)
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
	return &testPlugin{DataLocality: pl, recorder: recorder, activator: act, clock: clk, client: client}
}

func nodeInfos() []fwk.NodeInfo {
	var infos []fwk.NodeInfo
	for _, n := range testNodes() {
		infos = append(infos, nodeInfo(n))
	}
	return infos
}

func (p *testPlugin) events() []string {
	var got []string
	for {
		select {
		case e := <-p.recorder.Events:
			got = append(got, e)
		default:
			return got
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name       string
		args       runtime.Object
		kubeConfig *rest.Config
		wantErr    string
	}{
		{name: "valid args", args: ptr(defaultArgs()), kubeConfig: &rest.Config{Host: "https://127.0.0.1:6443"}},
		{name: "wrong args type", args: &config.ComplianceArgs{}, wantErr: "DataLocalityArgs"},
		{name: "invalid args name the field", args: &config.DataLocalityArgs{ZoneWeight: 2}, wantErr: "zoneWeight: Invalid value: 2: must be between 0 and 1"},
		{name: "no kubeconfig to read Datasets with", args: ptr(defaultArgs()), wantErr: "kubeconfig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			informerFactory := informers.NewSharedInformerFactory(fake.NewClientset(), 0)
			fh, err := frameworkruntime.NewFramework(ctx, nil, nil,
				frameworkruntime.WithInformerFactory(informerFactory), frameworkruntime.WithKubeConfig(tt.kubeConfig))
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

func TestPreFilter(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		// defaultWait is the args' defaultLocalityWait.
		defaultWait time.Duration
		// elapsed passes between a first PreFilter and the one checked.
		elapsed    time.Duration
		wantStatus *fwk.Status
		// wantData and wantStep are the state stored for Filter, if any.
		wantData *Data
		wantStep Step
		// wantNodes is the PreFilterResult: nil for all nodes.
		wantNodes []string
	}{
		{name: "a pod that reads no data skips", pod: dataPod("").Obj(), wantStatus: fwk.NewStatus(fwk.Skip)},
		{
			name:       "no locality wait skips Filter but keeps the data for Score",
			pod:        dataPod("zonal").Obj(),
			wantStatus: fwk.NewStatus(fwk.Skip),
			wantData:   &Data{Zones: map[string]int64{"b": ti}},
			wantStep:   noWait,
		},
		{
			name:       "a malformed wait is unresolvable and names the value",
			pod:        dataPod("zonal").Annotation(annWait, "soon").Obj(),
			wantStatus: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, `invalid locus.dev/locality-wait "soon": want a duration such as 30s or 2m`),
		},
		{
			name:       "a malformed wait fails even for a pod without data",
			pod:        dataPod("").Annotation(annWait, "5").Obj(),
			wantStatus: fwk.NewStatus(fwk.UnschedulableAndUnresolvable, `invalid locus.dev/locality-wait "5": want a duration such as 30s or 2m`),
		},
		{
			name:      "at first, only the node with the data",
			pod:       dataPod("cached").Annotation(annWait, "30s").Obj(),
			wantData:  testData("cached"),
			wantStep:  Step{Allowed: LevelNode, Next: LevelZone, Left: 30 * time.Second},
			wantNodes: []string{"n1"},
		},
		{
			name:        "the default wait applies without the annotation",
			pod:         dataPod("cached").Obj(),
			defaultWait: 10 * time.Second,
			elapsed:     4 * time.Second,
			wantData:    testData("cached"),
			wantStep:    Step{Allowed: LevelNode, Next: LevelZone, Left: 6 * time.Second},
			wantNodes:   []string{"n1"},
		},
		{
			name:     "after one wait, the zone",
			pod:      dataPod("cached").Annotation(annWait, "30s").Obj(),
			elapsed:  40 * time.Second,
			wantData: testData("cached"),
			wantStep: Step{Allowed: LevelZone, Next: LevelRegion, Left: 20 * time.Second},
		},
		{
			name:       "after every level, any node: Filter is skipped",
			pod:        dataPod("cached").Annotation(annWait, "30s").Obj(),
			elapsed:    90 * time.Second,
			wantStatus: fwk.NewStatus(fwk.Skip),
			wantData:   testData("cached"),
			wantStep:   noWait,
		},
		{
			name:     "data cached on a node that is gone: the wait starts at the zone",
			pod:      dataPod("stale-cache").Annotation(annWait, "30s").Obj(),
			wantData: testData("stale-cache"),
			wantStep: Step{Allowed: LevelZone, Next: LevelNone, Left: 30 * time.Second},
		},
		{
			name:       "a wait for data that does not exist is no wait",
			pod:        dataPod("nope").Annotation(annWait, "30s").Obj(),
			wantStatus: fwk.NewStatus(fwk.Skip),
			wantData:   &Data{},
			wantStep:   noWait,
		},
		{
			name:     "a bound volume makes the pod wait for its zone",
			pod:      dataPod("").PVC("zonal").Annotation(annWait, "1m").Obj(),
			wantData: &Data{Zones: map[string]int64{"c": 200 * gi}},
			wantStep: Step{Allowed: LevelZone, Next: LevelNone, Left: time.Minute},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			args := defaultArgs()
			args.DefaultLocalityWait = metav1.Duration{Duration: tt.defaultWait}
			p := newTestPlugin(ctx, t, pluginSetup{args: &args})
			if tt.elapsed > 0 {
				p.PreFilter(ctx, framework.NewCycleState(), tt.pod, nodeInfos())
				p.clock.Step(tt.elapsed)
			}
			state := framework.NewCycleState()
			res, status := p.PreFilter(ctx, state, tt.pod, nodeInfos())
			if diff := cmp.Diff(tt.wantStatus, status); diff != "" {
				t.Errorf("status (-want,+got):\n%s", diff)
			}
			var gotNodes []string
			if !res.AllNodes() {
				gotNodes = sets.List(res.NodeNames)
			}
			if diff := cmp.Diff(tt.wantNodes, gotNodes); diff != "" {
				t.Errorf("PreFilterResult nodes (-want,+got):\n%s", diff)
			}
			var gotData *Data
			var gotStep Step
			if c, err := state.Read(preFilterStateKey); err == nil {
				gotData, gotStep = c.(*preFilterState).data, c.(*preFilterState).step
			}
			if diff := cmp.Diff(tt.wantData, gotData); diff != "" {
				t.Errorf("data (-want,+got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantStep, gotStep); diff != "" {
				t.Errorf("step (-want,+got):\n%s", diff)
			}
		})
	}
}

// testData is the Data of one of testDatasets.
func testData(name string) *Data {
	d := &Data{}
	for _, ds := range testDatasets() {
		if ds.Name == name {
			d.addDataset(ds)
		}
	}
	return d
}

func TestFilter(t *testing.T) {
	reason := "locality wait: 20s left for zone-level locality, then region"
	state := func(step Step) *preFilterState {
		return &preFilterState{data: testData("cached"), step: step, reason: step.Reason()}
	}
	tests := []struct {
		name  string
		state *preFilterState
		node  *v1.Node
		want  *fwk.Status
	}{
		{name: "the node with the data", state: state(Step{Allowed: LevelNode, Next: LevelZone, Left: time.Second}), node: testNodes()[0]},
		{
			name:  "a node in the data's zone while the pod waits for the node",
			state: state(Step{Allowed: LevelNode, Next: LevelZone, Left: 1500 * time.Millisecond}),
			node:  testNodes()[1],
			want:  fwk.NewStatus(fwk.Unschedulable, "locality wait: 1.5s left for node-level locality, then zone"),
		},
		{name: "a node in the zone once the zone is allowed", state: state(Step{Allowed: LevelZone, Next: LevelRegion, Left: 20 * time.Second}), node: testNodes()[1]},
		{name: "the node is also fine later", state: state(Step{Allowed: LevelZone, Next: LevelRegion, Left: 20 * time.Second}), node: testNodes()[0]},
		{
			name:  "a node only in the data's region",
			state: state(Step{Allowed: LevelZone, Next: LevelRegion, Left: 20 * time.Second}),
			node:  testNodes()[2],
			want:  fwk.NewStatus(fwk.Unschedulable, reason),
		},
		{
			name:  "a node far from the data",
			state: state(Step{Allowed: LevelRegion, Next: LevelNone, Left: 3 * time.Second}),
			node:  testNodes()[3],
			want:  fwk.NewStatus(fwk.Unschedulable, "locality wait: 3s left for region-level locality, then any node"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			cs := framework.NewCycleState()
			cs.Write(preFilterStateKey, tt.state)
			got := p.Filter(ctx, cs, dataPod("cached").Obj(), nodeInfo(tt.node))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Filter() (-want,+got):\n%s", diff)
			}
		})
	}

	t.Run("without PreFilter state", func(t *testing.T) {
		_, ctx := ktesting.NewTestContext(t)
		p := newTestPlugin(ctx, t, pluginSetup{})
		got := p.Filter(ctx, framework.NewCycleState(), dataPod("cached").Obj(), nodeInfo(testNodes()[0]))
		if got.Code() != fwk.Error {
			t.Errorf("Filter() = %v, want an error", got)
		}
	})
}

func TestDatasetNotFoundOncePerPod(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestPlugin(ctx, t, pluginSetup{})
	pod := dataPod("nope,cached,also-nope").Annotation(annWait, "1m").Obj()
	for cycle := 0; cycle < 3; cycle++ {
		state := framework.NewCycleState()
		p.PreFilter(ctx, state, pod, nodeInfos())
		for _, n := range testNodes() {
			p.Filter(ctx, state, pod, nodeInfo(n))
		}
		p.PreScore(ctx, state, pod, nodeInfos())
	}
	want := []string{"Warning DatasetNotFound Dataset nope, also-nope not found in namespace ml; it does not affect placement"}
	if diff := cmp.Diff(want, p.events()); diff != "" {
		t.Errorf("events (-want,+got):\n%s", diff)
	}
	// Another pod that names the same Datasets gets its own event.
	other := dataPod("nope").UID("other").Name("other").Obj()
	p.PreFilter(ctx, framework.NewCycleState(), other, nodeInfos())
	if got := p.events(); len(got) != 1 || !strings.Contains(got[0], locusv1alpha1.EventReasonDatasetNotFound+" Dataset nope not found") {
		t.Errorf("events of a second pod = %q, want one DatasetNotFound for nope", got)
	}
}

// While a pod waits for locality, PostFilter gives the wait's reason (the
// framework reports the nodes PreFilter left out without it); otherwise it
// adds nothing. It never makes the pod schedulable.
func TestPostFilterSaysThePodWaits(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	p := newTestPlugin(ctx, t, pluginSetup{})
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		want *fwk.Status
	}{
		{name: "waiting", pod: dataPod("cached").Annotation(annWait, "30s").Obj(),
			want: fwk.NewStatus(fwk.Unschedulable, Step{Allowed: LevelNode, Next: LevelZone, Left: 30 * time.Second}.Reason())},
		{name: "not waiting", pod: dataPod("cached").Obj(), want: fwk.NewStatus(fwk.Unschedulable)},
		{name: "no data", pod: dataPod("").Obj(), want: fwk.NewStatus(fwk.Unschedulable)},
	} {
		state := framework.NewCycleState()
		p.PreFilter(ctx, state, tc.pod, nodeInfos())
		res, got := p.PostFilter(ctx, state, tc.pod, nil)
		if res != nil {
			t.Errorf("%s: PostFilter result %v, want none", tc.name, res)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: PostFilter status (-want,+got):\n%s", tc.name, diff)
		}
	}
}
