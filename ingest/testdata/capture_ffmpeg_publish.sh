#!/usr/bin/env bash
# Regenerates testdata/ffmpeg_publish.bin: the client→server bytes of one real ffmpeg RTMP publish.
#
# nginx with Debian's libnginx-mod-rtmp plays the server (so ffmpeg sees a real peer and behaves
# as it does in production); a small recording TCP proxy sits between them and saves what ffmpeg
# sent. Needs: nginx, libnginx-mod-rtmp, ffmpeg (with libx264 and the native aac encoder), python3.
# Not run in CI; the committed capture is what the tests replay.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/ffmpeg_publish.bin}"
nginx_port="${NGINX_PORT:-19351}"
proxy_port="${PROXY_PORT:-19352}"
work="$(mktemp -d)"
trap 'kill ${proxy_pid:-} ${nginx_pid:-} 2>/dev/null || true; rm -rf "$work"' EXIT

mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
daemon off;
master_process off;
pid $work/nginx.pid;
error_log $work/logs/error.log info;
events {}
rtmp {
    server {
        listen 127.0.0.1:$nginx_port;
        chunk_size 4096;
        application live {
            live on;
        }
    }
}
CONF
nginx -p "$work" -c "$work/nginx.conf" &
nginx_pid=$!

cat > "$work/proxy.py" <<'PY'
import socket, sys, threading

listen_port, upstream_port, out_path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen_port))
server.listen(1)
client, _ = server.accept()
upstream = socket.create_connection(("127.0.0.1", upstream_port))

def pump(src, dst, record):
    while True:
        data = src.recv(65536)
        if not data:
            break
        if record is not None:
            record.write(data)
        dst.sendall(data)
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass

with open(out_path, "wb") as record:
    up = threading.Thread(target=pump, args=(client, upstream, record))
    down = threading.Thread(target=pump, args=(upstream, client, None))
    up.start(); down.start(); up.join(); down.join()
PY
python3 "$work/proxy.py" "$proxy_port" "$nginx_port" "$out" &
proxy_pid=$!
sleep 1

ffmpeg -hide_banner -loglevel error -re \
    -f lavfi -i testsrc=size=320x240:rate=30 -f lavfi -i sine=frequency=440:sample_rate=44100 \
    -t 1 -c:v libx264 -preset veryfast -pix_fmt yuv420p -b:v 120k -g 30 \
    -c:a aac -b:a 32k -ac 1 \
    -f flv "rtmp://127.0.0.1:$proxy_port/live/testkey"

wait "$proxy_pid"
echo "wrote $(stat -c %s "$out") bytes to $out"
