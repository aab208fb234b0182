#!/usr/bin/env bash
# Runs the live-ladder benchmark (Sluice vs the ffmpeg CLI, same machine, same run) and prints
# markdown tables ready for docs/BENCHMARKS.md. Extra arguments go to the bench, e.g.
# `scripts/bench-live.sh --preset veryfast`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench --locked --bench live_ladder -- "$@"
