GO ?= go
BIN := bin

# The locus version (git describe) and the Kubernetes version it is built on
# (k8s.io/kubernetes in go.mod), stamped into the binaries (pkg/version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
KUBE_VERSION := $(shell $(GO) list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/kubernetes)
LDFLAGS := -X locus.dev/locus/pkg/version.version=$(VERSION) -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION)

# The real Helm that test/e2e renders and lints charts/locus with, built
# from the Go module proxy (the test builds it there too when bin/helm is
# missing or another version, reading the version from this line).
HELM_VERSION := v3.19.5

.PHONY: all build helm test test-unit test-integration test-race verify fuzz update demo bench soak clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# bin/helm at HELM_VERSION (a no-op when it is built already).
helm:
	GOBIN=$(abspath $(BIN)) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)

# Everything: unit tests, integration tests on a real in-process
# kube-apiserver (test/e2e also renders, lints and installs charts/locus
# with bin/helm), and the race detector on the packages with concurrency.
test: helm
	$(GO) test -count=1 ./...
	$(MAKE) test-race

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/)

test-integration: helm
	$(GO) test -count=1 ./test/...

test-race:
	$(GO) test -count=1 -race ./pkg/compliance/... ./pkg/datalocality/... ./pkg/batchquota/...

verify:
	hack/verify.sh
	$(GO) test -count=1 -run '^Fuzz' $(FUZZ_PKGS)

# Fuzz targets, each for FUZZTIME (their seed corpora run with make verify
# and make test). FuzzConfig (the whole KubeSchedulerConfiguration through
# kube-scheduler's decoder) runs its seeds only: instrumented, that decoder
# manages a few executions a second.
FUZZ_PKGS := ./pkg/batchquota/quota ./pkg/compliance ./pkg/datalocality ./pkg/plugins ./apis/config/validation
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzCache$$' -fuzztime $(FUZZTIME) ./pkg/batchquota/quota
	$(GO) test -run '^$$' -fuzz '^FuzzParseRequirements$$' -fuzztime $(FUZZTIME) ./pkg/compliance
	$(GO) test -run '^$$' -fuzz '^FuzzAnnotations$$' -fuzztime $(FUZZTIME) ./pkg/datalocality
	$(GO) test -run '^$$' -fuzz '^FuzzDataset$$' -fuzztime $(FUZZTIME) ./pkg/datalocality
	$(GO) test -run '^$$' -fuzz '^FuzzValidateArgs$$' -fuzztime $(FUZZTIME) ./apis/config/validation

update:
	hack/update-replace.sh
	hack/update-codegen.sh

# The sandbox: a whole control plane in this process runs a scenario and
# prints where each pod landed and why.
demo:
	$(GO) run ./cmd/locus-sandbox --scenario examples/scenarios/data-platform.yaml

# Throughput against the default profile and scheduler-plugins, in
# alternating rounds (sizes and method: test/bench/README.md).
bench:
	test/bench/run.sh

# A release, offline (only the Go module proxy): make release VERSION=v0.1.0
# writes into $(DIST) the kubectl-locus and locus-scheduler archives of each
# platform in PLATFORMS, checksums.txt, the krew manifest locus.yaml (uris
# under RELEASE_URL), the install manifest locus-$(VERSION).yaml (image
# $(IMAGE_REPO):$(VERSION)), locus-crds-$(VERSION).yaml, and the image as an
# OCI layout tarball (hack/release; its test: go test ./hack/release).
# Every file is reproducible: its times are SOURCE_DATE_EPOCH (the commit's).
DIST := dist
IMAGE_REPO ?= ghcr.io/locus-dev/locus-scheduler
SOURCE_URL ?= https://github.com/locus-dev/locus
RELEASE_URL ?= $(SOURCE_URL)/releases/download/$(VERSION)
PLATFORMS ?= linux/amd64,linux/arm64,darwin/amd64,darwin/arm64
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)

.PHONY: release
release:
	rm -rf $(DIST)
	$(GO) run ./hack/release -version '$(VERSION)' -ldflags '$(LDFLAGS)' -platforms '$(PLATFORMS)' \
		-image-repo '$(IMAGE_REPO)' -source-url '$(SOURCE_URL)' -release-url '$(RELEASE_URL)' \
		-revision '$(REVISION)' -source-date-epoch '$(SOURCE_DATE_EPOCH)' -out $(DIST)

# A soak: 1,000 nodes, 10,000 pods (plain, quota-limited, gangs, Dataset
# readers), 5 minutes of churn, then a drain; goroutines and heap must come
# back near their baseline (test/soak; about 15 minutes on the 2-core machine).
# LOCUS_SOAK_NODES, _PODS, _CHURN, _RATE, _SETTLE, _TIMEOUT, _OUT (JSON), _PPROF (profiles).
soak:
	LOCUS_SOAK=1 $(GO) test -count=1 -v -timeout 60m ./test/soak/

clean:
	rm -rf $(BIN) $(DIST)
