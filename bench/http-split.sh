#!/usr/bin/env bash
# Where the CPU of one HTTP reverse request goes, for sidecar-proxy and a peer alternately: the
# proxy, the upstream (bench/loadgen's HTTP server) and the client (wrk, as in bench/run.sh's
# http mode). On these 2-CPU machines the three share both CPUs, so a proxy that is cheaper
# itself can still lose requests per second if it makes the others work more.
#
#   bench/http-split.sh [--bin BIN] [--peer haproxy|nginx] [--rounds N] [--conns N]
#     BIN defaults to bench/.work/sidecar-proxy-linux-x64 (built by bench/run.sh); the peer to
#     HAProxy, with its bench/peers/ config (nginx: nginx-http.conf)
#
# Prints one line per contestant and round: requests/s, then µs of CPU per request of each.
# Needs the peer, wrk, cc, python3 and /usr/bin/time.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=$HERE/.work/sidecar-proxy-linux-x64 PEER=haproxy ROUNDS=4 CONNS=16
while [ $# -gt 0 ]; do
  case $1 in
    --bin) BIN=$2; shift 2 ;;
    --peer) PEER=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    *) echo "http-split: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -x "$BIN" ] || { echo "http-split: $BIN is not an executable (run bench/run.sh once, or pass --bin)" >&2; exit 2; }
case $PEER in haproxy | nginx) ;; *) echo "http-split: --peer haproxy|nginx" >&2; exit 2 ;; esac
for tool in "$PEER" wrk cc python3 /usr/bin/time; do command -v "$tool" >/dev/null || { echo "http-split: needs $tool" >&2; exit 2; }; done

mkdir -p "$HERE/.work"
cc -O2 -o "$HERE/.work/loadgen" "$HERE/loadgen.c"
OUT=$(mktemp -d /tmp/sidecar-http-split.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$OUT"' EXIT
"$HERE/.work/loadgen" server >"$OUT/upstream.json" &
UP=$!
pids+=($UP)
for _ in $(seq 50); do [ -s "$OUT/upstream.json" ] && break; sleep 0.1; done
HTTP=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' "$OUT/upstream.json")
# CPU seconds of a process tree (nginx works in a child of the PID we started).
cpu() { "$HERE/.work/loadgen" procstat "$1" | python3 -c 'import json, sys; print(json.load(sys.stdin)["proxy"]["cpu_s"])'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "http-split: HTTP reverse, sidecar-proxy and $PEER, wrk -t1 -c$CONNS, 3 s per run, $ROUNDS rounds; µs of CPU per request"
for r in $(seq "$ROUNDS"); do
  for who in sidecar-proxy "$PEER"; do
    port=$(free_port)
    if [ "$who" = sidecar-proxy ]; then
      "$BIN" --proxy-type reverse --proxy-protocol http --proxy-host 127.0.0.1 --proxy-port "$HTTP" \
        --proxy-in-port "$port" --in-bind 127.0.0.1 --no-admin --log-level error --drain-delay 0 --grace-period 0 >/dev/null 2>&1 &
    elif [ "$who" = haproxy ]; then
      sed -e "s/{{PORT}}/$port/" -e "s/{{HTTP_PORT}}/$HTTP/" "$HERE/peers/haproxy-http.cfg" >"$OUT/haproxy.cfg"
      haproxy -db -f "$OUT/haproxy.cfg" >/dev/null 2>&1 &
    else
      sed -e "s/{{PORT}}/$port/" -e "s/{{HTTP_PORT}}/$HTTP/" -e "s|{{RUN}}|$OUT|g" "$HERE/peers/nginx-http.conf" >"$OUT/nginx.conf"
      nginx -e "$OUT/nginx.err" -p "$OUT" -c "$OUT/nginx.conf" >/dev/null 2>&1 &
    fi
    P=$!
    pids+=($P)
    for _ in $(seq 50); do python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2>/dev/null && break; sleep 0.1; done
    BENCH_ORIGIN= wrk -t1 -c"$CONNS" -d1s -s "$HERE/wrk/check.lua" "http://127.0.0.1:$port/" >/dev/null # warm-up
    p0=$(cpu $P) u0=$(cpu $UP)
    BENCH_ORIGIN= /usr/bin/time -f "%U %S" -o "$OUT/wrk.time" wrk -t1 -c"$CONNS" -d3s -s "$HERE/wrk/check.lua" "http://127.0.0.1:$port/" >"$OUT/wrk.out"
    p1=$(cpu $P) u1=$(cpu $UP)
    python3 - "$who" "$OUT/wrk.out" "$OUT/wrk.time" "$p0" "$p1" "$u0" "$u1" <<'PY'
import json, sys
who, out, tfile, p0, p1, u0, u1 = sys.argv[1:]
line = next(l for l in open(out) if l.startswith("WRKJSON "))
d = json.loads(line[8:])
n = d["requests"]
bad = sum(d[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts", "bad_responses"))
us = lambda t0, t1: (float(t1) - float(t0)) / n * 1e6
wu, ws = open(tfile).read().split()
proxy, upstream, client = us(p0, p1), us(u0, u1), (float(wu) + float(ws)) / n * 1e6
print(f"{who:14s} {n / d['duration_us'] * 1e6:9.0f} req/s   proxy {proxy:5.2f}  upstream {upstream:5.2f}  wrk {client:5.2f}  all {proxy + upstream + client:5.2f}" + (f"   {bad} errors" if bad else ""))
PY
    kill "$P"
    wait "$P" 2>/dev/null || true
  done
done
