package main

import (
	"encoding/json"
	"encoding/xml"
	"strings"
	"testing"
)

func TestPlot(t *testing.T) {
	var reports []report
	for _, js := range []string{
		`{"options":{"nodes":5000},"arms":[{"arm":"default","medianPodsPerSecond":400},{"arm":"locus","medianPodsPerSecond":390}]}`,
		`{"options":{"nodes":1000},"arms":[{"arm":"default","medianPodsPerSecond":470},{"arm":"locus","medianPodsPerSecond":469},{"arm":"peer-gang","medianPodsPerSecond":0}]}`,
	} {
		var r report
		if err := json.Unmarshal([]byte(js), &r); err != nil {
			t.Fatal(err)
		}
		reports = append(reports, r)
	}
	all, sizes := collect(reports)
	if len(sizes) != 2 || sizes[0] != 1000 || sizes[1] != 5000 {
		t.Fatalf("sizes %v, want [1000 5000]", sizes)
	}
	if len(all) != 2 || all[0].arm != "default" || all[1].bySize[5000] != 390 {
		t.Fatalf("series %+v: want default and locus, without the arm that has no result", all)
	}
	var b strings.Builder
	if err := plot(&b, "t & t", reports); err != nil {
		t.Fatal(err)
	}
	svg := b.String()
	// Well-formed XML, one line per arm, a point per arm and size.
	d := xml.NewDecoder(strings.NewReader(svg))
	for {
		if _, err := d.Token(); err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("not well-formed: %v\n%s", err, svg)
		}
	}
	if n := strings.Count(svg, "<polyline"); n != 2 {
		t.Errorf("%d lines, want 2", n)
	}
	if n := strings.Count(svg, "<circle"); n != 4 {
		t.Errorf("%d points, want 4", n)
	}
	for _, want := range []string{"locus, 5000 nodes: 390.0 pods/s", ">1000<", ">5000<", "t &amp; t"} {
		if !strings.Contains(svg, want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}

func TestNiceCeil(t *testing.T) {
	for in, want := range map[float64]float64{469: 500, 120: 200, 1000: 1000, 1001: 2000, 0.3: 0.5, 0: 1} {
		if got := niceCeil(in); got != want {
			t.Errorf("niceCeil(%v) = %v, want %v", in, got, want)
		}
	}
}
