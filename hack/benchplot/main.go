// Command benchplot draws the throughput benchmark's results (the JSON that
// test/bench writes with LOCUS_BENCH_OUT) as an SVG: median pods per second
// of each arm, one line per arm, across the cluster sizes of the files
// given.
//
//	go run ./hack/benchplot -o docs/benchmarks/pods-per-second.svg docs/benchmarks/*.json
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// report is the part of test/bench's JSON that the plot reads.
type report struct {
	Options struct {
		Nodes int `json:"nodes"`
		Pods  int `json:"pods"`
	} `json:"options"`
	NumCPU int `json:"numCPU"`
	Arms   []struct {
		Arm                 string  `json:"arm"`
		MedianPodsPerSecond float64 `json:"medianPodsPerSecond"`
	} `json:"arms"`
}

// series is one arm's median pods/s by cluster size.
type series struct {
	arm    string
	bySize map[int]float64
}

func main() {
	out := flag.String("o", "", "SVG file to write (default: standard output)")
	title := flag.String("title", "Median pods/s per arm by cluster size", "the plot's title")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: benchplot [-o file.svg] result.json...")
		os.Exit(2)
	}
	var reports []report
	for _, path := range flag.Args() {
		r, err := readReport(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		reports = append(reports, r)
	}
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	if err := plot(w, *title, reports); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func readReport(path string) (report, error) {
	var r report
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s: %w", path, err)
	}
	if r.Options.Nodes <= 0 || len(r.Arms) == 0 {
		return r, fmt.Errorf("%s: not a benchmark result (no node count or no arms)", path)
	}
	return r, nil
}

// collect merges the reports: arms in the order first seen, sizes sorted.
// Two reports of the same size: the later file wins.
func collect(reports []report) ([]series, []int) {
	var all []series
	index := map[string]int{}
	sizes := map[int]bool{}
	for _, r := range reports {
		sizes[r.Options.Nodes] = true
		for _, a := range r.Arms {
			if a.MedianPodsPerSecond <= 0 {
				continue
			}
			i, ok := index[a.Arm]
			if !ok {
				i = len(all)
				index[a.Arm] = i
				all = append(all, series{arm: a.Arm, bySize: map[int]float64{}})
			}
			all[i].bySize[r.Options.Nodes] = a.MedianPodsPerSecond
		}
	}
	var sorted []int
	for s := range sizes {
		sorted = append(sorted, s)
	}
	sort.Ints(sorted)
	return all, sorted
}

var colors = []string{"#1b6ac9", "#d1495b", "#2e933c", "#edae49", "#6d3fa0", "#00798c", "#8c5e3c"}

// plot writes the SVG. Cluster sizes are evenly spaced categories on the x
// axis (they span orders of magnitude); pods/s is linear from 0.
func plot(w io.Writer, title string, reports []report) error {
	all, sizes := collect(reports)
	if len(all) == 0 {
		return fmt.Errorf("no arm has a result")
	}
	const width, height = 720.0, 420.0
	const left, right, top, bottom = 70.0, 190.0, 50.0, 60.0
	plotW, plotH := width-left-right, height-top-bottom
	top_ := 0.0
	for _, s := range all {
		for _, v := range s.bySize {
			top_ = max(top_, v)
		}
	}
	yMax := niceCeil(top_)
	x := func(i int) float64 {
		if len(sizes) == 1 {
			return left + plotW/2
		}
		return left + plotW*float64(i)/float64(len(sizes)-1)
	}
	y := func(v float64) float64 { return top + plotH*(1-v/yMax) }

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%.0f" y="24" font-size="15" font-weight="bold">%s</text>`+"\n", left, escape(title))
	for i := 0; i <= 5; i++ {
		v := yMax * float64(i) / 5
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", left, y(v), left+plotW, y(v))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", left-6, y(v)+4, trim(v))
	}
	fmt.Fprintf(&b, `<text transform="translate(18 %.1f) rotate(-90)" text-anchor="middle">pods/s (median of rounds)</text>`+"\n", top+plotH/2)
	for i, s := range sizes {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`+"\n", x(i), top+plotH+18, s)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">nodes</text>`+"\n", left+plotW/2, top+plotH+40)
	for k, s := range all {
		color := colors[k%len(colors)]
		var pts []string
		for i, size := range sizes {
			if v, ok := s.bySize[size]; ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%s, %d nodes: %.1f pods/s</title></circle>`+"\n",
					x(i), y(v), color, escape(s.arm), size, v)
			}
		}
		if len(pts) > 1 {
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), color)
		}
		ly := top + 16*float64(k)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="2"/>`+"\n", left+plotW+16, ly, left+plotW+36, ly, color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+plotW+42, ly+4, escape(s.arm))
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// niceCeil rounds up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for p > v {
		p /= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func trim(v float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.1f", v), "0"), ".")
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
