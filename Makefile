# Rushes: build, test, run and benchmark.
#
#   make run     build the image and boot it in QEMU (UEFI, USB stick, NVMe and SATA
#                disks), serial console on this terminal, NFS on 127.0.0.1:2049
#   make test    everything CI runs: lint, unit tests, end-to-end tests on the host and
#                in QEMU guests booting the real image
#   make image   build out/rushes.img (packages cached in $(RUSHES_CACHE)), its optional
#                extensions in out/extensions (ffmpeg, for thumbnails), and the test
#                client guest out/client/ (a Linux NFS client, never shipped)
#   make host    serve a demo folder over NFSv3 on 127.0.0.1:2049 without the image
#   make bench   rushesd against NFS-Ganesha on the same folder, same client, same run
#                (with our pipelined client, and one request at a time from PyPI's nfs-rs);
#                what activity recording costs (rushesd with it on against off); the
#                rollups' intake; the offload card against the kernel's initiator;
#                placement's simulate, and NFS through the namespace over pools, reads
#                of moved data and moves against cp; Samba through the FUSE view against
#                Samba on the same folder; the media catalog (queries over 1 M clips,
#                extraction against ffprobe, commit to searchable)
#   make bundle  sign an update bundle of the image just built (out/rushes-VERSION.bundle)
#                with $(RUSHES_SIGNING_KEY), the key `make image` makes the image trust
#   make fuzz    run each parser's cargo-fuzz target for FUZZ_SECONDS (default 60)
#   make deps    install what the targets above need (Debian 12, as root or with sudo)

SHELL := /bin/bash
CARGO ?= cargo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages the build, the image, the tests and the benchmark use.
# libclang-dev: libublk's bindings are generated with bindgen at build time.
# rpcbind (rpcinfo) and nfs-common (showmount) are clients the tests ask the portmapper with;
# iperf3 measures the loopback limit beside the single-stream read.
# samba, samba-vfs-modules and smbclient: view-bench's Samba, on the folder and through the
# FUSE view, and its client.
# cryptsetup-bin and bcache-tools write the real LUKS and bcache headers the pools guest
# must see as data on its spare disks (mkswap, from util-linux, writes the swap one).
# ffmpeg makes the catalog tests' media, and its ffprobe is what they are checked against;
# openexr's exrheader is OpenEXR's own reader, for what ffprobe does not report of EXR.
# rclone is the peer copy-bench measures copies to an S3 store against.
APT_PACKAGES := build-essential pkg-config squashfs-tools libnfs-utils nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common \
	kmod e2fsprogs zstd debian-archive-keyring qemu-system-x86 qemu-utils ovmf chrony iperf3 \
	libclang-dev util-linux xfsprogs cryptsetup-bin bcache-tools python3-venv samba samba-vfs-modules smbclient ffmpeg openexr rclone curl openssl chromium chromium-driver

# schemathesis (PyPI) fuzzes the management API from its OpenAPI document
# (tests/tests/openapi_host.rs); it lives in its own venv, outside the checkout.
SCHEMATHESIS_VENV ?= /var/cache/rushes-tools/schemathesis
SCHEMATHESIS_VERSION := 4.32.5

# Extensions put on the stick as partitions of their own (`make image
# RUSHES_EXTENSIONS=ffmpeg`); each is built beside it in out/extensions either way.
RUSHES_EXTENSIONS ?=

# The copies tests' targets (appliance/copies/tests/against_targets.rs), outside the
# checkout: moto's server (PyPI), an S3 written apart from s3s, with Microsoft's Python
# client for Azure Storage in the same venv; and Azurite (npm), Microsoft's emulator.
MOTO_VENV ?= /var/cache/rushes-tools/moto
MOTO_VERSION := 5.2.6
AZURE_BLOB_VERSION := 12.31.1
AZURITE_DIR ?= /var/cache/rushes-tools/azurite
AZURITE_VERSION := 3.37.0

# Downloaded Debian packages for the image live outside the checkout.
RUSHES_CACHE ?= /var/cache/rushes-mkimage

# The version the image runs, and the oldest version `make bundle`'s bundle updates.
RUSHES_VERSION ?= 0.1.0
RUSHES_MIN_VERSION ?= 0.1.0
# The key update bundles are signed with: made on first use, outside the checkout, never
# committed. The image trusts its public half (.pub); a facility's build uses its own.
RUSHES_SIGNING_KEY ?= $(HOME)/.config/rushes/update-signing.key
export RUSHES_SIGNING_KEY

# The cargo profile the image's programs are built with: release for `make image`, `make
# run` and `make bundle`; `make test` uses dev (see Cargo.toml's [profile.dev.package.*]).
IMAGE_PROFILE ?= release
IMAGE_DEV = $(filter dev,$(IMAGE_PROFILE))
IMAGE_BINS = target/$(if $(IMAGE_DEV),debug,$(IMAGE_PROFILE))
# In dev, the very build `make build` made (the same features, so nothing is compiled again).
IMAGE_CRATES = $(if $(IMAGE_DEV),--workspace --bins,-p rushes-init -p rushesd \
	-p rushesctl -p rushes-console -p rushes-firmware -p rushes-mkimage -p rushes-update)
# zstd's level for the root image and the initramfs: 19 for the product (a 72.5 MiB root
# image, half a minute to pack on 2 cores); 9 for the tests' image (88 MiB in seconds).
IMAGE_ZSTD = $(if $(IMAGE_DEV),9,19)

.PHONY: all deps build test lint run host image bundle bench clean fuzz audit soak powercut room

# Each parser's cargo-fuzz target runs this many seconds (`make fuzz FUZZ_SECONDS=3600`).
FUZZ_SECONDS ?= 60
# The fuzz crates, each outside the workspace (libFuzzer's instrumentation).
FUZZ_CRATES := appliance/catalog/fuzz appliance/init/fuzz appliance/nas/fuzz appliance/rushesd/fuzz appliance/update/fuzz firmware/fuzz

all: build

# Two passes: installing Debian's QEMU removes a newer qemu-utils that breaks it (some
# machines come with a backport), and the second pass installs the matching one.
deps:
	@for pass in 1 2; do \
		missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
		[ -z "$$missing" ] && break; \
		echo "==> installing Debian packages: $$missing"; \
		[ $$pass = 1 ] && $(SUDO) apt-get update -qq; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	done
	@command -v qemu-img >/dev/null || { echo "qemu-img is missing after installing qemu-utils"; exit 1; }
	@command -v cargo >/dev/null || { echo "Rust is missing: install it with rustup (https://rustup.rs)"; exit 1; }
	@$(CARGO) nextest --version >/dev/null 2>&1 || { echo "==> installing cargo-nextest"; $(CARGO) install --locked cargo-nextest; }
	@$(CARGO) machete --version >/dev/null 2>&1 || { echo "==> installing cargo-machete"; $(CARGO) install --locked cargo-machete; }
	@$(SCHEMATHESIS_VENV)/bin/schemathesis --version 2>/dev/null | grep -q ' $(SCHEMATHESIS_VERSION)$$' || { \
		echo "==> installing schemathesis $(SCHEMATHESIS_VERSION) from PyPI into $(SCHEMATHESIS_VENV)"; \
		$(SUDO) mkdir -p $(dir $(SCHEMATHESIS_VENV)) && $(SUDO) /usr/bin/python3 -m venv $(SCHEMATHESIS_VENV) && \
		$(SUDO) $(SCHEMATHESIS_VENV)/bin/pip install -q 'schemathesis==$(SCHEMATHESIS_VERSION)'; }
	@$(MOTO_VENV)/bin/pip show moto azure-storage-blob 2>/dev/null | grep '^Version:' | tr '\n' ' ' | grep -q '^Version: $(MOTO_VERSION) Version: $(AZURE_BLOB_VERSION) $$' || { \
		echo "==> installing moto $(MOTO_VERSION) and azure-storage-blob $(AZURE_BLOB_VERSION) from PyPI into $(MOTO_VENV)"; \
		$(SUDO) mkdir -p $(dir $(MOTO_VENV)) && $(SUDO) /usr/bin/python3 -m venv $(MOTO_VENV) && \
		$(SUDO) $(MOTO_VENV)/bin/pip install -q 'moto[server]==$(MOTO_VERSION)' 'azure-storage-blob==$(AZURE_BLOB_VERSION)'; }
	@command -v npm >/dev/null || { echo "==> installing Node.js and npm (Debian)"; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends nodejs npm; }
	@[ -x $(AZURITE_DIR)/node_modules/.bin/azurite-blob ] && grep -q '"version": "$(AZURITE_VERSION)"' $(AZURITE_DIR)/node_modules/azurite/package.json || { \
		echo "==> installing Azurite $(AZURITE_VERSION) from npm into $(AZURITE_DIR)"; \
		$(SUDO) mkdir -p $(AZURITE_DIR) && $(SUDO) npm install --prefix $(AZURITE_DIR) --no-audit --no-fund --silent 'azurite@$(AZURITE_VERSION)'; }

build:
	$(CARGO) build --workspace --bins

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# rushesd and storage build the card's wire codecs without its engine (libublk).
	$(CARGO) clippy -p rushes-firmware --no-default-features --all-targets -- -D warnings
	# No dependency a crate does not use.
	$(CARGO) machete
	# No import circles between the files of any crate (tests/tests/layout.rs).
	$(CARGO) nextest run -p rushes-tests --test layout

# A cold `make test` writes about 10 GiB (the build and the images) and each guest test
# up to 4 GiB more while it runs, four at a time. A disk that fills half-way shows up as
# I/O errors inside the guests; say so before the build instead.
TEST_ROOM_GIB ?= 20
room:
	@free=$$(df -Pk . $${TMPDIR:-/tmp} | awk 'NR > 1 { f = int($$4 / 1048576); if (m == "" || f < m) m = f } END { print m }'); \
	if [ "$$free" -lt $(TEST_ROOM_GIB) ]; then \
		echo "make test: only $$free GiB free here or in $${TMPDIR:-/tmp}; a cold run needs about $(TEST_ROOM_GIB) GiB" >&2; \
		echo "  (build, images, guests' disks). Free some space (cargo clean, old out/), or TEST_ROOM_GIB=0 to try anyway." >&2; \
		exit 1; \
	fi; echo "make test: $$free GiB free"

# The end-to-end tests start target/debug/rushesd and boot out/rushes.img, so both are
# built first. The image they boot is built from the same dev-profile build as the tests
# (IMAGE_PROFILE): a release build as well compiled every dependency a second time.
test: IMAGE_PROFILE := dev
test: room deps lint build image
	RUSHES_SCHEMATHESIS=$(SCHEMATHESIS_VENV)/bin/schemathesis RUSHES_MOTO=$(MOTO_VENV)/bin/moto_server \
		RUSHES_AZURITE=$(AZURITE_DIR)/node_modules/.bin/azurite-blob \
		$(CARGO) nextest run --workspace --no-fail-fast

image: deps
	$(CARGO) build --profile $(IMAGE_PROFILE) $(IMAGE_CRATES)
	$(SUDO) mkdir -p $(RUSHES_CACHE)
	[ -e $(RUSHES_SIGNING_KEY) ] || $(IMAGE_BINS)/rushes-bundle keygen $(RUSHES_SIGNING_KEY)
	$(IMAGE_BINS)/mkimage --cache $(RUSHES_CACHE) --version $(RUSHES_VERSION) --bins $(IMAGE_BINS) \
		--zstd-level $(IMAGE_ZSTD) \
		--trust $(basename $(RUSHES_SIGNING_KEY)).pub $(addprefix --with-extension ,$(RUSHES_EXTENSIONS))
	$(IMAGE_BINS)/mkimage --client --manifest image/client.toml --overlay image/client-overlay \
		--cache $(RUSHES_CACHE)

bundle: image
	target/release/rushes-bundle make --key $(RUSHES_SIGNING_KEY) --version $(RUSHES_VERSION) \
		--min-version $(RUSHES_MIN_VERSION) -o out/rushes-$(RUSHES_VERSION).bundle

run: image
	@echo "==> booting out/rushes.img (QEMU, UEFI). Quit with Ctrl-A X."
	@echo "    NFS: mount -t nfs 127.0.0.1:/scratch /mnt (portmapper forwarded from 127.0.0.1:111 when run as root)"
	@echo "    Admin plane: https://127.0.0.1/ (443 as root, else 8443; check the fingerprint on the console); SMB on 127.0.0.1:445 as root"
	@echo "    QEMU monitor (Ctrl-A C): device_del nvme1 pulls a disk; see README, Disks, pools and shares"
	image/qemu-run.sh

DEMO := out/demo
host: deps build
	@mkdir -p $(DEMO) out/state
	@[ -e $(DEMO)/README.txt ] || echo "Rushes demo share: files you copy here are served over NFSv3." > $(DEMO)/README.txt
	@chmod 0777 $(DEMO)
	@echo "==> serving $(DEMO) as /demo on 127.0.0.1:2049 (Ctrl-C to stop)"
	@echo "    Linux:  mount -t nfs 127.0.0.1:/demo /mnt   (locking on; the portmapper is on 127.0.0.1:111)"
	@echo "    libnfs: nfs-ls nfs://127.0.0.1/demo"
	$(SUDO) target/debug/rushesd host --listen 127.0.0.1:2049 --state-dir out/state demo=$(DEMO)

bench: deps image
	$(CARGO) build --release --workspace --bins
	target/release/boot-bench
	$(SUDO) tests/bench/on-ram-xfs.sh /var/tmp/rushes-bench-xfs \
		target/release/nfs-bench --dir /var/tmp/rushes-bench-xfs/bench \
		--rushesd target/release/rushesd --entries 5000 \
		--latency-only --latency-client target/release/nfs-latency
	$(SUDO) tests/bench/nfs-vs-ganesha.sh
	$(SUDO) target/release/fair-bench --rushesd target/release/rushesd
	$(SUDO) target/release/nfs-bench --peer unrecorded --rushesd target/release/rushesd \
		--runs 18 --size-mib 512 --entries 50000 --files 90000
	$(SUDO) target/release/nfs-bench --peer unrecorded --calibrate --rushesd target/release/rushesd \
		--runs 18 --size-mib 512 --entries 50000 --files 90000
	target/release/rollup-bench
	RUSHESD_BIN=target/release/rushesd target/release/catalog-bench
	target/release/card-bench
	target/release/placement-bench
	$(SUDO) target/release/namespace-bench
	$(SUDO) target/release/view-bench
	$(SUDO) env RUSHESD_BIN=target/release/rushesd target/release/recall-bench
	$(SUDO) env RUSHESD_BIN=target/release/rushesd target/release/recall-bench --s3 --runs 3
	$(SUDO) env RUSHESD_BIN=target/release/rushesd target/release/copy-bench
	$(SUDO) env RUSHESD_BIN=target/release/rushesd target/release/reconcile-bench
	env RUSHESD_BIN=target/release/rushesd target/release/web-bench

# Mixed NFS and SMB load on the appliance in QEMU for SOAK_MINUTES, with throughput,
# errors and rushesd's memory and descriptors every minute (`make soak SOAK_MINUTES=30`).
SOAK_MINUTES ?= 120
soak: deps image
	$(CARGO) build --release -p rushes-tests --bin soak
	target/release/soak --minutes $(SOAK_MINUTES)

# Power cuts: QEMU killed at random moments while NFS clients write (COMMIT, FILE_SYNC)
# and an SMB client uploads with FLUSH, and, from the third cut, while the pool reshapes
# onto a fourth disk; after each, the box boots again and every acknowledged write is
# read back (`make powercut POWERCUT_CYCLES=5`). About three minutes a cycle under TCG.
# The SMB client is PyPI's smbprotocol (smbclient cannot send a FLUSH), in a venv.
POWERCUT_CYCLES ?= 20
SMBPROTOCOL_VENV ?= /var/cache/rushes-tools/smbprotocol
SMBPROTOCOL_VERSION := 1.17.0
powercut: deps image
	@$(SMBPROTOCOL_VENV)/bin/pip show smbprotocol 2>/dev/null | grep -q '^Version: $(SMBPROTOCOL_VERSION)$$' || { \
		echo "==> installing smbprotocol $(SMBPROTOCOL_VERSION) from PyPI into $(SMBPROTOCOL_VENV)"; \
		$(SUDO) mkdir -p $(dir $(SMBPROTOCOL_VENV)) && $(SUDO) /usr/bin/python3 -m venv $(SMBPROTOCOL_VENV) && \
		$(SUDO) $(SMBPROTOCOL_VENV)/bin/pip install -q 'smbprotocol==$(SMBPROTOCOL_VERSION)'; }
	$(CARGO) build -p rushes-tests --bin powercut
	target/debug/powercut --cycles $(POWERCUT_CYCLES) --smb-python $(SMBPROTOCOL_VENV)/bin/python3

# The dependencies against deny.toml: licenses, sources (crates.io only) and wildcard
# versions always; known vulnerabilities (RustSec) when its database can be fetched from
# GitHub. Where it cannot (no network but the package registries), that check is
# reported as not run, loudly, and the rest still must pass.
audit:
	@$(CARGO) deny --version >/dev/null 2>&1 || { echo "==> installing cargo-deny"; $(CARGO) install --locked cargo-deny; }
	$(CARGO) deny check licenses bans sources
	@if $(CARGO) deny fetch db >/dev/null 2>&1; then \
		$(CARGO) deny check advisories; \
	else \
		echo "==> advisories NOT CHECKED: the RustSec database (github.com/rustsec/advisory-db) cannot be fetched from here"; \
	fi

clean:
	$(CARGO) clean
	rm -rf out

# Coverage-guided fuzzing of the decoders of outside bytes, each target for FUZZ_SECONDS:
# media headers (catalog), the settings PID 1 applies at boot (init), RPC records and every
# NFS-side program (nas), rushes.toml and Samba's log lines (rushesd), update bundles
# (update), NVMe/TCP PDUs, Identify data and firmware bundles (firmware). A crate's
# seeds/TARGET, when there is one, starts its corpus.
# cargo-fuzz asks for nightly flags; RUSTC_BOOTSTRAP lets the stable toolchain take them.
fuzz: deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || { echo "==> installing cargo-fuzz"; $(CARGO) install --locked cargo-fuzz; }
	@# The catalog's fuzzers start from small real files, made by ffmpeg once.
	@mkdir -p $(addprefix appliance/catalog/fuzz/corpus/,quicktime wav mxf dpx exr exif)
	@[ -e appliance/catalog/fuzz/corpus/quicktime/seed.mov ] || ffmpeg -v error -f lavfi -i testsrc2=size=64x64:rate=24000/1001 \
		-f lavfi -i sine -t 0.1 -c:v prores_ks -c:a pcm_s24le -timecode 01:00:00:00 \
		-metadata:s:v:0 reel_name=A001 -metadata make=ARRI appliance/catalog/fuzz/corpus/quicktime/seed.mov
	@[ -e appliance/catalog/fuzz/corpus/mxf/seed.mxf ] || ffmpeg -v error -f lavfi -i testsrc2=size=256x144:rate=25 \
		-frames:v 1 -c:v dnxhd -profile:v dnxhr_lb -pix_fmt yuv422p -timecode 01:00:00:00 appliance/catalog/fuzz/corpus/mxf/seed.mxf
	@[ -e appliance/catalog/fuzz/corpus/wav/seed.wav ] || ffmpeg -v error -f lavfi -i sine -t 0.05 -c:a pcm_s24le \
		-write_bext 1 -metadata description=seed -metadata time_reference=1000 appliance/catalog/fuzz/corpus/wav/seed.wav
	@[ -e appliance/catalog/fuzz/corpus/dpx/seed.dpx ] || ffmpeg -v error -f lavfi -i testsrc2=size=16x16 -frames:v 1 \
		-pix_fmt gbrp10le appliance/catalog/fuzz/corpus/dpx/seed.dpx
	@[ -e appliance/catalog/fuzz/corpus/exr/seed.exr ] || ffmpeg -v error -f lavfi -i testsrc2=size=16x16 -frames:v 1 \
		-c:v exr -format half -pix_fmt gbrpf32le appliance/catalog/fuzz/corpus/exr/seed.exr
	@[ -e appliance/catalog/fuzz/corpus/exif/seed.jpg ] || ffmpeg -v error -f lavfi -i testsrc2=size=16x16 -frames:v 1 \
		appliance/catalog/fuzz/corpus/exif/seed.jpg
	@for crate in $(FUZZ_CRATES); do \
		for target in $$(cd $$crate && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz list); do \
			echo "==> fuzzing $$crate $$target for $(FUZZ_SECONDS) s"; \
			seeds=$$( [ -d $$crate/seeds/$$target ] && echo seeds/$$target ); \
			mkdir -p $$crate/corpus/$$target; \
			(cd $$crate && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$target corpus/$$target $$seeds -- -max_total_time=$(FUZZ_SECONDS) -max_len=65536) || exit 1; \
		done; \
	done
