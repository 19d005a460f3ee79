#!/usr/bin/env bash
# Regenerates deepcopy, conversion and defaulter code. The generators are
# pinned as `tool` directives in go.mod (k8s.io/code-generator v0.34.4).
# Usage: hack/update-codegen.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BOILERPLATE=hack/boilerplate/boilerplate.go.txt

go tool deepcopy-gen --go-header-file "$BOILERPLATE" --output-file zz_generated.deepcopy.go \
  ./apis/config ./apis/config/v1
go tool conversion-gen --go-header-file "$BOILERPLATE" --output-file zz_generated.conversion.go \
  ./apis/config/v1
go tool defaulter-gen --go-header-file "$BOILERPLATE" --output-file zz_generated.defaults.go \
  ./apis/config/v1
