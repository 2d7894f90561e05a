# Developer tasks. `make help` lists them.
SHELL := bash
TOOLS := $(CURDIR)/.tools
BUF_VERSION := 1.75.0
BUF := $(TOOLS)/node_modules/.bin/buf
export GORACE ?= atexit_sleep_ms=0
# Every go command, in every module, uses at least the toolchain the root
# go.mod names, even where the Go installation defaults to GOTOOLCHAIN=local
# (as Go's own go.env does on fresh machines).
export GOTOOLCHAIN ?= $(shell sed -n 's/^toolchain //p' go.mod)+auto
# Analysis tools are pinned in tools/go.mod and run with `go tool`, so they
# never enter the service's own go.mod.
GOTOOL := go tool -modfile=$(CURDIR)/tools/go.mod
# The Go vulnerability database, pinned as a module version: govulncheck
# reads its data/osv directory offline.
VULNDB_VERSION := v0.0.0-20261105234957-e22db6528018
FUZZTIME ?= 10s
COVERDIR := $(CURDIR)/.cover

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: tools
tools: $(BUF) ## install buf into .tools (from npm)

$(BUF):
	npm install --no-save --no-audit --no-fund --prefix $(TOOLS) @bufbuild/buf@$(BUF_VERSION)

.PHONY: generate
generate: $(BUF) ## regenerate the Go code in gen/ from proto/
	find gen -name '*.pb.go' -delete
	$(BUF) generate

.PHONY: check-generate
check-generate: generate ## fail if the Go code in gen/ is not what proto/ generates
	@test -z "$$(git status --porcelain -- gen ':!gen/python')" || { git status --porcelain -- gen ':!gen/python'; echo "gen/ is stale: run make generate and commit"; exit 1; }

.PHONY: lint-proto
lint-proto: $(BUF) ## buf lint and buf format
	$(BUF) lint
	$(BUF) format -d --exit-code

.PHONY: lint-go
lint-go: ## gofmt and go vet
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))"; test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	go vet ./...

.PHONY: lint
lint: lint-proto lint-go ## all linters

.PHONY: staticcheck
staticcheck: ## staticcheck (pinned in tools/go.mod), in the root and the nested modules
	@for m in . $(GO_MODULES); do echo "staticcheck ($$m)"; (cd $$m && $(GOTOOL) staticcheck ./...) || exit 1; done

.PHONY: vulncheck
vulncheck: ## govulncheck against the pinned offline vulnerability database; fails on reachable findings
	@db="$$(cd / && GOFLAGS= go mod download -json golang.org/x/vulndb@$(VULNDB_VERSION) | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$$/\1/p')"; \
	test -d "$$db/data/osv" || { echo "vulndb $(VULNDB_VERSION): no data/osv in '$$db'"; exit 1; }; \
	echo "database: golang.org/x/vulndb@$(VULNDB_VERSION) ($$(ls "$$db/data/osv" | wc -l) entries)"; \
	for m in . $(GO_MODULES); do echo "govulncheck ($$m)"; (cd $$m && $(GOTOOL) govulncheck -db "file://$$db/data/osv" ./...) || exit 1; done

.PHONY: breaking
breaking: $(BUF) ## buf breaking against the merge base with main (the previous commit on main itself)
	.ci/buf-breaking $(BUF)

.PHONY: check-tidy
check-tidy: ## fail if go mod tidy would change go.mod or go.sum (service and tools)
	go mod tidy -diff
	go -C tools mod tidy -diff

.PHONY: fuzz
fuzz: ## run every fuzz target, in every module, for FUZZTIME (10s)
	.ci/fuzz $(FUZZTIME)

.PHONY: test
test: ## the test suite, with the race detector
	go test -race ./...

.PHONY: cover
cover: ## the test suite with the race detector, then coverage by package and in total
	@mkdir -p $(COVERDIR)
	set -o pipefail; go test -race -coverprofile=$(COVERDIR)/cover.out ./... | tee $(COVERDIR)/test.txt
	@echo "coverage of statements:"
	@sed -n 's/^ok[[:space:]]*\([^[:space:]]*\).*coverage: \([0-9.]*%\).*/  \2  \1/p' $(COVERDIR)/test.txt
	@go tool cover -func=$(COVERDIR)/cover.out | sed -n 's/^total:[^0-9]*/  total: /p'

.PHONY: run
run: ## run the orchestrator in demo mode
	go run ./cmd/orchestrator --demo

# --- Python stubs of the control plane (gen/python) ---
# Needs Debian's protobuf-compiler and protobuf-compiler-grpc (protoc and
# grpc_python_plugin on PATH).

.PHONY: generate-python
generate-python: $(BUF) ## regenerate the Python stubs in gen/python from proto/orchestrator
	$(BUF) generate --template buf.gen.python.yaml --path proto/orchestrator

.PHONY: check-generate-python
check-generate-python: generate-python ## fail if gen/python is not what proto/orchestrator generates
	@test -z "$$(git status --porcelain -- gen/python)" || { git status --porcelain -- gen/python; echo "gen/python is stale: run make generate-python and commit"; exit 1; }

BENCH_RUNS ?= 3
BENCH_DURATION ?= 10s

.PHONY: bench
bench: ## run the load-test scenarios (about 14 min) and regenerate BENCHMARKS.md and its plot
	go run ./cmd/loadtest/benchdoc run --runs $(BENCH_RUNS) --duration $(BENCH_DURATION)
	go run ./cmd/loadtest/benchdoc generate

.PHONY: bench-doc
bench-doc: ## regenerate BENCHMARKS.md and its plot from the results of the last make bench
	go run ./cmd/loadtest/benchdoc generate

# --- Nested Go modules (gen, sdk, examples/go) and the reference runners ---
# `go test ./...` at the root covers the root module only; these targets
# cover the modules nested in it.

GO_MODULES := gen sdk examples/go

.PHONY: tidy-modules
tidy-modules: ## fail if go.mod/go.sum of a nested module is not tidy
	@for m in $(GO_MODULES); do (cd $$m && go mod tidy -diff) || { echo "$$m: run go mod tidy"; exit 1; }; done

.PHONY: vet-modules
vet-modules: ## go vet in the nested modules
	@for m in $(GO_MODULES); do echo "go vet ($$m)"; (cd $$m && go vet ./...) || exit 1; done

.PHONY: test-modules
test-modules: ## tests of the nested modules, with the race detector
	@for m in $(GO_MODULES); do (cd $$m && go test -race ./...) || exit 1; done

.PHONY: check-sdk-deps
check-sdk-deps: ## a runner importing only the SDK builds no etcd, OpenTelemetry or zap
	.ci/check-sdk-deps

.PHONY: cluster-trial
cluster-trial: ## three replicas as processes on a three-member etcd cluster: kill -9, pause and quorum loss, timed (about 3 min)
	scripts/cluster-trial

.PHONY: examples
examples: ## run the Go and Python reference runners against orchestrator --demo
	.ci/run-examples

.PHONY: browser-test
browser-test: ## the dashboard's browser test in headless chromium, with its timings (needs chromium)
	OBDORCH_BROWSER_TESTS=1 go test -count=1 -run TestDashboardInBrowser -v ./orchestrator/admin/
