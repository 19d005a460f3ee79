package app

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	v1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	st "k8s.io/kubernetes/pkg/scheduler/testing"
	"sigs.k8s.io/yaml"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/explain/report"
	"locus.dev/locus/pkg/plugins"
)

// printReport prints an output object as `-o format` does.
func printReport(t *testing.T, format string, obj any) string {
	t.Helper()
	out := newOutputFlags(true)
	*out.print.OutputFormat = format
	p, err := out.printer()
	if err != nil || p == nil {
		t.Fatalf("-o %s: printer %v, %v", format, p, err)
	}
	var buf bytes.Buffer
	switch o := obj.(type) {
	case *report.Explanation:
		err = p.PrintObj(o, &buf)
	case *report.Simulation:
		err = p.PrintObj(o, &buf)
	case *report.QuotaReport:
		err = p.PrintObj(o, &buf)
	case *report.DatasetReport:
		err = p.PrintObj(o, &buf)
	default:
		t.Fatalf("not an output kind: %T", obj)
	}
	if err != nil {
		t.Fatalf("-o %s: %v", format, err)
	}
	return buf.String()
}

// decodeStrict decodes JSON into v, refusing fields that v does not have:
// the output is exactly the documented schema.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
}

func explainFixture() (*v1.Pod, *explain.Evaluation, explanationOptions) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	pod := st.MakePod().Namespace("pay").Name("card").UID("card-uid").SchedulerName(plugins.SchedulerName).
		Annotation(locusv1alpha1.AnnotationCompliance, "pci-dss").Req(map[v1.ResourceName]string{v1.ResourceCPU: "500m"}).Node("vault").Obj()
	ev := &explain.Evaluation{
		Pod:          pod,
		ScorePlugins: []string{"NodeResourcesFit", "Compliance"},
		Best:         "vault-2",
		Nodes: []explain.NodeResult{
			{Node: "vault-2", Scores: map[string]int64{"NodeResourcesFit": 90, "Compliance": 100}, Total: 190},
			{Node: "vault", Scores: map[string]int64{"NodeResourcesFit": 40, "Compliance": 100}, Total: 140},
			{Node: "general", Failures: []explain.Failure{{Plugin: "Compliance", Reason: "missing certification pci-dss", Unresolvable: true}}},
		},
	}
	events := []eventsv1.Event{{
		Reason: "Scheduled", Note: "Successfully assigned pay/card to vault", Type: v1.EventTypeNormal, ReportingController: plugins.SchedulerName,
		EventTime: metav1.NewMicroTime(now.Add(-time.Minute)),
	}}
	return pod, ev, explanationOptions{Source: "ConfigMap kube-system/locus-scheduler-config", Profile: plugins.SchedulerName, Events: events, Now: now}
}

func TestExplanationOutput(t *testing.T) {
	pod, ev, opts := explainFixture()
	x := explanationReport(pod, ev, opts)
	for _, format := range []string{"json", "yaml"} {
		t.Run(format, func(t *testing.T) {
			out := printReport(t, format, x)
			data := []byte(out)
			if format == "yaml" {
				var err error
				if data, err = yaml.YAMLToJSON(data); err != nil {
					t.Fatal(err)
				}
			}
			var got report.Explanation
			decodeStrict(t, data, &got)
			if got.APIVersion != "locus.dev/v1alpha1" || got.Kind != "Explanation" {
				t.Errorf("want apiVersion locus.dev/v1alpha1, kind Explanation, got %s, %s", got.APIVersion, got.Kind)
			}
			if diff := cmp.Diff(*x, got); diff != "" {
				t.Errorf("decoded back (-printed,+decoded):\n%s", diff)
			}
		})
	}

	var got map[string]any
	if err := json.Unmarshal([]byte(printReport(t, "json", x)), &got); err != nil {
		t.Fatal(err)
	}
	// The paths that docs/kubectl-locus.md promises.
	for path, want := range map[string]any{
		"pod.namespace":                        "pay",
		"pod.name":                             "card",
		"pod.node":                             "vault",
		"pod.pending":                          false,
		"pod.requests.cpu":                     "500m",
		"pod.annotations.locus.dev/compliance": "pci-dss",
		"profile.source":                       "ConfigMap kube-system/locus-scheduler-config",
		"evaluatedAt":                          "2026-03-01T12:00:00Z",
		"result.verdict":                       "placed",
		"result.pending":                       false,
		"result.node":                          "vault-2",
		"result.score":                         float64(190),
		"result.nodesEvaluated":                float64(3),
		"result.nodesFeasible":                 float64(2),
		"current.name":                         "vault",
		"current.status":                       "fits",
		"current.score":                        float64(140),
	} {
		if v := lookup(got, path); !cmp.Equal(v, want) {
			t.Errorf(".%s: want %v, got %v", path, want, v)
		}
	}
	rej := lookup(got, "result.rejections").([]any)[0].(map[string]any)
	if rej["plugin"] != "Compliance" || rej["reason"] != "missing certification pci-dss" || rej["nodeCount"] != float64(1) || !cmp.Equal(rej["nodes"], []any{"general"}) {
		t.Errorf("result.rejections[0]: want Compliance rejecting general, got %v", rej)
	}
	nodes := lookup(got, "result.nodes").([]any)
	if n := nodes[1].(map[string]any); n["name"] != "vault" || n["verdict"] != "feasible" || n["current"] != true || n["total"] != float64(140) {
		t.Errorf("result.nodes[1]: want vault, feasible, current, total 140, got %v", n)
	}
	if e := lookup(got, "events").([]any)[0].(map[string]any); e["reason"] != "Scheduled" || e["from"] != plugins.SchedulerName {
		t.Errorf("events[0]: got %v", e)
	}
	if _, ok := got["unavailable"]; ok {
		t.Errorf("unavailable must be left out when everything was read")
	}
}

// lookup follows a dotted path; a key may hold dots when no shorter one matches.
func lookup(m map[string]any, path string) any {
	var cur any = m
	parts := strings.Split(path, ".")
	for i := 0; i < len(parts); i++ {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		found := false
		for j := len(parts); j > i; j-- {
			if v, ok := obj[strings.Join(parts[i:j], ".")]; ok {
				cur, i, found = v, j-1, true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return cur
}

func TestExplanationNodesUnavailable(t *testing.T) {
	pod := st.MakePod().Namespace("team").Name("job").SchedulerName(plugins.SchedulerName).Obj()
	u := report.Unavailable{Resource: "nodes", Reason: metav1.StatusReasonForbidden, Message: `nodes is forbidden: User "jane" cannot list resource "nodes"`, Impact: explain.ImpactNodes}
	opts := explanationOptions{Profile: plugins.SchedulerName, Source: "x", Now: time.Now(), NodesUnavailable: &u, Unavailable: []report.Unavailable{u}}
	ev := &explain.Evaluation{Pod: pod}

	var buf bytes.Buffer
	if err := writeExplanation(&buf, pod, ev, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Evaluated now: could not list nodes: forbidden; node-level reasons unavailable.",
		"Verdict: pending; cannot tell where it would go now (could not list nodes: forbidden; node-level reasons unavailable); no plugin turns it away before looking at the nodes.",
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, buf.String())
		}
	}
	// Nor the events.
	opts.Unavailable = append(opts.Unavailable, report.Unavailable{Resource: "events", Reason: metav1.StatusReasonForbidden, Impact: "the pod's events are not shown"})
	buf.Reset()
	if err := writeExplanation(&buf, pod, ev, opts); err != nil {
		t.Fatal(err)
	}
	if want := "Events: could not list events: forbidden; the pod's events are not shown.\n"; !strings.HasSuffix(buf.String(), want) {
		t.Errorf("output does not end with %q:\n%s", want, buf.String())
	}
	var x report.Explanation
	decodeStrict(t, []byte(printReport(t, "json", explanationReport(pod, ev, opts))), &x)
	if x.Result.Verdict != report.Unknown || !x.Result.Pending || len(x.Unavailable) != 2 || x.Unavailable[0].Resource != "nodes" || x.Unavailable[1].Resource != "events" || len(x.Events) != 0 {
		t.Errorf("want verdict unknown and nodes unavailable, got %+v, %+v", x.Result, x.Unavailable)
	}

	// A bound pod whose node cannot be read.
	pod.Spec.NodeName = "n1"
	if got := verdictLine(pod, ev, &u); !strings.HasPrefix(got, "bound to n1 (the node could not be read); cannot tell") {
		t.Errorf("verdict: got %q", got)
	}
	if c := currentNode(pod, ev, &u); c.Status != report.CurrentUnknown {
		t.Errorf("current: want unknown, got %s", c.Status)
	}
}

func TestSimulationOutput(t *testing.T) {
	_, ev, _ := explainFixture()
	ev.Pod = st.MakePod().Namespace("pay").Name("card-new").Obj()
	outcomes := []explain.Outcome{
		{Pod: ev.Pod, Verdict: explain.Placed, Node: "vault-2", Evaluation: ev},
		{Pod: st.MakePod().Namespace("etl").Name("backfill").Obj(), Verdict: explain.Waits, Reason: "BatchQuota: quota etl/quota: cpu would be 3 (used 1 + request 2), over max 2",
			Evaluation: &explain.Evaluation{PreFilter: &explain.Failure{Plugin: "BatchQuota", Reason: "quota etl/quota: cpu would be 3 (used 1 + request 2), over max 2"}, Pod: st.MakePod().Namespace("etl").Name("backfill").Obj()}},
	}
	opts := simulationOptions{Source: "s", Profile: plugins.SchedulerName, Nodes: 3, Now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Skipped: []report.ObjectRef{{APIVersion: "v1", Kind: "ConfigMap", Namespace: "etl", Name: "settings", Source: "dir/cm.yaml"}}}
	sim := simulationReport(outcomes, opts)

	var got report.Simulation
	decodeStrict(t, []byte(printReport(t, "json", sim)), &got)
	if diff := cmp.Diff(*sim, got); diff != "" {
		t.Errorf("decoded back (-printed,+decoded):\n%s", diff)
	}
	if got.APIVersion != "locus.dev/v1alpha1" || got.Kind != "Simulation" {
		t.Errorf("want locus.dev/v1alpha1 Simulation, got %s %s", got.APIVersion, got.Kind)
	}
	if diff := cmp.Diff(report.SimulationSummary{Pods: 2, Placed: 1, Waiting: 1, Unschedulable: 1}, got.Summary); diff != "" {
		t.Errorf("summary (-want,+got):\n%s", diff)
	}
	r0, r1 := got.Results[0], got.Results[1]
	if r0.Order != 1 || r0.Pod != (report.PodRef{Namespace: "pay", Name: "card-new"}) || r0.Verdict != report.Placed || r0.Node != "vault-2" || r0.Pending || *r0.Score != 190 || r0.Nodes != nil {
		t.Errorf("results[0]: want pay/card-new placed on vault-2 (score 190, no node details), got %+v", r0)
	}
	if r1.Order != 2 || r1.Verdict != report.Waits || !r1.Pending || r1.Node != "" || r1.PreFilter == nil || r1.PreFilter.Plugin != "BatchQuota" {
		t.Errorf("results[1]: want etl/backfill waiting on BatchQuota, got %+v", r1)
	}

	// What a CI step reads.
	if out := printReport(t, "jsonpath={.summary.unschedulable}", sim); out != "1" {
		t.Errorf("-o jsonpath={.summary.unschedulable}: want 1, got %q", out)
	}
	if out := printReport(t, `jsonpath={range .results[?(@.pending==true)]}{.pod.namespace}/{.pod.name}{"\n"}{end}`, sim); out != "etl/backfill\n" {
		t.Errorf("pending pods by jsonpath: got %q", out)
	}
	if out := printReport(t, "yaml", sim); !strings.HasPrefix(out, "apiVersion: locus.dev/v1alpha1\nkind: Simulation\n") || !strings.Contains(out, "  unschedulable: 1\n") {
		t.Errorf("-o yaml:\n%s", out)
	}

	opts.Details = true
	if d := simulationReport(outcomes, opts); len(d.Results[0].Nodes) != 3 {
		t.Errorf("--details: want each result's 3 nodes, got %d", len(d.Results[0].Nodes))
	}
}

func TestQuotaAndDatasetsOutput(t *testing.T) {
	q := quotaReport([]quotaRow{{Namespace: "etl", Name: "quota", Min: map[v1.ResourceName]int64{v1.ResourceCPU: 1000}, Used: map[v1.ResourceName]int64{v1.ResourceCPU: 1500}, Borrowed: map[v1.ResourceName]int64{v1.ResourceCPU: 500}, Pending: 2}})
	var qr report.QuotaReport
	decodeStrict(t, []byte(printReport(t, "json", q)), &qr)
	if len(qr.Items) != 1 || qr.Items[0].Used.Cpu().String() != "1500m" || qr.Items[0].Borrowed.Cpu().String() != "500m" || qr.Items[0].PendingPods != 2 || qr.Items[0].Max != nil {
		t.Errorf("quota report: got %+v", qr.Items)
	}
	if out := printReport(t, "json", quotaReport(nil)); !strings.Contains(out, `"items": []`) {
		t.Errorf("no quotas: want an empty items list, got %s", out)
	}

	rows, missing := datasetRows([]locusv1alpha1.Dataset{{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "sales"},
		Spec: locusv1alpha1.DatasetSpec{Locations: []locusv1alpha1.DatasetLocation{{Node: "gone"}}}}},
		[]v1.Pod{*st.MakePod().Namespace("a").Name("p").Annotation(locusv1alpha1.AnnotationDatasets, "sales, clicks").Obj()}, map[string]bool{})
	var dr report.DatasetReport
	decodeStrict(t, []byte(printReport(t, "json", datasetReport(rows, missing))), &dr)
	if len(dr.Items) != 1 || !dr.Items[0].Locations[0].NodeMissing || dr.Items[0].PendingPods != 1 || len(dr.Missing) != 1 || dr.Missing[0].Name != "clicks" {
		t.Errorf("dataset report: got %+v", dr)
	}
}

func TestOutputFlags(t *testing.T) {
	explainCmd := newExplainCommand(&Options{})
	for _, tc := range []struct {
		cmd    string
		format string
		human  bool
		wide   bool
		err    bool
	}{
		{"explain", "", true, false, false},
		{"explain", "wide", true, true, false},
		{"explain", "json", false, false, false},
		{"explain", "yaml", false, false, false},
		{"explain", "name", false, false, true},
		{"quota", "wide", false, false, true},
		{"quota", "jsonpath={.items}", false, false, false},
	} {
		f := newOutputFlags(tc.cmd == "explain")
		*f.print.OutputFormat = tc.format
		p, err := f.printer()
		if (err != nil) != tc.err || f.human() != tc.human || f.isWide() != tc.wide || (err == nil && (p == nil) != tc.human) {
			t.Errorf("%s -o %q: want human %v, wide %v, error %v; got %v, %v, printer %v, %v", tc.cmd, tc.format, tc.human, tc.wide, tc.err, f.human(), f.isWide(), p, err)
		}
	}
	if usage := explainCmd.Flag("output").Usage; !strings.Contains(usage, "wide, json, yaml") || !strings.Contains(usage, "Explanation") {
		t.Errorf("explain -o help: %q", usage)
	}
}

func TestExitCode(t *testing.T) {
	if ExitCode(nil) != 0 || ExitCode(os.ErrNotExist) != 1 || ExitCode(&exitError{code: 2, err: os.ErrInvalid}) != 2 {
		t.Errorf("exit codes: want 0, 1, 2")
	}
}

// writeTree writes files under a new directory and returns it.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func podYAML(name string) string {
	return "apiVersion: v1\nkind: Pod\nmetadata: {name: " + name + "}\nspec:\n  containers: [{name: c, image: busybox}]\n"
}

func TestReadManifests(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"top.yaml":                podYAML("top") + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\n",
		"README.md":               "not a manifest",
		"nested/deep.yml":         podYAML("deep"),
		"nested/widget.json":      `{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}`,
		"kust/kustomization.yaml": "namespace: kusto\nnamePrefix: k-\nresources: [pod.yaml]\n",
		"kust/pod.yaml":           podYAML("p"),
		"bad/pod.yaml":            "apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec: {containerz: []}\n",
	})
	read := func(t *testing.T, stdin string, args ...string) ([]string, string, error) {
		t.Helper()
		var errOut bytes.Buffer
		o := &Options{IOStreams: genericiooptions.IOStreams{In: strings.NewReader(stdin), Out: &bytes.Buffer{}, ErrOut: &errOut}}
		so := newSimulateOptions(o)
		if err := so.command().ParseFlags(args); err != nil {
			t.Fatal(err)
		}
		objs, err := so.readManifests()
		var names []string
		for _, m := range objs {
			names = append(names, describe(m.obj)+" from "+strings.TrimPrefix(m.source, dir+string(filepath.Separator)))
		}
		return names, errOut.String(), err
	}

	t.Run("a directory: its manifests, not its subdirectories", func(t *testing.T) {
		got, _, err := read(t, "", "-f", dir)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Pod top from top.yaml", "ConfigMap settings from top.yaml"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want,+got):\n%s", diff)
		}
	})
	t.Run("-R: and its subdirectories; unknown kinds skipped with a note", func(t *testing.T) {
		got, notes, err := read(t, "", "-f", filepath.Join(dir, "nested"), "-R", "-f", filepath.Join(dir, "top.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"Pod deep from nested/deep.yml", "Pod top from top.yaml", "ConfigMap settings from top.yaml"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want,+got):\n%s", diff)
		}
		if !strings.Contains(notes, "note: skipping Widget w from "+filepath.Join(dir, "nested", "widget.json")) {
			t.Errorf("want a note about the Widget, got %q", notes)
		}
	})
	t.Run("-k: the kustomization's output", func(t *testing.T) {
		got, _, err := read(t, "", "-k", filepath.Join(dir, "kust"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !strings.HasPrefix(got[0], "Pod kusto/k-p ") {
			t.Errorf("want the pod kusto/k-p, got %q", got)
		}
	})
	t.Run("- reads the command's input", func(t *testing.T) {
		got, _, err := read(t, podYAML("piped"), "-f", "-")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != "Pod piped from STDIN" {
			t.Errorf("want the piped pod, got %q", got)
		}
	})
	t.Run("errors", func(t *testing.T) {
		if _, _, err := read(t, "", "-f", filepath.Join(dir, "bad")); err == nil || !strings.Contains(err.Error(), "containerz") {
			t.Errorf("an unknown field: want an error naming it, got %v", err)
		}
		if _, _, err := read(t, "", "-f", filepath.Join(dir, "nope.yaml")); err == nil {
			t.Errorf("a missing file: want an error")
		}
		if _, _, err := read(t, "", "-f", dir, "-k", filepath.Join(dir, "kust")); err == nil {
			t.Errorf("-f with -k: want an error")
		}
	})
}

func TestCompletion(t *testing.T) {
	run := func(args ...string) string {
		var out bytes.Buffer
		cmd := NewCommand(genericiooptions.IOStreams{In: strings.NewReader(""), Out: &out, ErrOut: &bytes.Buffer{}})
		cmd.SetArgs(args)
		if err := cmd.Execute(); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out.String()
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		if out := run("completion", shell); !strings.Contains(out, "kubectl-locus") || len(out) < 1000 {
			t.Errorf("completion %s: want a script for kubectl-locus, got %d bytes", shell, len(out))
		}
	}
	if out := run(programArgs("/usr/local/bin/kubectl_complete-locus", []string{"simulate", "-o", ""})...); !strings.Contains(out, "json\n") || !strings.Contains(out, "wide\n") {
		t.Errorf("kubectl_complete-locus simulate -o: want the formats, got %q", out)
	}
	if out := run(programArgs("kubectl_complete-locus", []string{""})...); !strings.Contains(out, "explain") || !strings.Contains(out, "simulate") {
		t.Errorf("kubectl_complete-locus: want the subcommands, got %q", out)
	}
	if got := programArgs("/bin/kubectl-locus", []string{"quota"}); !cmp.Equal(got, []string{"quota"}) {
		t.Errorf("as kubectl-locus, the arguments are unchanged: got %q", got)
	}
}
