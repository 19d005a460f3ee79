package datalocality

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"locus.dev/locus/apis/config"
	"locus.dev/locus/apis/config/validation"
	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	locuslisters "locus.dev/locus/pkg/generated/listers/locus/v1alpha1"
)

// fuzzLocations decodes a Dataset's locations from spec: entries separated
// by ";", each "K:NAME=BYTES" where K is n (node), z (zone), r (region), a
// (all three set: the CRD refuses it, the plugin must not care) or anything
// else (none set). Bytes that do not parse are zero. The entries are
// repeated `repeat` more times (names suffixed from the second round on, up
// to about 10,000 locations), so that a short input can make thousands.
func fuzzLocations(spec string, repeat int) []locusv1alpha1.DatasetLocation {
	var locs []locusv1alpha1.DatasetLocation
	entries := strings.Split(spec, ";")
	// At most about 10,000 locations: more only slows the fuzzer down.
	repeat = min(repeat, 10240/len(entries))
	for round := 0; round <= repeat; round++ {
		for _, e := range entries {
			kind, rest, _ := strings.Cut(e, ":")
			name, amount, _ := strings.Cut(rest, "=")
			if round > 0 {
				name = fmt.Sprintf("%s-%d", name, round)
			}
			q, err := resource.ParseQuantity(amount)
			if err != nil {
				q = resource.Quantity{}
			}
			l := locusv1alpha1.DatasetLocation{Bytes: q}
			switch kind {
			case "n":
				l.Node = name
			case "z":
				l.Zone = name
			case "r":
				l.Region = name
			case "a":
				l.Node, l.Zone, l.Region = name, name, name
			}
			locs = append(locs, l)
		}
	}
	return locs
}

// wantBytes is what a Dataset's locations add up to, by level and key,
// computed apart from the plugin: a location counts at its first named
// level (node, zone, region), positive amounts only, summed without
// wrapping and capped at math.MaxInt64.
func wantBytes(locs []locusv1alpha1.DatasetLocation) [3]map[string]float64 {
	want := [3]map[string]float64{{}, {}, {}}
	for _, l := range locs {
		if l.Bytes.Sign() <= 0 {
			continue
		}
		// In floating point: it neither wraps nor saturates.
		b := l.Bytes.AsApproximateFloat64()
		switch {
		case l.Node != "":
			want[0][l.Node] += b
		case l.Zone != "":
			want[1][l.Zone] += b
		case l.Region != "":
			want[2][l.Region] += b
		}
	}
	return want
}

// FuzzDataset: a Dataset of any content (names, levels, amounts negative,
// fractional or far beyond int64, entries that name several levels or none,
// thousands of entries) goes through the plugin's data paths (gathering
// from the lister, addDataset, Bytes, LevelOf, Score, NormalizeScore,
// PlacementNote, the locality wait's levels and the nodes holding the
// data): no panic, every amount positive and no smaller than declared
// (capped at math.MaxInt64), levels in range, scores finite and never
// negative, normalized scores in 0..100. There is no Dataset validation in
// Go: the CRD's schema (at most 512 locations, one level each, names of 1
// to 253 or 63 characters, a quantity pattern) is the API server's. The
// seeds run with every `go test`; `make fuzz` runs it for longer.
func FuzzDataset(f *testing.F) {
	f.Add("n:n1=100Gi;z:a=1Ti;r:r1=2Ti", "n1", "a", "r1", uint16(0), 0.5, 0.1)
	f.Add("n:n1=-5;z:a=-1Ti;r:r1=0", "n1", "a", "r1", uint16(0), 0.5, 0.1)
	f.Add("n:n1=9223372036854775807;n:n1=9223372036854775807;z:a=8Ei", "n1", "a", "", uint16(3), 1.0, 1.0)
	f.Add("n:n1=9223372036854775808;z:a=1e30;r:r1=999999999999999999999999Ei", "n1", "a", "r1", uint16(0), 0.5, 0.1)
	f.Add("n:n1=1n;z:a=0.5;r:r1=1m", "n1", "a", "r1", uint16(0), 0.5, 0.1)
	f.Add("a:x=1Gi;q:y=1Gi;n:=1Gi;z:=2;r:=3", "x", "x", "x", uint16(0), 0.5, 0.1)
	f.Add("n:node=1Gi;z:zone=1Gi;r:region=1Gi", "node", "zone", "region", uint16(3333), 0.5, 0.1)
	f.Add("n:n1=not-a-number;z:a=1Zi;r:r1=1e", "n1", "a", "r1", uint16(0), math.NaN(), math.Inf(1))
	f.Fuzz(func(t *testing.T, spec, nodeName, zoneName, regionName string, repeat uint16, zoneWeight, regionWeight float64) {
		args := config.DataLocalityArgs{ZoneWeight: zoneWeight, RegionWeight: regionWeight}
		if err := validation.ValidateDataLocalityArgs(nil, &args); err != nil {
			args = defaultArgs()
		}
		locs := fuzzLocations(spec, int(repeat%4096))
		ds := &locusv1alpha1.Dataset{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNS, Name: "fuzzed"},
			Spec:       locusv1alpha1.DatasetSpec{URI: spec, Locations: locs},
		}
		indexer := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		if err := indexer.Add(ds); err != nil {
			t.Fatal(err)
		}
		empty := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
		g := &gatherer{
			datasets: locuslisters.NewDatasetLister(indexer),
			claims:   corelisters.NewPersistentVolumeClaimLister(empty),
			volumes:  corelisters.NewPersistentVolumeLister(empty),
		}
		pod := dataPod("fuzzed, absent").Obj()
		d, missing := g.gather(pod)
		if len(missing) != 1 || missing[0] != "absent" {
			t.Fatalf("missing = %q, want [absent]", missing)
		}

		// Every amount is positive, and no smaller than declared.
		want := wantBytes(locs)
		for i, m := range []map[string]int64{d.Nodes, d.Zones, d.Regions} {
			for k, b := range m {
				if b <= 0 {
					t.Fatalf("level %d key %q holds %d bytes", i, k, b)
				}
			}
			for k, w := range want[i] {
				if w < 1 {
					w = 1 // a fraction of a byte counts as one
				}
				got := float64(m[k])
				if got < math.Min(w, float64(math.MaxInt64))*(1-1e-9) {
					t.Fatalf("level %d key %q holds %d bytes, want about %g", i, k, m[k], w)
				}
			}
		}
		if len(d.Hostnames) != 0 {
			t.Fatalf("a Dataset made hostname entries: %v", d.Hostnames)
		}

		// Nodes: the fuzzed one, and one at each declared name.
		nodes := []*v1.Node{node(nodeName, zoneName, regionName), node("plain", "", "")}
		for _, l := range locs {
			if len(nodes) >= 8 {
				break
			}
			switch {
			case l.Node != "":
				nodes = append(nodes, node(l.Node, "", ""))
			case l.Zone != "":
				nodes = append(nodes, node("in-"+l.Zone, l.Zone, ""))
			case l.Region != "":
				nodes = append(nodes, node("in-"+l.Region, "", l.Region))
			}
		}
		var infos []fwk.NodeInfo
		for _, n := range nodes {
			infos = append(infos, nodeInfo(n))
		}

		pl := &DataLocality{args: args}
		ctx := context.Background()
		state := framework.NewCycleState()
		state.Write(preScoreStateKey, &preScoreState{data: d})
		var scores framework.NodeScoreList
		for _, n := range nodes {
			onNode, inZone, inRegion := d.Bytes(n)
			if onNode < 0 || inZone < 0 || inRegion < 0 {
				t.Fatalf("Bytes(%s) = %d, %d, %d: negative", n.Name, onNode, inZone, inRegion)
			}
			level := d.LevelOf(n)
			wantLevel := LevelNone
			switch {
			case onNode > 0:
				wantLevel = LevelNode
			case inZone > 0:
				wantLevel = LevelZone
			case inRegion > 0:
				wantLevel = LevelRegion
			}
			if level != wantLevel {
				t.Fatalf("LevelOf(%s) = %v with bytes %d, %d, %d", n.Name, level, onNode, inZone, inRegion)
			}
			raw := d.Score(n, args.ZoneWeight, args.RegionWeight)
			if math.IsNaN(raw) || math.IsInf(raw, 0) || raw < 0 {
				t.Fatalf("Data.Score(%s) = %v", n.Name, raw)
			}
			s, status := pl.Score(ctx, state, pod, nodeInfo(n))
			if !status.IsSuccess() || s < 0 {
				t.Fatalf("Score(%s) = %d, %v", n.Name, s, status)
			}
			if raw >= 1 && s <= 0 {
				t.Fatalf("Score(%s) = %d from %v", n.Name, s, raw)
			}
			scores = append(scores, framework.NodeScore{Name: n.Name, Score: s})
			if note := PlacementNote(d, n, level); note == "" || !strings.Contains(note, n.Name) {
				t.Fatalf("PlacementNote(%s) = %q", n.Name, note)
			}
		}
		if status := pl.NormalizeScore(ctx, state, pod, scores); !status.IsSuccess() {
			t.Fatalf("NormalizeScore: %v", status)
		}
		for _, s := range scores {
			if s.Score < 0 || s.Score > framework.MaxNodeScore {
				t.Fatalf("normalized score of %s = %d", s.Name, s.Score)
			}
		}

		present := presentLevels(d, infos)
		for i, l := range present {
			if l < LevelNode || l >= LevelNone || (i > 0 && l <= present[i-1]) {
				t.Fatalf("presentLevels = %v", present)
			}
		}
		step := StepAt(present, 30*time.Second, 45*time.Second)
		if step.Left < 0 || step.Allowed < LevelNode || step.Allowed > LevelNone {
			t.Fatalf("StepAt(%v) = %+v", present, step)
		}
		_ = step.Reason()
		held := d.nodesHolding(infos)
		for name := range held {
			if d.Nodes[name] <= 0 {
				t.Fatalf("nodesHolding names %q, which holds nothing", name)
			}
		}
	})
}
