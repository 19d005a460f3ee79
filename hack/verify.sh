#!/usr/bin/env bash
# Read-only checks: formatting, vet, the generated replace block and the
# generated code are up to date, the Helm chart's CRDs are manifests/crds'.
set -euo pipefail
cd "$(dirname "$0")/.."

fail=0
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './vendor/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt needed on:" $unformatted >&2
  fail=1
fi
go vet ./... || fail=1
hack/update-replace.sh --verify || fail=1

# The Helm chart's CRDs are copies of manifests/crds (test/e2e checks it too).
for f in manifests/crds/*.yaml charts/locus/crds/*.yaml; do
  name=$(basename "$f")
  [ "$name" = kustomization.yaml ] && continue
  if ! cmp -s "manifests/crds/$name" "charts/locus/crds/$name"; then
    echo "charts/locus/crds/$name differs from manifests/crds/$name: cp manifests/crds/$name charts/locus/crds/" >&2
    fail=1
  fi
done

# Regenerate into a scratch copy of the tree and compare.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar --exclude=./bin --exclude=./.git --exclude=./dist -cf - . | tar -C "$scratch" -xf -
(cd "$scratch" && hack/update-codegen.sh >/dev/null && hack/update-crds.sh >/dev/null)
for f in $(cd "$scratch" && find . -name 'zz_generated.*.go' -o -path './manifests/crds/*.yaml' -o -path './pkg/generated/*' -type f); do
  if ! cmp -s "$scratch/$f" "$f"; then
    echo "generated file is stale: $f (run hack/update-codegen.sh)" >&2
    fail=1
  fi
done
exit $fail
