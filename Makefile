# edgeipc — see README.md. `make help` lists the targets.
GO       ?= go
PKGS     ?= ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS  := -s -w -X github.com/edgeipc/edgeipc/internal/cli.Version=$(VERSION) -X github.com/edgeipc/edgeipc/internal/cli.Commit=$(COMMIT)
export CGO_ENABLED := 0

.PHONY: help build run test test-native test-race bench lint

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

build: ## static binary for this machine into bin/edgeipc
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/edgeipc ./cmd/edgeipc

run: ## run the runtime on its built-in default configuration
	$(GO) run ./cmd/edgeipc run

test: lint test-native test-race ## the whole test suite

test-native: ## unit and cross-process tests on this machine
	$(GO) test -count=1 $(PKGS)

test-race: ## the race detector on everything
	CGO_ENABLED=1 $(GO) test -race -count=1 $(PKGS)

bench: ## Go benchmarks with allocations
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
