package main

import (
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// The krew plugin manifest (sigs.k8s.io/krew/pkg/index's Plugin, which this
// module does not import: krew v0.4.3 requires k8s.io/client-go
// v11.0.0+incompatible, which would lift go.mod's client-go requirement).
const (
	krewAPIVersion = "krew.googlecontainertools.github.com/v1alpha2"
	krewKind       = "Plugin"
	krewName       = "locus"
)

type krewPlugin struct {
	APIVersion string       `json:"apiVersion"`
	Kind       string       `json:"kind"`
	Metadata   krewMetadata `json:"metadata"`
	Spec       krewSpec     `json:"spec"`
}

type krewMetadata struct {
	Name string `json:"name"`
}

type krewSpec struct {
	Version          string         `json:"version"`
	Homepage         string         `json:"homepage,omitempty"`
	ShortDescription string         `json:"shortDescription"`
	Description      string         `json:"description,omitempty"`
	Caveats          string         `json:"caveats,omitempty"`
	Platforms        []krewPlatform `json:"platforms"`
}

type krewPlatform struct {
	Selector krewSelector `json:"selector"`
	URI      string       `json:"uri"`
	Sha256   string       `json:"sha256"`
	Files    []krewFile   `json:"files"`
	Bin      string       `json:"bin"`
}

type krewSelector struct {
	MatchLabels map[string]string `json:"matchLabels"`
}

type krewFile struct {
	From string `json:"from"`
	To   string `json:"to"`
}

// krewArchive is a kubectl-locus archive and its sha256.
type krewArchive struct {
	platform Platform
	name     string
	sha256   string
}

func writeKrewManifest(c *Config, archives []krewArchive) error {
	p := krewPlugin{
		APIVersion: krewAPIVersion,
		Kind:       krewKind,
		Metadata:   krewMetadata{Name: krewName},
		Spec: krewSpec{
			Version:          c.Version,
			Homepage:         c.SourceURL,
			ShortDescription: "See and try locus-scheduler's placement decisions",
			Description: "kubectl locus explains why a pod is pending or why it landed where it did,\n" +
				"node by node and plugin by plugin (Compliance, DataLocality, BatchQuota);\n" +
				"shows each ElasticQuota's min, max, used and borrowed resources, and where\n" +
				"each Dataset lives; and simulates where pods would land without creating them.\n",
			Caveats: "kubectl locus reads what locus-scheduler reads. Without cluster-admin rights,\n" +
				"bind the read-only roles of manifests/kubectl-locus-reader.yaml in the locus\n" +
				"repository (" + c.SourceURL + ").\n",
		},
	}
	for _, a := range archives {
		bin := a.platform.exe(kubectlLocus)
		p.Spec.Platforms = append(p.Spec.Platforms, krewPlatform{
			Selector: krewSelector{MatchLabels: map[string]string{"os": a.platform.OS, "arch": a.platform.Arch}},
			URI:      c.ReleaseURL + "/" + a.name,
			Sha256:   a.sha256,
			Files:    []krewFile{{From: bin, To: "."}, {From: "LICENSE", To: "."}},
			Bin:      bin,
		})
	}
	out, err := yaml.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(c.Out, KrewManifest), out, 0o644)
}
