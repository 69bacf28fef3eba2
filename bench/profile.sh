#!/usr/bin/env bash
# Where sidecar-proxy's CPU goes under load, with JavaScript functions named (issue #7).
#
#   bench/profile.sh [http|http-tcp|tcp-rr|tcp-pingpong|connect-rr|socks-rr] [SECONDS]   (default: http 3)
#   http-tcp: the http load through our TCP mode (bytes relayed, heads not read), to set
#   against http function by function
#   FLOOR=1 bench/profile.sh ...   the same for the Bun floor relay (bench/floor/relay.ts; not
#                                  socks-rr), to tell our cost from Bun's function by function
#
# Runs `bun proxy.ts` (the npm bun binary keeps its symbol table; the compiled binary does not)
# as an HTTP or TCP reverse proxy in front of bench/loadgen's upstream (or as a forward CONNECT
# or SOCKS5 proxy to it), loads it with wrk (http, 64 connections) or loadgen (64 clients), and
# records it with `perf record -g`.
# JavaScriptCore writes a JITDump (BUN_JSC_useJITDump); its name (jit-TID-PID.dump) is not the
# one `perf inject --jit` looks for, so the script turns it into /tmp/perf-PID.map, which
# `perf report` reads for [JIT] frames. Prints CPU per request, the split kernel / Bun native /
# JIT code, and the JS functions by self and by inclusive time (inclusive counts the native
# calls and allocations they make). Needs perf (linux-perf), wrk, cc, python3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
MODE=${1:-http}
SECS=${2:-3}
BUN=$(readlink -f "$ROOT/node_modules/.bin/bun")
for tool in perf wrk cc python3; do
  command -v "$tool" >/dev/null || { echo "profile: needs $tool" >&2; exit 2; }
done
case $MODE in http | http-tcp | tcp-rr | tcp-pingpong | connect-rr | socks-rr) ;; *) echo "profile: mode is http, http-tcp, tcp-rr, tcp-pingpong, connect-rr or socks-rr" >&2; exit 2 ;; esac

OUT=$(mktemp -d /tmp/sidecar-profile.XXXXXX)
mkdir -p "$HERE/.work" "$OUT/jit"
cc -O2 -o "$HERE/.work/loadgen" "$HERE/loadgen.c"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

"$HERE/.work/loadgen" server >"$OUT/upstream.json" &
pids+=($!)
for _ in $(seq 50); do [ -s "$OUT/upstream.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))$1)" "$OUT/$2"; }
UPSTREAM=$(field "['echo']" upstream.json) SIDE=reverse PROTO=plain
case $MODE in
  http) UPSTREAM=$(field "['http']" upstream.json) ARGS=(--proxy-type reverse --proxy-protocol http) ;;
  http-tcp) UPSTREAM=$(field "['http']" upstream.json) ARGS=(--proxy-type reverse --proxy-protocol tcp) ;;
  tcp-*) ARGS=(--proxy-type reverse --proxy-protocol tcp) ;;
  connect-rr) SIDE=forward PROTO=connect ARGS=(--proxy-type forward --proxy-protocol http) ;;
  socks-rr) SIDE=forward PROTO=socks5 ARGS=(--proxy-type forward --proxy-protocol socks) ;;
esac
if [ $SIDE = reverse ]; then ARGS+=(--proxy-host 127.0.0.1 --proxy-port "$UPSTREAM" --proxy-in-port 0 --in-bind 127.0.0.1)
else ARGS+=(--proxy-out-port 0 --out-bind 127.0.0.1); fi

export BUN_JSC_useJITDump=1 BUN_JSC_jitDumpDirectory="$OUT/jit"
if [ "${FLOOR:-0}" = 1 ]; then
  case $MODE in socks-rr) echo "profile: the floor relay has no SOCKS mode" >&2; exit 2 ;; esac
  # The floor writes no ready file: a port the OS just handed out, then wait until it accepts.
  PORT=$(python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
  FLOOR_ARGS=("$PORT" "$UPSTREAM")
  [ "$MODE" = connect-rr ] && FLOOR_ARGS=("$PORT" connect)
  "$BUN" "$HERE/floor/relay.ts" "${FLOOR_ARGS[@]}" >"$OUT/proxy.log" 2>&1 &
  PROXY=$!
  pids+=($PROXY)
  for _ in $(seq 100); do (: </dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done
else
  "$BUN" "$ROOT/proxy.ts" "${ARGS[@]}" --no-admin --log-level error --ready-file "$OUT/ready.json" >"$OUT/proxy.log" 2>&1 &
  PROXY=$!
  pids+=($PROXY)
  for _ in $(seq 100); do [ -s "$OUT/ready.json" ] && break; sleep 0.1; done
  PORT=$(field "['$SIDE'][0]['port']" ready.json)
fi
unset BUN_JSC_useJITDump BUN_JSC_jitDumpDirectory

load() { # seconds -> operations
  if [ "${MODE%-tcp}" = http ]; then
    wrk -t1 -c64 -d"$1"s -s "$HERE/wrk/check.lua" "http://127.0.0.1:$PORT/" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p'
  else
    "$HERE/.work/loadgen" client --mode "${MODE#*-}" --proto $PROTO --proxy "127.0.0.1:$PORT" --target "127.0.0.1:$UPSTREAM" \
      --conns 64 --duration "$1" --src-ips 16 | sed -n 's/.*"ops":\([0-9]*\).*/\1/p'
  fi
}
load 2 >/dev/null # warm-up: let the JIT reach its top tier before recording
cpu() { awk '{print $14 + $15}' "/proc/$PROXY/stat"; }
perf record -q -g -F 2999 -p "$PROXY" -o "$OUT/perf.data" -- sleep $((SECS + 1)) 2>"$OUT/perf.err" &
REC=$!
sleep 0.3
c0=$(cpu)
OPS=$(load "$SECS")
c1=$(cpu)
wait $REC
kill "$PROXY" 2>/dev/null || true
wait "$PROXY" 2>/dev/null || true

python3 - "$OUT" "$PROXY" <<'PY'
# JITDump (JIT_CODE_LOAD records, id 0) -> perf map "start size name".
import glob, struct, sys
out, pid = sys.argv[1], sys.argv[2]
lines = []
for path in glob.glob(f"{out}/jit/jit-*.dump"):
    d = open(path, "rb").read()
    off = struct.unpack_from("<III", d, 0)[2]
    while off + 16 <= len(d):
        rid, size = struct.unpack_from("<II", d, off)
        if size == 0:
            break
        if rid == 0:
            addr, code_size = struct.unpack_from("<QQ", d, off + 16 + 16)
            name_start = off + 16 + 40
            name = d[name_start:d.index(b"\0", name_start)].decode("utf8", "replace").replace(" ", "_")
            lines.append(f"{addr:x} {code_size:x} {name}")
        off += size
open(f"/tmp/perf-{pid}.map", "w").write("\n".join(lines) + "\n")
PY

unit=$([ "${MODE%-tcp}" = http ] && echo request || echo "${MODE#*-} operation")
echo "mode $MODE: $OPS operations in $SECS s, proxy CPU $(python3 -c "print(round(($c1 - $c0) * 1e4 / max(1, $OPS), 2))") µs per $unit"
echo "(profile in $OUT; perf report -i $OUT/perf.data for more)"
echo
echo "== CPU by object (kernel, bun = Bun/JSC native code, [JIT] = compiled JavaScript)"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep '%' | head -6
echo
echo "== JavaScript functions, self time (% of all proxy CPU)"
perf report -i "$OUT/perf.data" --no-children --sort sym --stdio -g none 2>/dev/null | grep -E 'JSC-(FTL|DFG|Baseline)' | head -"${TOP:-25}"
echo
echo "== JavaScript functions, inclusive time (children: natives, allocation, GC they trigger)"
perf report -i "$OUT/perf.data" --children --sort sym --stdio -g none 2>/dev/null | grep -E 'JSC-(FTL|DFG|Baseline)' | head -"${TOP:-25}"
rm -f "/tmp/perf-$PROXY.map" # the JIT addresses are this process's only
