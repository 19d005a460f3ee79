#!/usr/bin/env bash
# Copies the ElasticQuota and PodGroup CRDs of sigs.k8s.io/scheduler-plugins,
# at the version go.mod pins, from the module cache into manifests/crds/, so
# that clusters which already have them keep the same definitions.
set -euo pipefail
cd "$(dirname "$0")/.."

go mod download sigs.k8s.io/scheduler-plugins
dir=$(go list -m -f '{{.Dir}}' sigs.k8s.io/scheduler-plugins)
version=$(go list -m -f '{{.Version}}' sigs.k8s.io/scheduler-plugins)
mkdir -p manifests/crds
for crd in scheduling.x-k8s.io_elasticquotas.yaml scheduling.x-k8s.io_podgroups.yaml; do
  {
    echo "# Copied from sigs.k8s.io/scheduler-plugins@${version} config/crd/bases/${crd}"
    echo "# by hack/update-crds.sh. DO NOT EDIT."
    sed '1{/^---$/d}' "${dir}/config/crd/bases/${crd}"
  } > "manifests/crds/${crd}"
done
