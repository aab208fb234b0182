#!/usr/bin/env bash
# A private nginx-rtmp server (Debian's `nginx` with `libnginx-mod-rtmp`), the RTMP peer the
# restreaming tests and benchmark push to.
#
#   scripts/test-nginx-rtmp.sh start DIR PORT [PUSH_URL…]
#       writes DIR/nginx.conf and starts nginx on 127.0.0.1:PORT: application `live` records
#       every stream it receives into DIR/record/STREAM_KEY.flv (`record all`); each PUSH_URL
#       (`rtmp://HOST:PORT/APP/NAME`) adds a `push` of everything published to it (what the
#       benchmark compares against).
#       RECORD=off in the environment turns recording off. HLS_HTTP_PORT=N adds nginx-rtmp's
#       HLS (1 s fragments at key frames, a 6 s playlist) in DIR/hls, served over HTTP on
#       127.0.0.1:N at /hls/STREAM_KEY.m3u8 with CORS open (what the latency benchmark compares
#       against).
#   scripts/test-nginx-rtmp.sh stop DIR
#       stops it (recordings are complete once this returns).
#
# Everything (configuration, pid, logs, recordings) stays in DIR; nothing is read from or
# written to /etc/nginx or /var/log/nginx. As root the workers run as root, so DIR may be a
# private temporary directory.
set -euo pipefail

usage() {
  echo "usage: $0 start DIR PORT [PUSH_URL...] | stop DIR" >&2
  exit 2
}

module=/usr/lib/nginx/modules/ngx_rtmp_module.so
command="${1:-}"
dir="${2:-}"
[[ -n "$dir" ]] || usage

case "$command" in
  start)
    port="${3:-}"
    [[ -n "$port" ]] || usage
    shift 3
    [[ -f "$module" ]] || { echo "$module is missing: run scripts/install-deps.sh test" >&2; exit 1; }
    mkdir -p "$dir/record"
    dir="$(cd "$dir" && pwd)"
    {
      [[ "$(id -u)" == 0 ]] && echo "user root;"
      echo "load_module $module;"
      echo "pid $dir/nginx.pid;"
      echo "error_log $dir/error.log info;"
      echo "worker_processes 1;"
      echo "events { worker_connections 1024; }"
      echo "rtmp {"
      echo "  server {"
      echo "    listen 127.0.0.1:$port;"
      echo "    chunk_size 4096;"
      echo "    application live {"
      echo "      live on;"
      if [[ "${RECORD:-on}" != off ]]; then
        echo "      record all;"
        echo "      record_path $dir/record;"
        echo "      record_suffix .flv;"
      fi
      for push in "$@"; do
        echo "      push $push;"
      done
      if [[ -n "${HLS_HTTP_PORT:-}" ]]; then
        echo "      hls on;"
        echo "      hls_path $dir/hls;"
        echo "      hls_fragment 1s;"
        echo "      hls_playlist_length 6s;"
      fi
      echo "    }"
      echo "  }"
      echo "}"
      if [[ -n "${HLS_HTTP_PORT:-}" ]]; then
        echo "http {"
        echo "  access_log off;"
        echo "  types { application/vnd.apple.mpegurl m3u8; video/mp2t ts; }"
        echo "  server {"
        echo "    listen 127.0.0.1:$HLS_HTTP_PORT;"
        echo "    location /hls/ {"
        echo "      alias $dir/hls/;"
        echo "      add_header Cache-Control no-cache;"
        echo "      add_header Access-Control-Allow-Origin *;"
        echo "    }"
        echo "  }"
        echo "}"
      fi
    } >"$dir/nginx.conf"
    nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
    # nginx daemonises once it listens; wait for its pid file to be sure.
    for _ in $(seq 50); do
      [[ -s "$dir/nginx.pid" ]] && exit 0
      sleep 0.1
    done
    echo "nginx did not start; see $dir/error.log" >&2
    exit 1
    ;;
  stop)
    [[ -s "$dir/nginx.pid" ]] || exit 0
    pid="$(cat "$dir/nginx.pid")"
    # QUIT: finish open connections' recordings, then exit.
    kill -QUIT "$pid" 2>/dev/null || exit 0
    for _ in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || exit 0
      sleep 0.1
    done
    kill -TERM "$pid" 2>/dev/null || true
    ;;
  *) usage ;;
esac
