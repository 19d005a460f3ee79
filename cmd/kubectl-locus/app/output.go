package app

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"

	"locus.dev/locus/pkg/explain/report"
)

// reportScheme types kubectl-locus's output (locus.dev/v1alpha1) for
// cli-runtime's printers.
var reportScheme = runtime.NewScheme()

func init() {
	utilruntime.Must(report.AddToScheme(reportScheme))
}

// outputFlags is -o: the human-readable output by default (and -o wide
// where a command has a wider one), else one of cli-runtime's printers:
// json, yaml, jsonpath, go-template and their variants. The machine-readable
// formats print a locus.dev/v1alpha1 object (package report).
type outputFlags struct {
	print *genericclioptions.PrintFlags
	// wide: the command has a wide human-readable output.
	wide bool
}

func newOutputFlags(wide bool) *outputFlags {
	format := ""
	return &outputFlags{
		wide: wide,
		print: (&genericclioptions.PrintFlags{
			OutputFormat:         &format,
			JSONYamlPrintFlags:   genericclioptions.NewJSONYamlPrintFlags(),
			TemplatePrinterFlags: genericclioptions.NewKubeTemplatePrintFlags(),
		}).WithTypeSetter(reportScheme),
	}
}

// formats are the values of -o, for the flag's help and its completion.
func (f *outputFlags) formats() []string {
	var out []string
	if f.wide {
		out = append(out, "wide")
	}
	return append(out, f.print.AllowedFormats()...)
}

func (f *outputFlags) addFlags(cmd *cobra.Command) {
	usage := "Output format. One of: (" + strings.Join(f.formats(), ", ") + "). " +
		"The default is the human-readable output; json and yaml print a locus.dev/v1alpha1 " + kindOf(cmd) + " (docs/kubectl-locus.md)."
	cmd.Flags().StringVarP(f.print.OutputFormat, "output", "o", "", usage)
	f.print.TemplatePrinterFlags.AddFlags(cmd)
	f.print.OutputFlagSpecified = func() bool { return cmd.Flag("output").Changed }
	_ = cmd.RegisterFlagCompletionFunc("output", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return f.formats(), cobra.ShellCompDirectiveNoFileComp
	})
}

// kindOf names the output kind of a command, for its -o help.
func kindOf(cmd *cobra.Command) string {
	switch cmd.Name() {
	case "explain":
		return report.KindExplanation
	case "simulate":
		return report.KindSimulation
	case "quota":
		return report.KindQuotaReport
	case "datasets":
		return report.KindDatasetReport
	}
	return report.KindVersion
}

// human reports whether the output is the human-readable one.
func (f *outputFlags) human() bool {
	format := *f.print.OutputFormat
	templated := f.print.TemplatePrinterFlags.TemplateArgument != nil && *f.print.TemplatePrinterFlags.TemplateArgument != ""
	return format == "" && !templated || f.wide && format == "wide"
}

// isWide reports -o wide.
func (f *outputFlags) isWide() bool { return f.wide && *f.print.OutputFormat == "wide" }

// printer returns the printer of -o; nil for the human-readable output. It
// is called before the command reads the cluster, so that a wrong -o fails
// at once.
func (f *outputFlags) printer() (printers.ResourcePrinter, error) {
	if f.human() {
		return nil, nil
	}
	p, err := f.print.ToPrinter()
	if genericclioptions.IsNoCompatiblePrinterError(err) {
		return nil, fmt.Errorf("--output: want one of %s, got %q", strings.Join(f.formats(), ", "), *f.print.OutputFormat)
	}
	return p, err
}

// exitError makes Main exit with its code (after printing its message):
// simulate --fail-on-pending exits 2 when pods would stay pending, so that
// a pipeline tells that from an error (1).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the process's exit status for err: 0 for nil, the code of an
// exitError, else 1.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	return 1
}
