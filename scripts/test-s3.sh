#!/usr/bin/env bash
# A private S3-compatible server for the test suites: s3s-fs, which keeps every object as a
# plain file under its root directory (a bucket is a directory of the root).
#
#   scripts/test-s3.sh start   start it (installing s3s-fs the first time); prints its exports
#   scripts/test-s3.sh stop    stop it
#   scripts/test-s3.sh env     print the shell exports naming it (eval "$(scripts/test-s3.sh env)")
#
# s3s-fs is installed with `cargo install --locked` (version pinned below) into
# target/test-s3/cargo only when missing. The server keeps its objects in target/test-s3/root,
# listens only on a free loopback port (remembered in target/test-s3/port), requires the test
# access key pair below, and holds the bucket `sluice-test`. It holds nothing but throwaway
# test objects: a fresh start empties its root. Starting a running server is fine, and a pid file left by a killed server is
# cleaned up.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
target="$(mkdir -p "${CARGO_TARGET_DIR:-$root/target}" && cd "${CARGO_TARGET_DIR:-$root/target}" && pwd)"
version="0.14.1"
base="$target/test-s3"
install_root="$base/cargo"
binary="$install_root/bin/s3s-fs"
data="$base/root"
pid_file="$base/s3s-fs.pid"
port_file="$base/port"
log="$base/server.log"
bucket="sluice-test"
access_key="sluice-test-access-key"
secret_key="sluice-test-secret-key"

usage() {
  echo "usage: $0 start|stop|env" >&2
  exit 2
}

ensure_installed() {
  if [[ -x "$binary" ]] && "$binary" --version 2>/dev/null | grep -q "$version"; then
    return 0
  fi
  echo "Installing s3s-fs $version into $install_root (once)." >&2
  cargo install --quiet --locked --version "$version" --features binary \
    --root "$install_root" s3s-fs >&2
}

# The pid of the running server, if any: a pid file naming a dead or reused pid is stale.
server_pid() {
  local pid
  [[ -f "$pid_file" ]] || return 0
  pid="$(cat "$pid_file")"
  [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == s3s-fs ]] || return 0
  [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ]] || return 0
  echo "$pid"
}

is_running() {
  [[ -n "$(server_pid)" ]]
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

print_env() {
  [[ -f "$port_file" ]] || {
    echo "the test S3 server was never started: run $0 start" >&2
    exit 1
  }
  cat <<EOF
export AWS_ENDPOINT_URL=http://127.0.0.1:$(cat "$port_file")
export AWS_ACCESS_KEY_ID=$access_key
export AWS_SECRET_ACCESS_KEY=$secret_key
export AWS_REGION=us-east-1
export SLUICE_TEST_S3_BUCKET=$bucket
export SLUICE_TEST_S3_ROOT=$data
export SLUICE_TEST_S3_SERVER=$binary
EOF
}

start() {
  mkdir -p "$base" "$data/$bucket"
  if is_running; then
    print_env
    return 0
  fi
  ensure_installed
  rm -f "$pid_file"
  # Nothing outlives a server run: objects and s3s-fs's metadata files left by earlier runs go.
  rm -rf "$data"
  mkdir -p "$data/$bucket"
  local port
  port="$(free_port)"
  echo "$port" >"$port_file"
  # setsid: the server outlives this script and the make target that ran it.
  setsid "$binary" --host 127.0.0.1 --port "$port" --access-key "$access_key" \
    --secret-key "$secret_key" "$data" >"$log" 2>&1 </dev/null &
  echo $! >"$pid_file"
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then
      print_env
      return 0
    fi
    is_running || break
    sleep 0.1
  done
  echo "s3s-fs did not start; its log ($log) ends with:" >&2
  tail -20 "$log" >&2
  exit 1
}

stop() {
  local pid
  pid="$(server_pid)"
  [[ -n "$pid" ]] || return 0
  kill "$pid"
  for _ in $(seq 1 50); do
    is_running || break
    sleep 0.1
  done
  rm -f "$pid_file"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) print_env ;;
  *) usage ;;
esac
