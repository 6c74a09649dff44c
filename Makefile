# ulat — see README.md. Everything here runs on Debian 12; `make deps` installs
# what is missing and the other targets call it first.

GO        ?= go
# <linux/types.h> needs <asm/types.h>, which is the same on every 64-bit
# Linux; -target bpf does not search the multiarch directory by itself.
MULTIARCH := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
STAGE     := build/libbpf
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LIBBPF_VERSION := $(shell cat libbpf/VERSION)

export CGO_ENABLED := 1
# Keeps cgo's default -O2 -g, which setting CGO_CFLAGS would drop.
export CGO_CFLAGS  := -O2 -g -I$(CURDIR)/$(STAGE)/include
export CGO_LDFLAGS := -L$(CURDIR)/$(STAGE)/lib -lbpf -lelf -lz
GOFLAGS_BUILD := -tags netgo,osusergo -trimpath \
	-ldflags '-s -w -X main.version=$(VERSION) -X main.libbpfVersion=$(LIBBPF_VERSION) -extldflags "-static"'

BPF_SRC  := bpf/ulat.bpf.c bpf/ulat.h bpf/arm64.h bpf/vmlinux.h
BPF_OBJS := bpf/ulat_x86.bpf.o bpf/ulat_arm64.bpf.o
BPF_SUMS := bpf/objects.sha256
GO_SRC  := $(shell find . -name '*.go' -not -path './e2e/*' -not -path './bench/*' -not -name '*_test.go') go.mod go.sum
UNIT_PKGS := ./buckets/... ./cgroup/... ./internal/... ./session/... ./agent/... ./bpf/... ./symbols/... ./probes/... ./report/... ./cmd/... ./doctor/... ./launch/... ./compare/... ./glob/... ./deploy/... ./bench/

.PHONY: all deps build test unit race e2e test-kernels demo bench bpf check-bpf vmlinux fuzz clean

all: build

# Idempotent and fast when nothing is missing.
deps:
	@bash scripts/deps.sh

$(STAGE)/VERSION: libbpf/VERSION libbpf/stage.sh
	@bash scripts/deps.sh
	@bash libbpf/stage.sh $(STAGE)

# The BPF objects, one per architecture (the program reads registers at
# their pt_regs offsets), are generated but committed, as cilium/ebpf
# commits its own: a clone then builds with the Go tool alone, and bin/ulat
# embeds the objects that were committed and tested. bpf/objects.sha256
# records the sources of the last build and its objects; they are rebuilt
# when a file no longer matches it rather than by the files' times, which
# in a fresh clone are only the order git wrote them in (a rebuild there
# would need clang, and another clang version would churn the objects).
# -fdebug-prefix-map keeps the checkout's path out of the objects' BTF, so
# that the same clang builds the same bytes in any directory.
BPF_FRESH := $(shell sha256sum --status --check $(BPF_SUMS) 2>/dev/null && echo yes)
bpf: $(BPF_SUMS)
ifeq ($(BPF_FRESH),yes)
$(BPF_SUMS) $(BPF_OBJS): ;
else
$(BPF_SUMS): $(BPF_OBJS)
	sha256sum $(BPF_SRC) libbpf/VERSION $(BPF_OBJS) > $@
bpf/ulat_%.bpf.o: $(STAGE)/VERSION FORCE
	clang -g -O2 -Wall -target bpf -D__TARGET_ARCH_$* -I$(STAGE)/include -Ibpf \
		-idirafter /usr/include/$(MULTIARCH) -fdebug-prefix-map=$(CURDIR)=. \
		-c bpf/ulat.bpf.c -o $@
	llvm-strip -g $@
FORCE:
endif

# Fails when the committed objects were not built from the committed
# sources (`make test` checks it before building anything, since building
# regenerates them): run `make bpf` and commit bpf/.
check-bpf:
	@test "$(BPF_FRESH)" = yes || { sha256sum --quiet --check $(BPF_SUMS); \
		echo "bpf/: the BPF objects are not those of the sources (bpf/objects.sha256): run make bpf and commit bpf/" >&2; exit 1; }

# vmlinux.h is committed generated output; regenerate it only when the BPF
# program needs kernel types it does not have yet.
vmlinux:
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > bpf/vmlinux.h

build: bin/ulat
bin/ulat: $(BPF_OBJS) $(BPF_SUMS) $(GO_SRC) $(STAGE)/VERSION
	$(GO) build $(GOFLAGS_BUILD) -o $@ ./cmd/ulat

# Unit tests need no privileges; the end-to-end tests run the real bin/ulat
# as root against targets they build, and are skipped (loudly) otherwise.
# One package per `go test -v` so that its output streams as it runs.
test: check-bpf lint bin/ulat race
	$(GO) vet ./...
	$(GO) test -count=1 $(UNIT_PKGS)
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(CI_FUZZTIME) FUZZ_TARGETS="$(CI_FUZZ_TARGETS)"
	$(GO) test -count=1 -v -timeout 30m ./e2e/
	@echo "== again with every call streamed to user space (--aggregate user): $(E2E_USER_TESTS)"
	ULAT_AGGREGATE=user $(GO) test -count=1 -v -timeout 10m -run '$(E2E_USER_TESTS)' ./e2e/
	$(MAKE) --no-print-directory test-kernels

# The kernel matrix (kernels/): the end-to-end suite of kernels/guest on
# this machine's kernel and on Debian's 5.10, 6.1 and 6.12 kernels booted in
# QEMU (downloaded once into ~/.cache/ulat/kernels). KERNELS="6.1" runs a
# subset, KERNELS=none the host's kernel only.
KERNELS ?= 5.10 6.1 6.12
test-kernels: bin/ulat
	@bash scripts/deps.sh --test
	ULAT_KERNELS="$(KERNELS)" $(GO) test -count=1 -v -timeout 60m ./kernels/

# The tests that run a second time with --aggregate user, so that both
# aggregation paths are tested end to end (the default, auto, counts in the
# kernel): counts, durations, accuracy, did-not-return, run and compare.
E2E_USER_TESTS := ^(TestTrace|TestAccuracy|TestUnwind|TestRun|TestMoreCallsInFlight|TestForkAndExec|TestSIGTERMReports)

# Fuzzes each target for FUZZTIME (go test -fuzz takes one target at a
# time); `make test` runs the seeds as ordinary tests and fuzzes every
# target for CI_FUZZTIME. FuzzOpen also reaches delve's DWARF reader, which
# panicked on a corrupt line table it found (now checked first, and a seed);
# 5 minutes more (28,000 inputs) found nothing, so CI fuzzes it too: a new
# find is a crash a user's binary could cause.
# -fuzzminimizetime keeps FuzzOpen from spending minutes shrinking inputs.
# CI counts inputs (2000 each, ~10 s for FuzzOpen here) rather than time:
# with a time budget, Go before 1.27 can fail a target with a bare
# "context deadline exceeded" when the budget ends while a worker is busy
# (golang/go#75804; it failed CI so once, no input written).
FUZZTIME ?= 10s
CI_FUZZTIME ?= 2000x
FUZZ_TARGETS ?= FuzzOpen FuzzGoProbesAMD64 FuzzGoProbesARM64
CI_FUZZ_TARGETS := FuzzOpen FuzzGoProbesAMD64 FuzzGoProbesARM64
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		echo "fuzz $$t for $(FUZZTIME)"; \
		$(GO) test -run='^$$' -fuzz="^$$t\$$" -fuzztime=$(FUZZTIME) -fuzzminimizetime=5s ./symbols/ || exit 1; \
	done

unit: $(BPF_SUMS)
	$(GO) test -count=1 $(UNIT_PKGS)

# The packages whose code runs goroutines, tested again under the race
# detector: the session engine (snapshots and intervals from any
# goroutine), symbols (Open beside delve and stderr), probes (calibration;
# its tests need root, as the end-to-end ones do, and skip without it),
# compare (a worker per CPU judging functions) and launch.
RACE_PKGS := ./session/... ./agent/... ./symbols/... ./probes/... ./compare/... ./launch/...
race: $(BPF_SUMS)
	$(GO) test -race -count=1 $(RACE_PKGS)

e2e: bin/ulat
	@bash scripts/deps.sh --test
	$(GO) test -count=1 -v -timeout 30m ./e2e/

bin/ulat-demo: cmd/ulat-demo/main.go
	$(GO) build -o $@ ./cmd/ulat-demo

# Runs the bundled demo server under load and traces its request handlers.
demo: bin/ulat bin/ulat-demo
	@bash scripts/demo.sh

# Benchmarks ulat against bpftrace on targets it builds (root; a few
# minutes). Informational: prints PASS/MISS against the goals, exits 0 on a
# MISS. BENCH_FLAGS go to the harness: BENCH_FLAGS='-only stepped
# -stepped-runs 10' runs a shorter rerun check alone (go run ./bench -h).
BENCH_FLAGS ?=
bench: bin/ulat bin/ulat-demo
	$(GO) run ./bench $(BENCH_FLAGS)

# Static checks: shellcheck on every shell script, `vagrant validate` on the
# lab's Vagrantfile for both providers. Installs shellcheck and Vagrant
# first (`deps.sh --test`): only `make test` needs them, builds and the lab
# VM do not.
SHELL_SCRIPTS := $(wildcard scripts/*.sh vagrant/*.sh) libbpf/stage.sh kernels/fetch.sh .ci/run
.PHONY: lint lab lab-ssh lab-destroy
lint:
	@bash scripts/deps.sh --test
	shellcheck $(SHELL_SCRIPTS)
	@bash vagrant/validate.sh

# The Vagrant lab (vagrant/LAB.md), run on the machine that hosts the VM:
# needs Vagrant and VirtualBox or libvirt there, not root.
lab:
	@bash vagrant/lab.sh up
lab-ssh:
	@bash vagrant/lab.sh ssh
lab-destroy:
	@bash vagrant/lab.sh destroy

# The agent's container image (deploy/Containerfile): bin/ulat on
# distroless/static, built with docker or podman (CONTAINER_TOOL), which
# need a running daemon or runtime; IMAGE names it. docs/agent.md, "Install".
IMAGE ?= ulat:dev
CONTAINER_TOOL ?= $(shell command -v docker 2>/dev/null || command -v podman 2>/dev/null)
.PHONY: image
image: bin/ulat
	@test -n "$(CONTAINER_TOOL)" || { echo "make image: neither docker nor podman is installed; where one is: docker build -f deploy/Containerfile -t $(IMAGE) bin/" >&2; exit 1; }
	$(CONTAINER_TOOL) build -f deploy/Containerfile -t $(IMAGE) bin/

# Leaves bpf/'s objects: they are committed.
clean:
	rm -rf bin build
