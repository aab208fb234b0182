# Sluice: `make run` starts the server on embedded defaults, `make test` runs every check.
.PHONY: run build test test-postgres bench fmt

CARGO ?= cargo

# What runs a second time on Postgres: the storage and API crates and the black-box binaries
# that drive the control plane (media-heavy suites run once, on SQLite). A nextest filter.
POSTGRES_TESTS := package(sluice-storage) | package(sluice-api) | binary(api_http) | binary(first_start) | binary(rtmp_sessions) | binary(operations) | binary(auth) | binary(webhooks) | binary(events_api) | binary(live_streams_api) | binary(uploads_api) | binary(assets_api) | binary(scale_out)

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
	$(MAKE) test-postgres

# The database-facing suites again, each test on a fresh database of a private Postgres server.
test-postgres:
	scripts/test-postgres.sh start
	SLUICE_TEST_POSTGRES_URL="$$(scripts/test-postgres.sh url)" \
		$(CARGO) nextest run --locked --workspace --no-fail-fast -E '$(POSTGRES_TESTS)'

bench:
	scripts/install-deps.sh bench
	$(CARGO) build --release --locked
	scripts/bench-live.sh
	$(CARGO) bench --locked --bench vod_upload
	$(CARGO) bench --locked --bench whip_publish

fmt:
	$(CARGO) fmt --all
