# hedge — every target that builds or tests goes through scripts/cgo-env.sh,
# the one place that holds llama.cpp's cgo flags, and scripts/setup.sh, which
# installs what a fresh machine lacks.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
CGO_ENV := eval "$$(scripts/cgo-env.sh)" &&
# make run keeps everything under ./.hedge (state, socket, models).
RUN_ENV := HEDGE_STATE_DIR=./.hedge HEDGE_SOCKET=./.hedge/hedge.sock

.DEFAULT_GOAL := help
.PHONY: help setup build build-bench build-arm64 test-qemu test-service deb run test test-chaos fuzz bench vet fmt-check clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

setup: ## install what building and testing need (Debian packages, ONNX Runtime, Go modules)
	scripts/setup.sh

build: ## build bin/hedge for this machine, with its llama.cpp CPU variants and ONNX Runtime beside it
	scripts/setup.sh build
	@# hedge finds its CPU variants and ONNX Runtime beside its binary: bin/
	@# is self-contained, and a service installed from it does not depend on
	@# a home directory. Variants of another build are removed first.
	$(CGO_ENV) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/hedge ./cmd/hedge && \
		rm -f bin/libggml-cpu-*.so && cp "$$HEDGE_LLAMA_DIR"/lib/libggml-cpu-*.so bin/
	cp "$$(scripts/fetch-ort.sh)" bin/libonnxruntime.so.1

build-bench: ## build bin/hedge-bench: the benchmark, report and plot tooling, never installed on a device
	scripts/setup.sh build
	$(CGO_ENV) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/hedge-bench ./cmd/hedge-bench

build-arm64: ## cross-build bin/hedge-linux-arm64 (cgo), for every arm64 board
	scripts/build-arm64.sh

test-qemu: ## run the .debs' hedge under qemu as a Pi 4, a Pi 5, a pre-AVX and a Haswell x86, and compare with this machine
	scripts/test-qemu.sh

test-service: ## run hedge as a service under a real systemd (nspawn guests): the README install, the .deb, the watchdog, the sandbox (root)
	scripts/test-service.sh

deb: ## build dist/hedge_<version>_{amd64,arm64}.deb
	scripts/deb.sh

run: build ## run hedge on embedded defaults, state under ./.hedge/
	@mkdir -p .hedge
	$(RUN_ENV) bin/hedge run

test: fmt-check ## install what the tests need, then run every test (Go tests under -race), timing each step
	scripts/test.sh

test-chaos: ## the chaos suite: load over MQTT and the socket through broker restarts, a cloud black hole, SIGKILLs, a full disk, clock jumps (root)
	scripts/setup.sh test
	scripts/chaos.sh

fuzz: ## fuzz every target for FUZZTIME each (default 2m, ~25 min; FUZZ=regexp picks some), see docs/fuzz.md
	scripts/setup.sh test
	FUZZTIME=$${FUZZTIME:-2m} scripts/fuzz.sh

bench: build build-bench ## run every benchmark (BENCH=go,slm,cloud,mqtt,llm,tiers,edge for a subset) and write BENCHMARKS.md
	scripts/bench.sh

vet: ## go vet every package, the chaos suite's files included
	$(CGO_ENV) $(GO) vet ./...
	$(CGO_ENV) $(GO) vet -tags chaos ./cmd/hedge/

fmt-check: ## fail when a Go file is not gofmt'ed
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "not gofmt'ed:"; echo "$$out"; exit 1; fi

clean: ## remove build outputs and the make-run state
	rm -rf bin .hedge
