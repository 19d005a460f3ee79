package app

import (
	"context"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"
	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/printers"
	schedv1alpha1 "sigs.k8s.io/scheduler-plugins/apis/scheduling/v1alpha1"
	schedclient "sigs.k8s.io/scheduler-plugins/pkg/generated/clientset/versioned"

	"locus.dev/locus/pkg/batchquota/quota"
	"locus.dev/locus/pkg/crdconfig"
	"locus.dev/locus/pkg/explain"
	"locus.dev/locus/pkg/explain/report"
	"locus.dev/locus/pkg/plugins"
)

// scope is -n NS or -A.
type scope struct {
	all bool
}

func (s *scope) add(cmd *cobra.Command) {
	cmd.Flags().BoolVarP(&s.all, "all-namespaces", "A", false, "list across all namespaces")
}

// namespace is "" for all namespaces, else -n or the context's namespace.
func (s *scope) namespace(o *Options) (string, error) {
	if s.all {
		return metav1.NamespaceAll, nil
	}
	return o.namespace()
}

func newQuotaCommand(o *Options) *cobra.Command {
	var sc scope
	out := newOutputFlags(false)
	cmd := &cobra.Command{
		Use:   "quota",
		Short: "Each ElasticQuota's min, max, used, borrowed, and pending pods",
		Long: `Lists the ElasticQuotas that BatchQuota enforces: min (guaranteed), max (never
exceeded), used (status.used, which locus-scheduler keeps current), borrowed
(used beyond min), and the namespace's pending pods (schedulerName
locus-scheduler, not yet bound). Only the resources that a quota names are
limited by it, and shown.`,
		Example: `  kubectl locus quota -n etl
  kubectl locus quota -A
  kubectl locus quota -A -o json | jq '.items[] | select(.pendingPods > 0)'`,
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
			return o.runQuota(cmd.Context(), ns, p)
		},
	}
	sc.add(cmd)
	out.addFlags(cmd)
	return cmd
}

func (o *Options) runQuota(ctx context.Context, ns string, printer printers.ResourcePrinter) error {
	cfg, client, err := o.clients()
	if err != nil {
		return err
	}
	sched, err := schedclient.NewForConfig(crdconfig.JSON(cfg))
	if err != nil {
		return err
	}
	quotas, err := sched.SchedulingV1alpha1().ElasticQuotas(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	if len(quotas.Items) == 0 {
		if printer != nil {
			return printer.PrintObj(quotaReport(nil), o.Out)
		}
		fmt.Fprintln(o.ErrOut, noneFound("ElasticQuotas", ns))
		return nil
	}
	pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	rows := quotaRows(quotas.Items, pods.Items)
	if printer != nil {
		return printer.PrintObj(quotaReport(rows), o.Out)
	}
	return writeQuotas(o.Out, rows, ns == metav1.NamespaceAll)
}

// quotaReport is the quotas as a locus.dev/v1alpha1 QuotaReport.
func quotaReport(rows []quotaRow) *report.QuotaReport {
	r := report.NewQuotaReport()
	for _, q := range rows {
		r.Items = append(r.Items, report.QuotaUsage{
			Namespace: q.Namespace, Name: q.Name,
			Min: resourceList(q.Min), Max: resourceList(q.Max), Used: resourceList(q.Used), Borrowed: resourceList(q.Borrowed),
			PendingPods: q.Pending,
		})
	}
	return r
}

// resourceList is nil for no resources, so that they are left out.
func resourceList(r quota.Resources) v1.ResourceList {
	if len(r) == 0 {
		return nil
	}
	return r.ToList()
}

// quotaRow is one ElasticQuota, with only the resources that it limits.
type quotaRow struct {
	Namespace, Name          string
	Min, Max, Used, Borrowed quota.Resources
	Pending                  int
}

func quotaRows(quotas []schedv1alpha1.ElasticQuota, pods []v1.Pod) []quotaRow {
	pending := map[string]int{}
	for i := range pods {
		if p := &pods[i]; isPendingLocusPod(p) {
			pending[p.Namespace]++
		}
	}
	rows := make([]quotaRow, 0, len(quotas))
	for i := range quotas {
		eq := &quotas[i]
		st := quota.Status{
			Namespace: eq.Namespace, Name: eq.Name,
			Min: quota.FromList(eq.Spec.Min), Max: quota.FromList(eq.Spec.Max),
			Used: limited(quota.FromList(eq.Status.Used), eq),
		}
		rows = append(rows, quotaRow{
			Namespace: eq.Namespace, Name: eq.Name,
			Min: st.Min, Max: st.Max, Used: st.Used, Borrowed: st.Borrowed(),
			Pending: pending[eq.Namespace],
		})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Namespace != rows[j].Namespace {
			return rows[i].Namespace < rows[j].Namespace
		}
		return rows[i].Name < rows[j].Name
	})
	return rows
}

// limited keeps the resources that the quota names in min or max: it does
// not limit the others.
func limited(r quota.Resources, eq *schedv1alpha1.ElasticQuota) quota.Resources {
	out := quota.Resources{}
	for name, v := range r {
		_, inMin := eq.Spec.Min[name]
		_, inMax := eq.Spec.Max[name]
		if inMin || inMax {
			out[name] = v
		}
	}
	return out
}

// isPendingLocusPod: locus-scheduler's to place, not placed yet, not finished.
func isPendingLocusPod(p *v1.Pod) bool {
	return p.Spec.SchedulerName == plugins.SchedulerName && p.Spec.NodeName == "" && p.DeletionTimestamp == nil &&
		p.Status.Phase != v1.PodSucceeded && p.Status.Phase != v1.PodFailed
}

func writeQuotas(w io.Writer, rows []quotaRow, withNamespace bool) error {
	tw := explain.NewTabWriter(w)
	header := "NAME\tMIN\tMAX\tUSED\tBORROWED\tPENDING"
	if withNamespace {
		header = "NAMESPACE\t" + header
	}
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		if withNamespace {
			fmt.Fprintf(tw, "%s\t", r.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", r.Name,
			orNone(r.Min.String()), orNone(r.Max.String()), orZero(r.Used.String()), orZero(r.Borrowed.String()), r.Pending)
	}
	return tw.Flush()
}

func orZero(s string) string {
	if s == "" {
		return "0"
	}
	return s
}

func noneFound(what, ns string) string {
	if ns == metav1.NamespaceAll {
		return fmt.Sprintf("No %s found.", what)
	}
	return fmt.Sprintf("No %s found in namespace %s.", what, ns)
}
