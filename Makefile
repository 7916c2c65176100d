# nbo — make targets. Plain `make` lists them.
GO        ?= go
PKGS      ?= ./...
BENCHTIME ?= 1s
export CGO_ENABLED = 1

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  make %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build bin/nbo
	$(GO) build -o bin/nbo ./cmd/nbo

.PHONY: run
run: build ## Start the live demo: nbo on the embedded broker with a simulated retailer
	./bin/nbo serve --demo

.PHONY: test
test: ## Run the whole test suite with the race detector
	$(GO) test -race -count=1 -timeout 14m $(PKGS)

.PHONY: lint
lint: ## go vet, gofmt and the import-direction test
	$(GO) vet $(PKGS)
	@out=$$(gofmt -l cmd engine features models scenarios bench); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) test -count=1 -run TestImportDirection ./cmd/nbo

.PHONY: bench
bench: build ## Every go benchmark, then the side-by-side comparisons (nbo bench; writes bench/results/)
	@if ! command -v redis-server >/dev/null 2>&1; then \
	  echo "bench: redis-server is not installed; installing it with apt-get for the Redis comparison"; \
	  (apt-get update && apt-get install -y redis-server) || \
	  echo "bench: could not install redis-server; the Redis comparison will be skipped"; \
	fi
	@echo "# make bench at commit $$(git rev-parse --short HEAD 2>/dev/null || echo unknown), $$(date -u +%Y-%m-%dT%H:%MZ): Go benchmarks, $(BENCHTIME) x 5 counts each" > bench/results/go-bench.txt
	bash -o pipefail -c "$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -count 5 -timeout 90m $(PKGS) | tee -a bench/results/go-bench.txt"
	./bin/nbo bench --out bench/results

.PHONY: bench-quick
bench-quick: build ## A short pass of the comparisons (under 3 minutes; Redis only if installed; writes bench/results/quick/)
	./bin/nbo bench --quick --out bench/results/quick

.PHONY: fuzz
fuzz: ## Run each fuzz target for FUZZTIME (default 30s)
	@for t in $$(grep -rl 'func Fuzz' --include='*_test.go' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho 'func Fuzz[A-Za-z0-9_]*' $$t/*_test.go | sed 's/func //'); do \
	    echo "== $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-30s} $$t || exit 1; \
	  done; done

.PHONY: clean
clean: ## Remove build output and the local data dir
	rm -rf bin data
