# Every entry point a person uses. `make help` lists them.

CARGO        ?= cargo
TARGET       := x86_64-unknown-linux-gnu
# The image needs binaries that run in an initramfs with no libc of its own.
STATIC_FLAGS := -C target-feature=+crt-static
BOARD        ?= qemu

.PHONY: help build static test lint bench image lab clean

help:
	@echo "make build    debug build of every crate"
	@echo "make static   static release binaries (target/$(TARGET)/release/)"
	@echo "make test     unit and integration tests (root needed for the PID-namespace tests)"
	@echo "make lint     rustfmt check and clippy with warnings as errors"
	@echo "make bench    benchmarks of star-init, the images and the target; results in bench/results/"
	@echo "make image BOARD=qemu|virtualbox|aws-ec2 [CONFIG=star.toml]   disk images in out/BOARD/"
	@echo "make lab      not yet: the two-controller lab is still to come"

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

bench: static
	bench/init.sh
	bench/image.sh
	bench/target.sh

image: static
	$(CARGO) run -q -p star-image -- build --board $(BOARD) --bin-dir target/$(TARGET)/release \
		$(if $(CONFIG),--config $(CONFIG))

lab:
	@echo "make lab: not implemented yet (see the README: what works today)" >&2
	@exit 1

clean:
	$(CARGO) clean
