package main

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// Labels of every object of the release manifests. The CRDs also carry
// app.kubernetes.io/component=crds, so that removing locus can keep them:
//
//	kubectl delete -f locus-VERSION.yaml -l app.kubernetes.io/component!=crds
const (
	labelPartOf    = "app.kubernetes.io/part-of"
	labelVersion   = "app.kubernetes.io/version"
	labelComponent = "app.kubernetes.io/component"
	componentCRDs  = "crds"
)

// The image name of manifests/base's Deployment, which the release sets to
// IMAGE_REPO:VERSION.
const baseImage = "locus-scheduler"

// clusterScoped are the cluster-scoped kinds (GROUP/KIND) that kustomize
// takes for namespaced ones.
var clusterScoped = map[string]bool{
	"admissionregistration.k8s.io/ValidatingAdmissionPolicy":        true,
	"admissionregistration.k8s.io/ValidatingAdmissionPolicyBinding": true,
	"admissionregistration.k8s.io/MutatingAdmissionPolicy":          true,
	"admissionregistration.k8s.io/MutatingAdmissionPolicyBinding":   true,
}

// writeManifests builds, with kustomize's krusty on an in-memory copy of
// manifests/, the install manifest (manifests/crds, then manifests/base
// with the release's image) and the CRD manifest.
func writeManifests(c *Config) error {
	fsys := filesys.MakeFsInMemory()
	src := filepath.Join(c.Root, "manifests")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return fsys.WriteFile(path.Join("/manifests", filepath.ToSlash(rel)), data)
	})
	if err != nil {
		return err
	}

	labels := map[string]string{labelPartOf: "locus", labelVersion: c.Version}
	crdLabels := map[string]string{labelComponent: componentCRDs}
	for k, v := range labels {
		crdLabels[k] = v
	}
	for dir, k := range map[string]types.Kustomization{
		"/release/crds": {
			Resources: []string{"../../manifests/crds"},
			Labels:    []types.Label{{Pairs: crdLabels}},
		},
		"/release/scheduler": {
			Resources: []string{"../../manifests/base"},
			Images:    []types.Image{{Name: baseImage, NewName: c.ImageRepo, NewTag: c.Version}},
			Labels:    []types.Label{{Pairs: labels}},
		},
		"/release/install": {Resources: []string{"../crds", "../scheduler"}},
	} {
		k.APIVersion, k.Kind = types.KustomizationVersion, types.KustomizationKind
		data, err := yaml.Marshal(k)
		if err != nil {
			return err
		}
		if err := fsys.WriteFile(dir+"/kustomization.yaml", data); err != nil {
			return err
		}
	}

	// kustomize's legacy order: the CRDs, the ServiceAccount and RBAC, the
	// ConfigMap, then the Deployment and the rest, as kubectl apply should
	// create them.
	opts := krusty.MakeDefaultOptions()
	opts.Reorder = krusty.ReorderOptionLegacy
	kz := krusty.MakeKustomizer(opts)
	for _, m := range []struct{ dir, file, header string }{
		{"/release/install", InstallManifest(c.Version), fmt.Sprintf(`# locus %[1]s: the CRDs (Dataset, ElasticQuota, PodGroup), then locus-scheduler
# in kube-system (ServiceAccount, RBAC, its configuration, the Deployment running
# %[2]s:%[1]s, its PodDisruptionBudget, the admission guard).
#
#   kubectl apply --server-side -f %[3]s
#
# Removing locus but keeping the CRDs, and with them every ElasticQuota,
# PodGroup and Dataset:
#
#   kubectl delete -f %[3]s -l %[4]s!=%[5]s
`, c.Version, c.ImageRepo, InstallManifest(c.Version), labelComponent, componentCRDs)},
		{"/release/crds", CRDManifest(c.Version), fmt.Sprintf(`# locus %[1]s: the CRDs that locus-scheduler reads (Dataset, ElasticQuota,
# PodGroup), also part of %[2]s.
#
#   kubectl apply --server-side -f %[3]s
`, c.Version, InstallManifest(c.Version), CRDManifest(c.Version))},
	} {
		res, err := kz.Run(fsys, m.dir)
		if err != nil {
			return fmt.Errorf("kustomize %s: %w", m.file, err)
		}
		// kustomize's namespace transformer does not know these kinds to be
		// cluster-scoped and gives them the base's namespace (which the API
		// server drops): the release's manifests say what is there.
		for _, r := range res.Resources() {
			if clusterScoped[r.GetGvk().Group+"/"+r.GetKind()] {
				if err := r.SetNamespace(""); err != nil {
					return err
				}
			}
			// A base whose image is no longer named locus-scheduler would
			// ship its own image, untouched by the images transformer.
			if r.GetKind() == "Deployment" {
				images, err := r.GetFieldValue("spec.template.spec.containers[0].image")
				if err != nil {
					return err
				}
				if want := c.ImageRepo + ":" + c.Version; images != want {
					return fmt.Errorf("%s: Deployment %s runs %v, want %s (is manifests/base's image still %q?)", m.file, r.GetName(), images, want, baseImage)
				}
			}
		}
		data, err := res.AsYaml()
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(c.Out, m.file), append([]byte(m.header), data...), 0o644); err != nil {
			return err
		}
	}
	return nil
}
