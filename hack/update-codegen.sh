#!/usr/bin/env bash
# Regenerates deepcopy, conversion and defaulter code, the typed clientset,
# listers and informers of locus.dev/v1alpha1 (pkg/generated), and the
# Dataset CRD (manifests/crds/locus.dev_datasets.yaml). The
# k8s.io/code-generator tools (v0.34.4) are pinned as `tool` directives in
# go.mod. controller-gen is installed from the module proxy at a pinned
# version into hack/tools/bin: as a go.mod tool it would raise
# golang.org/x/net, x/sys, x/tools and protobuf for the scheduler's own build.
# Usage: hack/update-codegen.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BOILERPLATE=hack/boilerplate/boilerplate.go.txt
MODULE=locus.dev/locus
CONTROLLER_GEN_VERSION=v0.19.0
CONTROLLER_GEN=hack/tools/bin/controller-gen

go tool deepcopy-gen --go-header-file "$BOILERPLATE" --output-file zz_generated.deepcopy.go \
  ./apis/config ./apis/config/v1 ./apis/locus/v1alpha1 ./pkg/explain/report
go tool conversion-gen --go-header-file "$BOILERPLATE" --output-file zz_generated.conversion.go \
  ./apis/config/v1
go tool defaulter-gen --go-header-file "$BOILERPLATE" --output-file zz_generated.defaults.go \
  ./apis/config/v1

# Clientset, listers and informers, regenerated from scratch so that nothing
# stale survives a rename.
rm -rf pkg/generated
go tool client-gen --go-header-file "$BOILERPLATE" \
  --input-base "$PWD/apis" --input locus/v1alpha1 \
  --clientset-name versioned \
  --output-dir pkg/generated/clientset --output-pkg "$MODULE/pkg/generated/clientset"
go tool lister-gen --go-header-file "$BOILERPLATE" \
  --output-dir pkg/generated/listers --output-pkg "$MODULE/pkg/generated/listers" \
  ./apis/locus/v1alpha1
go tool informer-gen --go-header-file "$BOILERPLATE" \
  --versioned-clientset-package "$MODULE/pkg/generated/clientset/versioned" \
  --listers-package "$MODULE/pkg/generated/listers" \
  --output-dir pkg/generated/informers --output-pkg "$MODULE/pkg/generated/informers" \
  ./apis/locus/v1alpha1

if [ "$("$CONTROLLER_GEN" --version 2>/dev/null)" != "Version: $CONTROLLER_GEN_VERSION" ]; then
  GOBIN="$PWD/hack/tools/bin" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$CONTROLLER_GEN_VERSION"
fi
rm -f manifests/crds/locus.dev_*.yaml
"$CONTROLLER_GEN" crd:crdVersions=v1 paths=./apis/locus/... output:crd:artifacts:config=manifests/crds
