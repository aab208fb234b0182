#!/usr/bin/env bash
# Installs the Debian packages Sluice needs, and only those that are missing.
#
#   scripts/install-deps.sh build   libraries and tools to build the server
#   scripts/install-deps.sh test    + what the test suite drives: ffmpeg CLI, GStreamer, Chromium,
#                                     Node.js, PostgreSQL, nginx with the RTMP module
#   scripts/install-deps.sh bench   + what the benchmarks need (as test, and Lighthouse)
#   scripts/install-deps.sh soak    + gnuplot, which plots the soak's samples
set -euo pipefail

role="${1:-build}"
build_packages=(pkg-config clang libclang-dev nasm libavcodec-dev libavformat-dev libavutil-dev
  libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev libx264-dev libssl-dev)
test_packages=(ffmpeg chromium curl gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav postgresql
  nginx libnginx-mod-rtmp)

wanted=("${build_packages[@]}")
case "$role" in
  build) ;;
  test | bench) wanted+=("${test_packages[@]}") ;;
  soak) wanted+=("${test_packages[@]}" gnuplot-nox) ;;
  *) echo "usage: $0 build|test|bench|soak" >&2; exit 2 ;;
esac
if [[ "$role" != build ]] && ! { command -v node && command -v npm; } >/dev/null; then
  wanted+=(nodejs npm)
fi

missing=()
for package in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done

if ((${#missing[@]})); then
  echo "Installing missing packages: ${missing[*]}"
  sudo_cmd=()
  [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ "$role" != build ]] && ! cargo nextest --version >/dev/null 2>&1; then
  echo "Installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# Installs the npm packages of folder $1 as its package-lock.json pins them, again whenever the
# lock file changed since the last install.
npm_install() {
  (cd "$(dirname "$0")/../$1" && {
    cmp -s package-lock.json node_modules/.installed-lock.json ||
      { npm ci --no-audit --no-fund --silent && cp package-lock.json node_modules/.installed-lock.json; }
  })
}

if [[ "$role" != build ]]; then
  # hls.js, Shaka Player, the Chromium driver and axe-core for the playback and console tests.
  npm_install tests/node
fi
if [[ "$role" == bench ]]; then
  # Lighthouse, for the console's benchmark.
  npm_install benches/node
fi
