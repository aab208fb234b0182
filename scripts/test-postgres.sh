#!/usr/bin/env bash
# A private PostgreSQL server for the test suites, from Debian's `postgresql` package.
#
#   scripts/test-postgres.sh start   start it (initialising it the first time); prints its admin URL
#   scripts/test-postgres.sh stop    stop it
#   scripts/test-postgres.sh url     print its admin URL
#
# The server keeps its data (and its Unix socket) in target/test-postgres/ (under /tmp when
# that path is out of the server's reach or too long for a socket), listens only on
# 127.0.0.1:$SLUICE_TEST_POSTGRES_PORT (default 55432) and trusts every loopback client. It
# favours speed over durability (no fsync): it holds nothing but throwaway test databases.
# Starting a running server is fine, and a pid file left by a killed server is cleaned up.
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
port="${SLUICE_TEST_POSTGRES_PORT:-55432}"
target="$(mkdir -p "${CARGO_TARGET_DIR:-$root/target}" && cd "${CARGO_TARGET_DIR:-$root/target}" && pwd)"
admin_url="postgres://postgres@127.0.0.1:$port/postgres"

usage() {
  echo "usage: $0 start|stop|url" >&2
  exit 2
}

# The newest installed server's bin directory, e.g. /usr/lib/postgresql/15/bin.
pg_bin() {
  local version
  version="$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -n | tail -1)"
  [[ -n "$version" && -x "/usr/lib/postgresql/$version/bin/pg_ctl" ]] || return 1
  echo "/usr/lib/postgresql/$version/bin"
}

ensure_installed() {
  if ! pg_bin >/dev/null; then
    "$root/scripts/install-deps.sh" test
  fi
  pg_bin >/dev/null || {
    echo "PostgreSQL server binaries not found under /usr/lib/postgresql" >&2
    exit 1
  }
}

# Runs a command as the server's owner: the `postgres` user when we are root, else ourselves.
as_owner() {
  if [[ "$(id -u)" == 0 ]]; then
    # From `/`: the current directory may be out of that user's reach.
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

# Sets `base` (the server's directory), `data` and `log`. The server must be able to reach its
# data directory (as root it runs as `postgres`, which may not enter a checkout under a private
# home) and its socket path must fit in 107 bytes; when either fails, the data lives under /tmp
# instead, in a directory named after this checkout.
locate() {
  base="$target/test-postgres"
  if ((${#base} > 80)) || { [[ "$(id -u)" == 0 ]] &&
    ! (cd / && runuser -u postgres -- test -x "$target"); }; then
    base="/tmp/sluice-test-postgres-$(printf %s "$root" | sha256sum | cut -c1-12)"
  fi
  data="$base/data"
  log="$base/server.log"
}

ensure_owner() {
  [[ "$(id -u)" == 0 ]] || return 0
  if ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
  fi
}

# The pid of the server running on the data directory, if any. A killed server leaves its
# postmaster.pid behind naming a dead process, a zombie (nothing may reap it in a container) or
# a reused pid; none of those is a running server.
server_pid() {
  local pid_file="$data/postmaster.pid" pid state
  [[ -f "$pid_file" ]] || return 0
  pid="$(head -1 "$pid_file")"
  [[ -n "$pid" && "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres ]] || return 0
  state="$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)"
  [[ "$state" != Z ]] || return 0
  echo "$pid"
}

is_running() {
  [[ -n "$(server_pid)" ]]
}

# Lock files naming a server that is gone would make PostgreSQL refuse to start (it takes a
# zombie for a live server).
remove_stale_lock_files() {
  if [[ -f "$data/postmaster.pid" ]] && ! is_running; then
    echo "Removing the lock files of a server that is gone." >&2
    rm -f "$data/postmaster.pid" "$data"/.s.PGSQL.*
  fi
}

initialise() {
  mkdir -p "$base"
  [[ "$(id -u)" != 0 ]] || chown postgres: "$base"
  [[ -f "$data/PG_VERSION" ]] && return 0
  rm -rf "$data"
  mkdir -p "$data"
  [[ "$(id -u)" != 0 ]] || chown postgres: "$data"
  as_owner "$(pg_bin)/initdb" --pgdata="$data" --username=postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 >"$base/initdb.log"
  cat >>"$data/postgresql.conf" <<EOF

# Private test server (scripts/test-postgres.sh)
listen_addresses = '127.0.0.1'
unix_socket_directories = '$data'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

# Drops the databases earlier test runs left behind (a test killed before its cleanup ran).
drop_leftover_test_databases() {
  local name
  for name in $(psql "$admin_url" -Atq -c "SELECT datname FROM pg_database WHERE datname LIKE 'sluice_test_%'"); do
    psql "$admin_url" -q -c "DROP DATABASE IF EXISTS \"$name\" WITH (FORCE)" >/dev/null
  done
}

start() {
  ensure_installed
  ensure_owner
  locate
  if is_running; then
    echo "$admin_url"
    return 0
  fi
  initialise
  remove_stale_lock_files
  touch "$log"
  [[ "$(id -u)" != 0 ]] || chown postgres: "$log"
  as_owner "$(pg_bin)/pg_ctl" start -D "$data" -l "$log" -o "-p $port" -w -t 60 >/dev/null || {
    echo "PostgreSQL did not start; its log ($log) ends with:" >&2
    tail -20 "$log" >&2
    exit 1
  }
  drop_leftover_test_databases
  echo "$admin_url"
}

stop() {
  pg_bin >/dev/null || return 0
  locate
  if is_running; then
    as_owner "$(pg_bin)/pg_ctl" stop -D "$data" -m fast -w >/dev/null
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "$admin_url" ;;
  *) usage ;;
esac
