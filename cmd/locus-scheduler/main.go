// Command locus-scheduler is kube-scheduler with locus's plugins. Every
// kube-scheduler flag works; the profile that uses the plugins is configured
// with --config.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register" // --logging-format=json
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"

	"locus.dev/locus/pkg/plugins"
)

func main() {
	command := plugins.NewSchedulerCommand()
	code := cli.Run(command)
	os.Exit(code)
}
