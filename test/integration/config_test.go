package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/klog/v2/ktesting"
	"k8s.io/kubernetes/cmd/kube-scheduler/app"
	"k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	schedconfig "k8s.io/kubernetes/pkg/scheduler/apis/config"
	"k8s.io/kubernetes/pkg/scheduler/framework/plugins/names"
	"sigs.k8s.io/yaml"

	"locus.dev/locus/apis/config"
	configv1 "locus.dev/locus/apis/config/v1"
	"locus.dev/locus/pkg/plugins"
	"locus.dev/locus/pkg/testenv"
)

// shippedSchedulerConfigs finds every KubeSchedulerConfiguration file in the repository.
func shippedSchedulerConfigs(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, root := range []string{"../../manifests", "../../examples"} {
		err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if bytes.Contains(data, []byte("kind: KubeSchedulerConfiguration")) && !bytes.Contains(data, []byte("kind: ConfigMap")) {
				files = append(files, path)
			}
			return nil
		})
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if len(files) == 0 {
		t.Fatal("found no KubeSchedulerConfiguration in manifests/ or examples/")
	}
	return files
}

// setupOptions are the binary's options for a config file. With --config,
// kube-scheduler takes the kubeconfig from the file's clientConnection, so the
// file is copied with clientConnection.kubeconfig pointing at the test server.
func setupOptions(t *testing.T, kubeconfig, configFile string) *options.Options {
	t.Helper()
	data, err := os.ReadFile(configFile)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["clientConnection"] = map[string]any{"kubeconfig": kubeconfig}
	if data, err = yaml.Marshal(cfg); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), filepath.Base(configFile))
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := options.NewOptions()
	opts.ConfigFile = file
	opts.SecureServing.BindPort = 0 // no HTTPS listener needed to build the scheduler
	return opts
}

// TestSetupShippedConfigs runs kube-scheduler's app.Setup, as the binary
// does, on every configuration file the repository ships.
func TestSetupShippedConfigs(t *testing.T) {
	_, ctx := ktesting.NewTestContext(t)
	cp := testenv.StartControlPlane(t, testenv.Options{})
	kubeconfig := cp.KubeconfigFile(t)
	for _, file := range shippedSchedulerConfigs(t) {
		t.Run(file, func(t *testing.T) {
			cc, sched, err := plugins.Setup(ctx, setupOptions(t, kubeconfig, file))
			if err != nil {
				t.Fatalf("Setup: %v", err)
			}
			fw, ok := sched.Profiles[plugins.SchedulerName]
			if !ok {
				t.Fatalf("no %s profile; profiles: %v", plugins.SchedulerName, keys(sched.Profiles))
			}
			// Compliance filters first, once, and the default filters all
			// still run after it.
			var filters []string
			for _, p := range fw.ListPlugins().Filter.Enabled {
				filters = append(filters, p.Name)
			}
			if len(filters) == 0 || filters[0] != "Compliance" || slices.Index(filters[1:], "Compliance") >= 0 {
				t.Errorf("Filter plugins %v: want Compliance first and only once", filters)
			}
			for _, want := range []string{names.NodeUnschedulable, names.NodeName, names.TaintToleration, names.NodeAffinity, names.NodePorts, names.NodeResourcesFit, "DataLocality", "BatchQuota"} {
				if !slices.Contains(filters, want) {
					t.Errorf("Filter plugins %v: %s is missing", filters, want)
				}
			}
			var prof *schedconfig.KubeSchedulerProfile
			for i := range cc.ComponentConfig.Profiles {
				if cc.ComponentConfig.Profiles[i].SchedulerName == plugins.SchedulerName {
					prof = &cc.ComponentConfig.Profiles[i]
				}
			}
			if !cc.ComponentConfig.LeaderElection.LeaderElect || cc.ComponentConfig.LeaderElection.ResourceName != "locus-scheduler" {
				t.Errorf("leader election %+v, want its own lease named locus-scheduler", cc.ComponentConfig.LeaderElection)
			}
			for _, pc := range prof.PluginConfig {
				if pc.Name != "Compliance" {
					continue
				}
				args, ok := pc.Args.(*config.ComplianceArgs)
				if !ok {
					t.Fatalf("Compliance args decoded as %T", pc.Args)
				}
				if args.CertificationLabelPrefix != configv1.DefaultCertificationLabelPrefix {
					t.Errorf("certificationLabelPrefix %q, want the default %q", args.CertificationLabelPrefix, configv1.DefaultCertificationLabelPrefix)
				}
				if len(args.Residency["eu"]) == 0 {
					t.Errorf("residency eu is empty: %+v", args.Residency)
				}
				return
			}
			t.Errorf("profile %s has no Compliance pluginConfig", plugins.SchedulerName)
		})
	}
}

// TestInvalidArgsStopTheBinary runs the locus-scheduler command with bad
// plugin args: it must fail before starting, naming the field.
func TestInvalidArgsStopTheBinary(t *testing.T) {
	cp := testenv.StartControlPlane(t, testenv.Options{})
	kubeconfig := cp.KubeconfigFile(t)
	cases := []struct {
		name, args, want string
	}{
		{
			name: "residency group not a DNS label",
			args: "      residency: {EU: [eu-west-1]}\n",
			want: `profiles[0].pluginConfig[1].args.residency[EU]: Invalid value: "EU"`,
		},
		{
			name: "bad label prefix",
			args: "      certificationLabelPrefix: \"bad prefix/\"\n",
			want: `profiles[0].pluginConfig[1].args.certificationLabelPrefix: Invalid value: "bad prefix/"`,
		},
		{
			name: "empty region list",
			args: "      residency: {eu: []}\n",
			want: `profiles[0].pluginConfig[1].args.residency[eu]: Required value`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "config.yaml")
			cfg := `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection: {leaderElect: false}
clientConnection: {kubeconfig: ` + kubeconfig + `}
profiles:
- schedulerName: locus-scheduler
  plugins:
    multiPoint:
      enabled: [{name: Compliance}]
  pluginConfig:
  - name: NodeResourcesFit
    args: {scoringStrategy: {type: LeastAllocated}}
  - name: Compliance
    args:
` + tc.args
			if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := plugins.NewSchedulerCommand()
			cmd.SetArgs([]string{"--config", file, "--secure-port", "0"})
			cmd.SilenceUsage = true
			err := cmd.Execute()
			if err == nil {
				t.Fatal("the command accepted invalid args")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}

			// app.Setup alone (the plugin's own validation in New) refuses too.
			_, ctx := ktesting.NewTestContext(t)
			opts := options.NewOptions()
			opts.ConfigFile, opts.SecureServing.BindPort = file, 0
			if _, _, err := app.Setup(ctx, opts, plugins.AppOptions()...); err == nil {
				t.Error("app.Setup accepted invalid args")
			} else {
				t.Logf("app.Setup: %v", err)
			}
		})
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
