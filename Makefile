# Every entry point a person uses. `make help` lists them.

CARGO        ?= cargo
TARGET       := x86_64-unknown-linux-gnu
# The image needs binaries that run in an initramfs with no libc of its own.
STATIC_FLAGS := -C target-feature=+crt-static
BOARD        ?= qemu

.PHONY: help build static test lint bench bench-deps versus image lab lab-deps lab-up lab-down faults clean

help:
	@echo "make build    debug build of every crate"
	@echo "make static   static release binaries (target/$(TARGET)/release/)"
	@echo "make test     unit and integration tests (root needed for the PID-namespace tests)"
	@echo "make lint     rustfmt check and clippy with warnings as errors"
	@echo "make bench    every benchmark, ending with STAR against the traditional stack (bench/RESULTS.md)"
	@echo "make versus [VERSUS_RUNS=N]   only STAR against the traditional stack (bench/versus.py)"
	@echo "make image BOARD=qemu|virtualbox|aws-ec2 [CONFIG=star.toml]   disk images in out/BOARD/"
	@echo "make lab      the two-controller lab under QEMU, until Ctrl-C (root; see lab/lab.sh)"
	@echo "make lab-up   the same in the background: out/lab/lab.env; make lab-down ends it"
	@echo "make faults [RUNS=N]   the fault suite against a fresh lab (lab/faults.py)"

build:
	$(CARGO) build --workspace

static:
	RUSTFLAGS="$(STATIC_FLAGS)" $(CARGO) build --workspace --release --target $(TARGET)

# The integration tests run the star-init and star binaries, and the image tests put the
# static ones into images, so all of them are built first.
test: lint static
	$(CARGO) build --workspace
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench: lab-deps bench-deps static
	bench/init.sh
	bench/image.sh
	bench/target.sh
	bench/takeover.sh
	bench/faults.sh
	bench/versus.py --runs $(VERSUS_RUNS) --reference-failover

VERSUS_RUNS ?= 3

# The reference appliance is built with debootstrap; the portal benchmark is qemu-img's,
# through QEMU's libiscsi driver (qemu-block-extra); the takeover benchmark pings the
# floating address and runs the AWS methods against moto's server.
bench-deps:
	@command -v debootstrap >/dev/null && command -v zstd >/dev/null && \
		command -v iscsi-test-cu >/dev/null && command -v ping >/dev/null && \
		test -e /usr/lib/x86_64-linux-gnu/qemu/block-iscsi.so || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends \
			debootstrap e2fsprogs zstd cpio gzip qemu-block-extra libiscsi-bin iputils-ping)
	@python3 -c 'import moto' 2>/dev/null || \
		python3 -m pip install --quiet --disable-pip-version-check 'moto[server]'

versus: lab-deps bench-deps static
	bench/versus.py --runs $(VERSUS_RUNS) --reference-failover

image: static
	$(CARGO) run -q -p star-image -- build --board $(BOARD) --bin-dir target/$(TARGET)/release \
		$(if $(CONFIG),--config $(CONFIG))

# The lab needs QEMU and the initiator tools; on a fresh Debian machine they are installed
# first (as root, like the lab itself).
lab-deps:
	@command -v qemu-system-x86_64 >/dev/null && command -v iscsi-ls >/dev/null && \
		command -v nft >/dev/null && command -v socat >/dev/null || \
		(apt-get update -q && apt-get install -y -q --no-install-recommends \
			qemu-system-x86 qemu-utils ovmf systemd-boot-efi dpkg-dev binutils libiscsi-bin \
			iproute2 socat nftables python3)

lab: lab-deps static
	lab/lab.sh run

lab-up: lab-deps static
	lab/lab.sh up

lab-down:
	lab/lab.sh down

RUNS ?= 1
faults: lab-deps static
	lab/lab.sh up
	lab/faults.py --runs $(RUNS); status=$$?; lab/lab.sh down; exit $$status

clean:
	$(CARGO) clean
