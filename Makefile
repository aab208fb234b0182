# Sluice: `make run` starts the server on embedded defaults, `make test` runs every check.
.PHONY: run build test bench fmt

CARGO ?= cargo

run: build
	./target/release/sluice serve

build:
	scripts/install-deps.sh build
	$(CARGO) build --release --locked

test:
	scripts/install-deps.sh test
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) nextest run --locked --workspace --no-fail-fast

bench:
	scripts/install-deps.sh bench
	$(CARGO) build --release --locked
	scripts/bench-live.sh

fmt:
	$(CARGO) fmt --all
