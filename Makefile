# edgeipc — see README.md. `make help` lists the targets.
GO       ?= go
PKGS     ?= ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT   ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Evaluate once: others may commit while a long `make test` runs, and every
# binary and package of one run must carry the same stamp.
VERSION  := $(VERSION)
COMMIT   := $(COMMIT)
LDFLAGS  := -s -w -X github.com/edgeipc/edgeipc/internal/cli.Version=$(VERSION) -X github.com/edgeipc/edgeipc/internal/cli.Commit=$(COMMIT)
export CGO_ENABLED := 0

# Release targets: NAME -> GOARCH, GOARM. Binaries are dist/edgeipc-linux-NAME;
# Debian architectures: amd64, arm64, armhf (armv7), armel (armv6).
TARGETS      := amd64 arm64 armv7 armv6
goarch_amd64 := amd64
goarch_arm64 := arm64
goarch_armv7 := arm
goarch_armv6 := arm
goarm_armv7  := 7
goarm_armv6  := 6
# qemu CPU models for the ARM test runs (read by qemu-user from QEMU_CPU,
# also when the kernel starts it through binfmt_misc for re-executed children).
QEMU_CPU_arm64 ?= cortex-a53
QEMU_CPU_armv7 ?= cortex-a7
QEMU_CPU_armv6 ?= arm1176
ARM_TEST_TIMEOUT ?= 30m
FUZZTIME ?= 30s
SOAKTIME ?= 2m

DIST        := dist
BINARIES    := $(addprefix $(DIST)/edgeipc-linux-,$(TARGETS))
NFPM        ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
DEB_VERSION := $(shell scripts/deb-version.sh $(VERSION) $(shell git rev-list --count HEAD 2>/dev/null))
# The packaged /etc/edgeipc/edgeipc.toml: the runtime's built-in configuration.
DEB_CONFIG  ?= runtime/default.toml
DEB_AMD64   := $(DIST)/edgeipc_$(DEB_VERSION)_amd64.deb
# Every timestamp in the packages is the commit's time, not the build's
# (nfpm reads SOURCE_DATE_EPOCH): the same commit gives the same .deb bytes.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
SOURCE_DATE_EPOCH := $(SOURCE_DATE_EPOCH)
export SOURCE_DATE_EPOCH
RELEASE_ENV := EDGEIPC_DIST=$(CURDIR)/$(DIST) EDGEIPC_VERSION=$(VERSION) EDGEIPC_COMMIT=$(COMMIT) EDGEIPC_NFPM="$(NFPM)"

.PHONY: help build run setup test test-native test-race bench fuzz soak lint \
	cross $(BINARIES) release-check size deps deb test-deb \
	qemu-setup qemu-check test-arm test-arm64 test-armv7 test-armv6

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 18

build: ## static binary for this machine into bin/edgeipc
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/edgeipc ./cmd/edgeipc

# The binary runs directly, not under `go run`, which exits 1 when Ctrl-C
# interrupts its child, so that make reported "Error 1" for a clean stop.
run: build ## run the runtime on its built-in default configuration (Ctrl-C stops)
	bin/edgeipc run

test: setup lint test-native test-race test-arm release-check ## the whole test suite: native, race, ARM under qemu, release checks

# Under make test a test whose host tool (cc, python3) is missing fails
# instead of skipping (internal/testenv); setup installs them.
test: export EDGEIPC_REQUIRE_TOOLS = 1

setup: ## install what the tests need (as root), or say what to run
	scripts/setup.sh

test-native: ## unit and cross-process tests on this machine
	$(GO) test -count=1 $(PKGS)

test-race: ## the race detector on everything
	CGO_ENABLED=1 $(GO) test -race -count=1 $(PKGS)

bench: ## Go benchmarks with allocations
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

fuzz: ## run every fuzz target for FUZZTIME each (default 30s); failures land in testdata/fuzz
	@for t in shm:FuzzRingImage shm:FuzzRingPatches runtime:FuzzParse runtime/framing:FuzzDecoder runtime/control:FuzzDecode; do \
	  echo "== $${t#*:} ($${t%%:*})"; \
	  $(GO) test -run '^$$' -fuzz "^$${t#*:}$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 5s ./$${t%%:*} || exit 1; \
	done

soak: ## crash soak of the rings for SOAKTIME (default 2m): real processes SIGKILLed at random, every frame checked
	$(GO) test -count=1 -run '^TestSoak$$' -timeout 0 ./shm -soak $(SOAKTIME)

# The vet for darwin keeps the packages building off Linux, where they
# return errors wrapping ErrNotSupported (x_other.go files).
lint: ## gofmt, go vet, and go vet for darwin
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)

# ---- release: cross builds, static/size checks, packages -------------------

$(BINARIES): $(DIST)/edgeipc-linux-%:
	@mkdir -p $(DIST)
	GOOS=linux GOARCH=$(goarch_$*) GOARM=$(goarm_$*) $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $@ ./cmd/edgeipc

cross: $(BINARIES) ## static stripped binaries for amd64 arm64 armv7 armv6 into dist/, checked and sized
	$(RELEASE_ENV) $(GO) test -count=1 -run 'TestStatic|TestStamped|TestSizeBudget' ./internal/release
	@$(MAKE) --no-print-directory size

size: ## print the size of each dist/ binary against its budget
	@printf '%-28s %10s %10s %10s\n' binary bytes MiB budget
	@for t in $(TARGETS); do f=$(DIST)/edgeipc-linux-$$t; \
	  b=$$(awk -v t=linux-$$t '$$1==t {print $$2}' internal/release/budget.txt); \
	  s=$$(stat -c %s $$f) || exit 1; \
	  awk -v f=$$f -v s=$$s -v b="$$b" 'BEGIN {printf "%-28s %10d %10.2f %10s\n", f, s, s/1048576, b}'; done

deps: ## the packages and modules linked into edgeipc (for docs/performance.md)
	$(GO) list -deps -f '{{if not .Standard}}{{.ImportPath}}{{end}}' ./cmd/edgeipc
	$(GO) version -m $(DIST)/edgeipc-linux-amd64

deb: cross ## .deb packages (amd64 arm64 armhf armel) into dist/ with nfpm, their contents checked
	@set -e; for t in $(TARGETS); do \
	  a=$$(case $$t in amd64) echo amd64;; arm64) echo arm64;; armv7) echo armhf;; armv6) echo armel;; esac); \
	  GO="$(GO)" scripts/deb-copyright.sh $(DIST)/edgeipc-linux-$$t >$(DIST)/copyright-$$a; \
	  sed -e "s|@ARCH@|$$a|" -e "s|@VERSION@|$(DEB_VERSION)|" -e "s|@BINARY@|$(DIST)/edgeipc-linux-$$t|" \
	      -e "s|@CONFIG@|$(DEB_CONFIG)|" -e "s|@COPYRIGHT@|$(DIST)/copyright-$$a|" packaging/nfpm.yaml.in >$(DIST)/nfpm-$$a.yaml; \
	  rm -f $(DIST)/edgeipc_*_$$a.deb; \
	  $(NFPM) package -f $(DIST)/nfpm-$$a.yaml -p deb -t $(DIST)/edgeipc_$(DEB_VERSION)_$$a.deb; \
	done
	@ls -l $(DIST)/*.deb
	$(RELEASE_ENV) $(GO) test -count=1 -run 'TestDebContents|TestDebReproducible' ./internal/release

test-deb: deb ## install the amd64 .deb here (root), check it, run it, purge it
	EDGEIPC_DEB=$(CURDIR)/$(DEB_AMD64) EDGEIPC_DEB_CONFIG=$(CURDIR)/$(DEB_CONFIG) $(RELEASE_ENV) \
	  $(GO) test -count=1 -v -run 'TestDeb' ./internal/release

release-check: cross test-deb ## cross builds + static + stamped + size budget + deb install test

# ---- ARM under qemu-user ----------------------------------------------------

qemu-setup: ## (root) register qemu-arm/qemu-aarch64 with binfmt_misc
	scripts/setup-qemu.sh

qemu-check: $(DIST)/edgeipc-linux-arm64 $(DIST)/edgeipc-linux-armv7 $(DIST)/edgeipc-linux-armv6 ## prove ARM binaries run via binfmt and QEMU_CPU is honoured
	@scripts/setup-qemu.sh --check
	QEMU_CPU=$(QEMU_CPU_arm64) $(DIST)/edgeipc-linux-arm64 version
	QEMU_CPU=$(QEMU_CPU_armv7) $(DIST)/edgeipc-linux-armv7 version
	QEMU_CPU=$(QEMU_CPU_armv6) $(DIST)/edgeipc-linux-armv6 version
	@if QEMU_CPU=arm1176 $(DIST)/edgeipc-linux-armv7 version >/dev/null 2>&1; then \
	  echo "qemu-check: a GOARM=7 binary ran with QEMU_CPU=arm1176: QEMU_CPU is not honoured, the armv6 tests would not test ARMv6"; exit 1; \
	else echo "qemu-check: ok, GOARM=7 binary refused to run on arm1176 (QEMU_CPU honoured)"; fi

test-arm: test-arm64 test-armv7 test-armv6 ## the whole suite under qemu for arm64, armv7 and armv6

# scripts/qemu-test.sh reruns a package only if qemu-user deadlocked one of
# its forks (internal/qemuwatch says so); any other failure fails.
ARM_TEST = GOARCH=$(goarch_$(1)) GOARM=$(goarm_$(1)) QEMU_CPU=$(QEMU_CPU_$(1)) GO=$(GO) scripts/qemu-test.sh -count=1 -timeout $(ARM_TEST_TIMEOUT) -- $(PKGS)

test-arm64: qemu-check ## the whole suite under qemu-user, GOARCH=arm64, QEMU_CPU=cortex-a53
	$(call ARM_TEST,arm64)

test-armv7: qemu-check ## the whole suite under qemu-user, GOARM=7, QEMU_CPU=cortex-a7
	$(call ARM_TEST,armv7)

test-armv6: qemu-check ## the whole suite under qemu-user, GOARM=6, QEMU_CPU=arm1176
	$(call ARM_TEST,armv6)
