# Sluice: `make run` starts the server on embedded defaults, `make test` runs every check.
.PHONY: run build test test-postgres test-s3 test-scale bench soak fmt

CARGO ?= cargo

# What runs a second time on Postgres: the storage and API crates and the black-box binaries
# that drive the control plane (media-heavy suites run once, on SQLite). A nextest filter.
POSTGRES_TESTS := package(sluice-storage) | package(sluice-api) | binary(api_http) | binary(first_start) | binary(rtmp_sessions) | binary(operations) | binary(auth) | binary(webhooks) | binary(events_api) | binary(live_streams_api) | binary(uploads_api) | binary(assets_api) | binary(transcription) | binary(rooms_api)

# What runs against a private S3 server (s3s-fs): the object store conformance tests and the
# S3 playback modes. They fail, rather than skip, when the server's environment is missing.
S3_TESTS := test(/store_conformance::/) | binary(s3_playback) | (binary(live_store_outage) & test(/s3_outage/))

# The live and VOD black-box suites run once more with S3 objects and a Postgres database.
SCALE_TESTS := binary(live_rtmp) | binary(hlsjs_playback) | binary(rtmp_sessions) | binary(vod_assets) | binary(vod_worker) | binary(uploads_api) | binary(assets_api) | binary(images_http) | binary(scale_out) | binary(transcription)

run: build
	scripts/install-deps.sh run
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
	$(MAKE) test-s3
	$(MAKE) test-scale

# The database-facing suites again, each test on a fresh database of a private Postgres server.
test-postgres:
	scripts/test-postgres.sh start
	SLUICE_TEST_POSTGRES_URL="$$(scripts/test-postgres.sh url)" \
		$(CARGO) nextest run --locked --workspace --no-fail-fast -E '$(POSTGRES_TESTS)'

# The object store suites against a private S3-compatible server (scripts/test-s3.sh).
test-s3:
	eval "$$(scripts/test-s3.sh start)" && SLUICE_TEST_REQUIRE_S3=1 \
		$(CARGO) nextest run --locked --workspace --no-fail-fast -E '$(S3_TESTS)'

# The media suites with both scale-out backends: objects in S3 (each test server under a prefix
# of its own), metadata in Postgres.
test-scale:
	scripts/test-postgres.sh start >/dev/null
	eval "$$(scripts/test-s3.sh start)" && \
		SLUICE_TEST_STORAGE="s3://$$SLUICE_TEST_S3_BUCKET/scale" \
		SLUICE_TEST_POSTGRES_URL="$$(scripts/test-postgres.sh url)" \
		$(CARGO) nextest run --locked --workspace --no-fail-fast -E '$(SCALE_TESTS)'

bench:
	scripts/install-deps.sh bench
	$(CARGO) build --release --locked
	scripts/bench-live.sh
	$(CARGO) bench --locked --bench vod_upload
	eval "$$(scripts/test-s3.sh start)" && $(CARGO) bench --locked --bench segment_upload
	$(CARGO) bench --locked --bench restream
	$(CARGO) bench --locked --bench transcription
	$(CARGO) bench --locked --bench captions
	$(CARGO) bench --locked --bench whip_publish
	$(CARGO) bench --locked --bench latency
	$(CARGO) bench --locked --bench ll_viewers
	$(CARGO) bench --locked --bench ll_split
	$(CARGO) bench --locked --bench console

# An hour of steady load (docs/RELIABILITY.md); `make soak SOAK_MINUTES=15` for a shorter one (15 at least).
SOAK_MINUTES ?= 60
soak:
	scripts/install-deps.sh soak
	$(CARGO) bench --locked --bench soak -- $(SOAK_MINUTES)
	cp target/soak/soak.png docs/soak.png

fmt:
	$(CARGO) fmt --all
