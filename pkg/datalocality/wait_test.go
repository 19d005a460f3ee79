package datalocality

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

func TestLocalityWait(t *testing.T) {
	tests := []struct {
		name    string
		value   *string
		def     time.Duration
		want    time.Duration
		wantErr string
	}{
		{name: "no annotation takes the default", def: 20 * time.Second, want: 20 * time.Second},
		{name: "the annotation wins over the default", value: ptr("30s"), def: 20 * time.Second, want: 30 * time.Second},
		{name: "zero turns the wait off", value: ptr("0"), def: 20 * time.Second, want: 0},
		{name: "minutes", value: ptr("2m"), want: 2 * time.Minute},
		{name: "not a duration", value: ptr("30"), wantErr: `invalid locus.dev/locality-wait "30": want a duration such as 30s or 2m`},
		{name: "negative", value: ptr("-5s"), wantErr: `invalid locus.dev/locality-wait "-5s"`},
		{name: "empty", value: ptr(""), wantErr: `invalid locus.dev/locality-wait ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := dataPod("")
			if tt.value != nil {
				w = w.Annotation(annWait, *tt.value)
			}
			got, err := LocalityWait(w.Obj(), tt.def)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("wait = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStepAt(t *testing.T) {
	all := []Level{LevelNode, LevelZone, LevelRegion}
	tests := []struct {
		name    string
		present []Level
		wait    time.Duration
		elapsed time.Duration
		want    Step
	}{
		{name: "no wait", present: all, wait: 0, want: Step{Allowed: LevelNone, Next: LevelNone}},
		{name: "no data", present: nil, wait: time.Minute, want: Step{Allowed: LevelNone, Next: LevelNone}},
		{name: "first attempt: the node only", present: all, wait: 30 * time.Second, want: Step{Allowed: LevelNode, Next: LevelZone, Left: 30 * time.Second}},
		{name: "within the first wait", present: all, wait: 30 * time.Second, elapsed: 29 * time.Second, want: Step{Allowed: LevelNode, Next: LevelZone, Left: time.Second}},
		{name: "second wait: the zone too", present: all, wait: 30 * time.Second, elapsed: 30 * time.Second, want: Step{Allowed: LevelZone, Next: LevelRegion, Left: 30 * time.Second}},
		{name: "third wait: the region too", present: all, wait: 30 * time.Second, elapsed: 75 * time.Second, want: Step{Allowed: LevelRegion, Next: LevelNone, Left: 15 * time.Second}},
		{name: "after every level: any node", present: all, wait: 30 * time.Second, elapsed: 90 * time.Second, want: Step{Allowed: LevelNone, Next: LevelNone}},
		{name: "absent levels are skipped", present: []Level{LevelNode, LevelRegion}, wait: 10 * time.Second, elapsed: 12 * time.Second, want: Step{Allowed: LevelRegion, Next: LevelNone, Left: 8 * time.Second}},
		{name: "zone data only", present: []Level{LevelZone}, wait: 10 * time.Second, elapsed: 3 * time.Second, want: Step{Allowed: LevelZone, Next: LevelNone, Left: 7 * time.Second}},
		{name: "a clock that went back counts as no time", present: all, wait: 10 * time.Second, elapsed: -time.Second, want: Step{Allowed: LevelNode, Next: LevelZone, Left: 11 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, StepAt(tt.present, tt.wait, tt.elapsed)); diff != "" {
				t.Errorf("StepAt() (-want,+got):\n%s", diff)
			}
		})
	}
}

func TestStepReason(t *testing.T) {
	tests := []struct {
		step Step
		want string
	}{
		{step: Step{Allowed: LevelNode, Next: LevelZone, Left: 4230 * time.Millisecond}, want: "locality wait: 4.2s left for node-level locality, then zone"},
		{step: Step{Allowed: LevelZone, Next: LevelNone, Left: time.Minute}, want: "locality wait: 1m0s left for zone-level locality, then any node"},
	}
	for _, tt := range tests {
		if got := tt.step.Reason(); got != tt.want {
			t.Errorf("Reason() = %q, want %q", got, tt.want)
		}
	}
}

func TestPresentLevels(t *testing.T) {
	nodes := testNodes()
	infos := make([]fwk.NodeInfo, 0, len(nodes))
	for _, n := range nodes {
		infos = append(infos, nodeInfo(n))
	}
	tests := []struct {
		name string
		data *Data
		want []Level
	}{
		{
			name: "every level",
			data: &Data{Nodes: map[string]int64{"n1": 1}, Zones: map[string]int64{"a": 1}, Regions: map[string]int64{"r1": 1}},
			want: []Level{LevelNode, LevelZone, LevelRegion},
		},
		{
			name: "data on a node that is gone does not count",
			data: &Data{Nodes: map[string]int64{"gone": 1}, Zones: map[string]int64{"b": 1}},
			want: []Level{LevelZone},
		},
		{
			name: "a zone whose only node holds the data is no separate level",
			data: &Data{Nodes: map[string]int64{"n3": 1}, Zones: map[string]int64{"b": 1}, Regions: map[string]int64{"r2": 1}},
			want: []Level{LevelNode, LevelRegion},
		},
		{name: "a region without nodes", data: &Data{Regions: map[string]int64{"mars": 1}}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, presentLevels(tt.data, infos)); diff != "" {
				t.Errorf("presentLevels() (-want,+got):\n%s", diff)
			}
		})
	}
}

func nodeInfo(n *v1.Node) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

func ptr[T any](v T) *T { return &v }
