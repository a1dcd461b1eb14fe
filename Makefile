# tabnas: build, tests with real servers, benchmarks. `make test` is what CI runs.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c

GO      ?= go
PKGS    ?= ./...
SCRIPTS := infra/scripts
# Extra benchmark scripts run after the Go benchmarks when present (e.g. peers in Python).
BENCH_HOOKS ?= bench/mlp.sh

.PHONY: all build demo test test-short bench servers servers-stop fmt

all: build

build:
	$(GO) build $(PKGS)
	@if [[ -d cmd/tabnas ]]; then mkdir -p bin && $(GO) build -o bin/tabnas ./cmd/tabnas && echo "built bin/tabnas"; fi

# A whole search on the bundled Connect-4 data, in one process: model, report, predict command.
demo:
	mkdir -p bin && $(GO) build -o bin/tabnas ./cmd/tabnas
	bin/tabnas search --data data/connect4/connect4.csv.gz --categorical '*' --max-params 20000 --out runs

# Real nats-server and versitygw on loopback ports, started and always stopped around the run.
test:
	$(SCRIPTS)/install-chromium.sh
	$(SCRIPTS)/with-servers.sh bash -c '$(GO) vet $(PKGS) && $(GO) test -race -count=1 -timeout 25m $(PKGS)'

# No servers (their tests skip), no race detector: the quick inner loop.
test-short:
	$(GO) test -short -count=1 $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)
	@for h in $(BENCH_HOOKS); do \
		if [[ -f "$$h" ]]; then echo "== $$h"; bash "$$h"; else echo "== $$h not present, skipped"; fi; \
	done

# Servers for interactive use: eval "$$(infra/scripts/servers.sh env)" then go test ...
servers:
	$(SCRIPTS)/install-servers.sh >/dev/null
	$(SCRIPTS)/servers.sh start
	@echo 'load the env with: eval "$$($(SCRIPTS)/servers.sh env)"'

servers-stop:
	$(SCRIPTS)/servers.sh stop

fmt:
	$(GO) fmt $(PKGS)
