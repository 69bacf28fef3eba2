#!/usr/bin/env bash
# Paired A/B of two sidecar-proxy binaries: both run at the same time, each loaded by its own
# loadgen client against one upstream, and each one's CPU per connection is read from /proc.
# The machine's load then moves both alike (alternating runs on these shared machines spread by
# several µs per connection; a pair of the same binary differs by about ±2 µs). Prints one line
# per round: A's and B's CPU µs per connection (and its part in user space and in the kernel)
# and B − A. Swap the slots to check for a bias.
#
#   bench/pair.sh A_BIN B_BIN [--mode tcp|socks|connect] [--rounds N] [--conns N] [-- EXTRA_FLAGS...]
#     tcp     reverse TCP rr (default)        socks    SOCKS5 rr        connect  HTTP CONNECT rr
#     B_BIN `floor`: the Bun floor relay (bench/floor/relay.ts, compiled like the bench's) in slot
#              B, to tell our cost from Bun's (tcp and connect; EXTRA_FLAGS go to A only)
#     EXTRA_FLAGS go to both proxies (e.g. -- --deny-destinations 127.0.0.2/32)
#     PAIR_LOG_LEVEL=info (env) runs both with a log line per connection (default: error), to a file
#
# Build the binaries with build.ts (`bun build.ts linux-x64 --outdir DIR`). Needs cc and python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
A=${1:?usage: bench/pair.sh A_BIN B_BIN [--mode tcp|socks|connect] [--rounds N] [--conns N] [-- FLAGS...]}
B=${2:?usage: bench/pair.sh A_BIN B_BIN ...}
shift 2
MODE=tcp ROUNDS=6 CONNS=32
EXTRA=()
while [ $# -gt 0 ]; do
  case $1 in
    --mode) MODE=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --conns) CONNS=$2; shift 2 ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "pair: unknown argument $1" >&2; exit 2 ;;
  esac
done
case $MODE in tcp) PROTO=plain ;; socks) PROTO=socks5 ;; connect) PROTO=connect ;; *) echo "pair: --mode tcp|socks|connect" >&2; exit 2 ;; esac
mkdir -p "$HERE/.work"
FLOOR=0
if [ "$B" = floor ]; then
  [ "$MODE" != socks ] || { echo "pair: the floor relay has no SOCKS (tcp or connect)" >&2; exit 2; }
  FLOOR=1 B="$HERE/.work/floor-relay"
  "$(readlink -f "$HERE/../node_modules/.bin/bun")" build --compile "$HERE/floor/relay.ts" --outfile "$B" >/dev/null
fi
for bin in "$A" "$B"; do [ -x "$bin" ] || { echo "pair: $bin is not an executable" >&2; exit 2; }; done
cc -O2 -o "$HERE/.work/loadgen" "$HERE/loadgen.c"
LG="$HERE/.work/loadgen"
OUT=$(mktemp -d /tmp/sidecar-pair.XXXXXX)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$OUT"' EXIT

"$LG" server >"$OUT/upstream.json" &
pids+=($!)
for _ in $(seq 50); do [ -s "$OUT/upstream.json" ] && break; sleep 0.1; done
ECHO=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["echo"])' "$OUT/upstream.json")

# start BIN SLOT: runs one proxy on an OS-chosen port; its port lands in $OUT/SLOT.ready
start() {
  if [ "$2" = b ] && [ $FLOOR = 1 ]; then
    # The floor relay takes a port number and says nothing: one the OS has just freed (as bench.ts).
    local port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$1" "$port" "$([ $MODE = tcp ] && echo "$ECHO" || echo connect)" >"$OUT/b.log" 2>&1 &
    FLOOR_PID=$!
    # b.ready once it accepts (the wait below gives up without it).
    (for _ in $(seq 100); do
       if python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$port" 2>/dev/null; then
         echo "{\"floor\": [{\"port\": $port}]}" >"$OUT/b.ready"
         break
       fi
       sleep 0.05
     done) &
    pids+=($!)
    return
  fi
  local args=(--no-admin --log-level "${PAIR_LOG_LEVEL:-error}" --drain-delay 0 --grace-period 0 --ready-file "$OUT/$2.ready")
  case $MODE in
    tcp) args+=(--proxy-type reverse --proxy-protocol tcp --proxy-host 127.0.0.1 --proxy-port "$ECHO" --proxy-in-port 0 --in-bind 127.0.0.1) ;;
    socks) args+=(--proxy-type forward --proxy-protocol socks --proxy-out-port 0 --out-bind 127.0.0.1) ;;
    connect) args+=(--proxy-type forward --proxy-protocol http --proxy-out-port 0 --out-bind 127.0.0.1) ;;
  esac
  "$1" "${args[@]}" "${EXTRA[@]}" >"$OUT/$2.log" 2>&1 &
}
port_of() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(next(iter(d.values()))[0]["port"])' "$OUT/$1.ready"; }

echo "pair: $MODE rr, $CONNS clients each, $ROUNDS rounds; A=$A B=$B"
for r in $(seq "$ROUNDS"); do
  rm -f "$OUT"/*.ready
  start "$A" a; PA=$!; start "$B" b; PB=${FLOOR_PID:-$!}
  pids+=($PA $PB)
  for _ in $(seq 100); do [ -s "$OUT/a.ready" ] && [ -s "$OUT/b.ready" ] && break; sleep 0.05; done
  [ -s "$OUT/a.ready" ] && [ -s "$OUT/b.ready" ] || { echo "pair: a proxy did not start (logs in $OUT)" >&2; cat "$OUT"/*.log >&2; exit 1; }
  client() { timeout 60 "$LG" client --mode rr --proto $PROTO --proxy "127.0.0.1:$1" --target "127.0.0.1:$ECHO" --conns "$CONNS" --duration 3 --warmup 0.5 --src-ips 8 --watch-pid "$2"; }
  client "$(port_of a)" $PA >"$OUT/a.json" &
  CA=$!
  client "$(port_of b)" $PB >"$OUT/b.json"
  wait $CA
  kill $PA $PB 2>/dev/null || true
  wait $PA $PB 2>/dev/null || true
  python3 - "$OUT/a.json" "$OUT/b.json" "$r" <<'PY'
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ca, cb = (d["proxy_cpu_s"] * 1e6 / max(1, d["ops"]) for d in (a, b))
ka, kb = (d["proxy_sys_s"] * 1e6 / max(1, d["ops"]) for d in (a, b))
errors = a["errors"] + b["errors"]
print(f"round {sys.argv[3]}: A {ca:6.2f} µs/conn (user {ca - ka:5.1f} kernel {ka:5.1f}; {a['rate']:.0f}/s)  "
      f"B {cb:6.2f} µs/conn (user {cb - kb:5.1f} kernel {kb:5.1f}; {b['rate']:.0f}/s)  B-A {cb - ca:+.2f}" + (f"  ⚠ {errors} errors" if errors else ""))
PY
done
