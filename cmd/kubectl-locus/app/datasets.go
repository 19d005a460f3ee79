package app

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"

	locusv1alpha1 "locus.dev/locus/apis/locus/v1alpha1"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/datalocality"
	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/explain/report"
	"locus.dev/locus/pkg/generated/clientset/versioned"
)

func newDatasetsCommand(o *Options) *cobra.Command {
	var sc scope
	out := newOutputFlags(false)
	cmd := &cobra.Command{
		Use:     "datasets",
		Aliases: []string{"dataset"},
		Short:   "Where each Dataset lives, and how many pods read it",
		Long: `Lists the Datasets (datasets.locus.dev) that DataLocality places pods by: each
location (a node, a zone or a region) with the bytes read there, and the pods
of the namespace that name the Dataset in their locus.dev/datasets annotation
(how many of them are pending in parentheses). A node location whose node does not exist counts
for nothing. Datasets that pods name but that do not exist are listed after.`,
		Example: `  kubectl locus datasets -n analytics
  kubectl locus datasets -A
  kubectl locus datasets -A -o json | jq -r '.missing[]? | "\(.namespace)/\(.name)"'`,
		Args:              cobra.NoArgs,
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := out.printer()
			if err != nil {
				return err
			}
			ns, err := sc.namespace(o)
			if err != nil {
				return err
			}
			return o.runDatasets(cmd.Context(), ns, p)
		},
	}
	sc.add(cmd)
	out.addFlags(cmd)
	return cmd
}

func (o *Options) runDatasets(ctx context.Context, ns string, printer printers.ResourcePrinter) error {
	cfg, client, err := o.clients()
	if err != nil {
		return err
	}
	locus, err := versioned.NewForConfig(crdconfig.JSON(cfg))
	if err != nil {
		return err
	}
	datasets, err := locus.LocusV1alpha1().Datasets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	nodes := map[string]bool{}
	if list, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range list.Items {
			nodes[n.Name] = true
		}
	} else {
		nodes = nil
		fmt.Fprintf(o.ErrOut, "warning: cannot list nodes (%v); node locations are not checked\n", err)
	}
	rows, missing := datasetRows(datasets.Items, pods.Items, nodes)
	if printer != nil {
		return printer.PrintObj(datasetReport(rows, missing), o.Out)
	}
	if len(rows) == 0 && len(missing) == 0 {
		fmt.Fprintln(o.ErrOut, noneFound("Datasets", ns))
		return nil
	}
	return writeDatasets(o.Out, rows, missing, ns == metav1.NamespaceAll)
}

// datasetRow is one Dataset and the pods that read it.
type datasetRow struct {
	Namespace, Name string
	Locations       []report.DatasetLocation
	Pods, Pending   int
}

// datasetReport is the Datasets as a locus.dev/v1alpha1 DatasetReport.
func datasetReport(rows, missing []datasetRow) *report.DatasetReport {
	r := report.NewDatasetReport()
	usage := func(d datasetRow) report.DatasetUsage {
		return report.DatasetUsage{Namespace: d.Namespace, Name: d.Name, Locations: d.Locations, Pods: d.Pods, PendingPods: d.Pending}
	}
	for _, d := range rows {
		r.Items = append(r.Items, usage(d))
	}
	for _, d := range missing {
		r.Missing = append(r.Missing, usage(d))
	}
	return r
}

// datasetRows pairs Datasets with the pods that name them. missing holds
// the Datasets that pods name but that do not exist. nodes, when not nil,
// are the cluster's nodes.
func datasetRows(datasets []locusv1alpha1.Dataset, pods []v1.Pod, nodes map[string]bool) (rows, missing []datasetRow) {
	type key struct{ ns, name string }
	readers := map[key]*datasetRow{}
	for i := range pods {
		p := &pods[i]
		if p.Status.Phase == v1.PodSucceeded || p.Status.Phase == v1.PodFailed {
			continue
		}
		for _, name := range datalocality.DatasetNames(p) {
			k := key{p.Namespace, name}
			r := readers[k]
			if r == nil {
				r = &datasetRow{Namespace: p.Namespace, Name: name}
				readers[k] = r
			}
			r.Pods++
			if p.Spec.NodeName == "" {
				r.Pending++
			}
		}
	}
	for i := range datasets {
		d := &datasets[i]
		row := datasetRow{Namespace: d.Namespace, Name: d.Name}
		if r := readers[key{d.Namespace, d.Name}]; r != nil {
			row.Pods, row.Pending = r.Pods, r.Pending
			delete(readers, key{d.Namespace, d.Name})
		}
		for _, l := range d.Spec.Locations {
			row.Locations = append(row.Locations, location(l, nodes))
		}
		rows = append(rows, row)
	}
	for _, r := range readers {
		missing = append(missing, *r)
	}
	for _, list := range [][]datasetRow{rows, missing} {
		sort.Slice(list, func(i, j int) bool {
			if list[i].Namespace != list[j].Namespace {
				return list[i].Namespace < list[j].Namespace
			}
			return list[i].Name < list[j].Name
		})
	}
	return rows, missing
}

// location is a Dataset's location; nodes, when not nil, are the
// cluster's nodes.
func location(l locusv1alpha1.DatasetLocation, nodes map[string]bool) report.DatasetLocation {
	return report.DatasetLocation{
		Node: l.Node, Zone: l.Zone, Region: l.Region, Bytes: l.Bytes,
		NodeMissing: l.Node != "" && nodes != nil && !nodes[l.Node],
	}
}

// locationString renders "node worker-7 400Gi".
func locationString(l report.DatasetLocation) string {
	switch {
	case l.Node != "":
		s := fmt.Sprintf("node %s %s", l.Node, l.Bytes.String())
		if l.NodeMissing {
			s += " (no such node)"
		}
		return s
	case l.Zone != "":
		return fmt.Sprintf("zone %s %s", l.Zone, l.Bytes.String())
	case l.Region != "":
		return fmt.Sprintf("region %s %s", l.Region, l.Bytes.String())
	}
	return "invalid location " + l.Bytes.String()
}

func writeDatasets(w io.Writer, rows, missing []datasetRow, withNamespace bool) error {
	tw := explain.NewTabWriter(w)
	header := "NAME\tPODS\tLOCATIONS"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		if withNamespace {
			fmt.Fprintf(tw, "%s\t", r.Namespace)
		}
		locs := make([]string, len(r.Locations))
		for i, l := range r.Locations {
			locs[i] = locationString(l)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, podCount(r), orNone(strings.Join(locs, ", ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(missing) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Named by pods but not found (placed as if not named; see DatasetNotFound events):")
		tw = explain.NewTabWriter(w)
		for _, r := range missing {
			fmt.Fprintf(tw, "  %s/%s\t%s\n", r.Namespace, r.Name, podCount(r))
		}
		return tw.Flush()
	}
	return nil
}

// podCount renders "3 (1 pending)".
func podCount(r datasetRow) string {
	if r.Pending == 0 {
		return fmt.Sprint(r.Pods)
	}
	return fmt.Sprintf("%d (%d pending)", r.Pods, r.Pending)
}
