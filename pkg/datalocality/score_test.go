package datalocality

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	"k8s.io/component-base/metrics/testutil"
	"k8s.io/klog/v2/ktesting"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"locus.dev/locus/apis/config"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/metrics"
)

func TestScore(t *testing.T) {
	tests := []struct {
		name string
		pod  *v1.Pod
		args *config.DataLocalityArgs
		// skipPreFilter runs PreScore without PreFilter's state, as in a
		// profile that enables DataLocality for scoring only.
		skipPreFilter   bool
		wantPreScore    *fwk.Status
		wantScores      map[string]int64
		wantNormalized  map[string]int64
		wantEventsCount int
	}{
		{name: "a pod that reads no data skips Score", pod: dataPod("").Obj(), wantPreScore: fwk.NewStatus(fwk.Skip)},
		{
			name:            "an unknown dataset is neutral: Score is skipped",
			pod:             dataPod("nope").Obj(),
			wantPreScore:    fwk.NewStatus(fwk.Skip),
			wantEventsCount: 1,
		},
		{
			// n1: 100Gi + 0.5*1Ti + 0.1*2Ti; n2: 0.5*1Ti + 0.1*2Ti; n3: 0.1*2Ti.
			name:           "bytes on the node, in its zone, in its region",
			pod:            dataPod("cached").Obj(),
			wantScores:     map[string]int64{"n1": 877032321843, "n2": 769658139443, "n3": 219902325555, "n4": 0, "n5": 0},
			wantNormalized: map[string]int64{"n1": 100, "n2": 88, "n3": 25, "n4": 0, "n5": 0},
		},
		{
			name:           "weights are args",
			pod:            dataPod("cached").Obj(),
			args:           &config.DataLocalityArgs{ZoneWeight: 1, RegionWeight: 0},
			wantScores:     map[string]int64{"n1": 1206885810176, "n2": ti, "n3": 0, "n4": 0, "n5": 0},
			wantNormalized: map[string]int64{"n1": 100, "n2": 91, "n3": 0, "n4": 0, "n5": 0},
		},
		{
			name:            "datasets and volumes add up; an unknown one among them is ignored",
			pod:             dataPod("zonal,nope").PVC("local").Obj(),
			skipPreFilter:   true,
			wantScores:      map[string]int64{"n1": 0, "n2": 0, "n3": ti / 2, "n4": 0, "n5": 50 * gi},
			wantNormalized:  map[string]int64{"n1": 0, "n2": 0, "n3": 100, "n4": 0, "n5": 10},
			wantEventsCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{args: tt.args})
			state := framework.NewCycleState()
			if !tt.skipPreFilter {
				p.PreFilter(ctx, state, tt.pod, nodeInfos())
			}
			status := p.PreScore(ctx, state, tt.pod, nodeInfos())
			if diff := cmp.Diff(tt.wantPreScore, status); diff != "" {
				t.Fatalf("PreScore() (-want,+got):\n%s", diff)
			}
			if got := len(p.events()); got != tt.wantEventsCount {
				t.Errorf("%d events, want %d", got, tt.wantEventsCount)
			}
			if !status.IsSuccess() {
				return
			}
			var scores framework.NodeScoreList
			gotScores := map[string]int64{}
			for _, n := range testNodes() {
				s, st := p.Score(ctx, state, tt.pod, nodeInfo(n))
				if !st.IsSuccess() {
					t.Fatalf("Score(%s) = %v", n.Name, st)
				}
				gotScores[n.Name] = s
				scores = append(scores, framework.NodeScore{Name: n.Name, Score: s})
			}
			if diff := cmp.Diff(tt.wantScores, gotScores); diff != "" {
				t.Errorf("Score() (-want,+got):\n%s", diff)
			}
			if st := p.NormalizeScore(ctx, state, tt.pod, scores); !st.IsSuccess() {
				t.Fatal(st)
			}
			gotNormalized := map[string]int64{}
			for _, s := range scores {
				gotNormalized[s.Name] = s.Score
			}
			if diff := cmp.Diff(tt.wantNormalized, gotNormalized); diff != "" {
				t.Errorf("NormalizeScore() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestNormalizeScore(t *testing.T) {
	tests := []struct {
		name         string
		scores, want []int64
	}{
		{name: "no node near the data: all equal", scores: []int64{0, 0, 0}, want: []int64{0, 0, 0}},
		{name: "scaled to the highest", scores: []int64{10, 5, 0}, want: []int64{100, 50, 0}},
		{name: "exabytes do not overflow", scores: []int64{1 << 62, 1 << 61}, want: []int64{100, 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			var list framework.NodeScoreList
			for i, s := range tt.scores {
				list = append(list, framework.NodeScore{Name: string(rune('a' + i)), Score: s})
			}
			if st := p.NormalizeScore(ctx, nil, nil, list); !st.IsSuccess() {
				t.Fatal(st)
			}
			var got []int64
			for _, s := range list {
				got = append(got, s.Score)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("NormalizeScore() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestPostBind(t *testing.T) {
	tests := []struct {
		name      string
		pod       *v1.Pod
		node      string
		wantLevel string // "" for no count
		// wantEvent: a LocalityPlacement event, for a pod that got no
		// locality though its data has a location.
		wantEvent bool
	}{
		{name: "on the node with the data", pod: dataPod("cached").Obj(), node: "n1", wantLevel: metrics.LevelNode},
		{name: "in the data's zone", pod: dataPod("cached").Obj(), node: "n2", wantLevel: metrics.LevelZone},
		{name: "in the data's region", pod: dataPod("cached").Obj(), node: "n3", wantLevel: metrics.LevelRegion},
		{name: "far from the data", pod: dataPod("cached").Obj(), node: "n4", wantLevel: metrics.LevelNone, wantEvent: true},
		{name: "in the zone of data that has no node location", pod: dataPod("zonal").Obj(), node: "n3", wantLevel: metrics.LevelZone},
		{name: "a pod whose Datasets are unknown", pod: dataPod("nope").Obj(), node: "n4", wantLevel: metrics.LevelNone},
		{name: "a node-local volume", pod: dataPod("").PVC("local").Obj(), node: "n5", wantLevel: metrics.LevelNode},
		{name: "a pod that reads no data is not counted", pod: dataPod("").Obj(), node: "n1"},
		{name: "a pod whose volume has no location is not counted", pod: dataPod("").PVC("network").Obj(), node: "n1"},
	}
	levels := []string{metrics.LevelNode, metrics.LevelZone, metrics.LevelRegion, metrics.LevelNone}
	counts := func(t *testing.T) map[string]float64 {
		m := map[string]float64{}
		for _, l := range levels {
			v, err := testutil.GetCounterMetricValue(metrics.LocalityPlacements.WithLabelValues(l))
			if err != nil {
				t.Fatal(err)
			}
			m[l] = v
		}
		return m
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ctx := ktesting.NewTestContext(t)
			p := newTestPlugin(ctx, t, pluginSetup{})
			state := framework.NewCycleState()
			p.PreFilter(ctx, state, tt.pod, nodeInfos())
			p.PreScore(ctx, state, tt.pod, nodeInfos())
			before := counts(t)
			p.PostBind(ctx, state, tt.pod, tt.node)
			after := counts(t)
			want := map[string]float64{}
			for _, l := range levels {
				want[l] = before[l]
			}
			if tt.wantLevel != "" {
				want[tt.wantLevel]++
			}
			if diff := cmp.Diff(want, after); diff != "" {
				t.Errorf("placements by level (-want,+got):\n%s", diff)
			}
			var placed []string
			for _, e := range p.events() {
				if strings.Contains(e, locusv1alpha1.EventReasonLocalityPlacement) {
					placed = append(placed, e)
				}
			}
			if got := len(placed) > 0; got != tt.wantEvent {
				t.Errorf("LocalityPlacement events %q, want one: %v", placed, tt.wantEvent)
			}
		})
	}
}
