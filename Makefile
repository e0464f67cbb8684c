# Rushes: build, test, run and benchmark.
#
#   make run     serve a demo folder over NFSv3 on 127.0.0.1:2049 (host mode, for now)
#   make test    everything CI runs: format and lint checks, unit and end-to-end tests
#   make bench   rushesd against NFS-Ganesha on the same folder, same client, same run
#   make deps    install what the targets above need (Debian 12, as root or with sudo)

SHELL := /bin/bash
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the build, the tests and the benchmark use.
APT_PACKAGES := build-essential pkg-config libnfs-utils nfs-ganesha nfs-ganesha-vfs

.PHONY: all deps build test lint run bench clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "==> installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (https://rustup.rs)"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "==> installing cargo-nextest"; $(CARGO) install --locked cargo-nextest; }

build:
	$(CARGO) build --workspace --bins

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

# The end-to-end tests start target/debug/rushesd, so the binaries are built first.
test: deps lint build
	$(CARGO) nextest run --workspace --no-fail-fast

DEMO := out/demo
run: deps build
	@mkdir -p $(DEMO) out/state
	@[ -e $(DEMO)/README.txt ] || echo "Rushes demo share: files you copy here are served over NFSv3." > $(DEMO)/README.txt
	@chmod 0777 $(DEMO)
	@echo "==> serving $(DEMO) as /demo on 127.0.0.1:2049 (Ctrl-C to stop)"
	@echo "    Linux:  mount -t nfs -o vers=3,proto=tcp,port=2049,mountport=2049,nolock 127.0.0.1:/demo /mnt"
	@echo "    libnfs: nfs-ls 'nfs://127.0.0.1/demo?nfsport=2049&mountport=2049'"
	$(SUDO) target/debug/rushesd host --listen 127.0.0.1:2049 --state-dir out/state demo=$(DEMO)

bench: deps
	$(CARGO) build --release --workspace --bins
	$(SUDO) tests/bench/nfs-vs-ganesha.sh

clean:
	$(CARGO) clean
	rm -rf out
