// Package plugins is locus's out-of-tree plugin registry and the checks that
// run on a KubeSchedulerConfiguration before the scheduler starts.
package plugins

import (
	"fmt"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	frameworkruntime "k8s.io/kubernetes/pkg/scheduler/framework/runtime"

	"locus.dev/locus/apis/config"
	_ "locus.dev/locus/apis/config/scheme" // registers the args into kube-scheduler's scheme
	"locus.dev/locus/apis/config/validation"
	"locus.dev/locus/pkg/batchquota"
	"locus.dev/locus/pkg/compliance"
	"locus.dev/locus/pkg/datalocality"
	"locus.dev/locus/pkg/leader"
)

// SchedulerName is the profile that locus's plugins run in; pods opt in with
// spec.schedulerName: locus-scheduler.
const SchedulerName = "locus-scheduler"

// Registry returns locus's out-of-tree plugins for a scheduler that runs
// without leader election (tests, the sandbox): they write from the start.
func Registry() frameworkruntime.Registry { return RegistryFor(leader.Always()) }

// RegistryFor returns locus's out-of-tree plugins for a scheduler process
// whose leadership is e: plugins that write to the API server do so only
// while e leads.
func RegistryFor(e *leader.Elected) frameworkruntime.Registry {
	return frameworkruntime.Registry{
		compliance.Name:   compliance.NewFactory(e),
		datalocality.Name: datalocality.New,
		batchquota.Name:   batchquota.NewFactory(e),
	}
}

// AppOptions returns Registry as options of kube-scheduler's app.
func AppOptions() []app.Option { return AppOptionsFor(leader.Always()) }

// AppOptionsFor returns RegistryFor(e) as options of kube-scheduler's app.
func AppOptionsFor(e *leader.Elected) []app.Option {
	var opts []app.Option
	for name, factory := range RegistryFor(e) {
		opts = append(opts, app.WithPlugin(name, factory))
	}
	return opts
}

// ValidateConfig validates the args of every locus plugin in every profile.
// Errors name the field by its path in the file, e.g.
// "profiles[0].pluginConfig[2].args.zoneWeight: Invalid value: 2: must be between 0 and 1".
func ValidateConfig(cfg *schedconfig.KubeSchedulerConfiguration) error {
	var errs []error
	for i, prof := range cfg.Profiles {
		for j, pc := range prof.PluginConfig {
			path := field.NewPath("profiles").Index(i).Child("pluginConfig").Index(j).Child("args")
			var err error
			switch args := pc.Args.(type) {
			case *config.ComplianceArgs:
				err = validation.ValidateComplianceArgs(path, args)
			case *config.DataLocalityArgs:
				err = validation.ValidateDataLocalityArgs(path, args)
			case *config.BatchQuotaArgs:
				err = validation.ValidateBatchQuotaArgs(path, args)
			default:
				if _, ours := Registry()[pc.Name]; ours && pc.Args != nil {
					err = fmt.Errorf("%s: args of plugin %s have the wrong kind %T", path, pc.Name, pc.Args)
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("invalid locus plugin args: %w", utilerrors.NewAggregate(errs))
}
