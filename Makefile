GO ?= go
BIN := bin

# The locus version (git describe) and the Kubernetes version it is built on
# (k8s.io/kubernetes in go.mod), stamped into the binaries (pkg/version).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.0.0-dev)
KUBE_VERSION := $(shell $(GO) list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/kubernetes)
LDFLAGS := -X locus.dev/locus/pkg/version.version=$(VERSION) -X k8s.io/component-base/version.gitVersion=$(KUBE_VERSION)

.PHONY: all build test test-unit test-integration test-race verify fuzz update demo bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# Everything: unit tests, integration tests on a real in-process
# kube-apiserver, and the race detector on the packages with concurrency.
test:
	$(GO) test -count=1 ./...
	$(MAKE) test-race

test-unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /test/)

test-integration:
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

clean:
	rm -rf $(BIN)
