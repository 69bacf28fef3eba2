#!/usr/bin/env bash
# Side-by-side benchmark of sidecar-proxy against Debian peers on loopback (issue #7).
#
#   bench/run.sh [--quick] [--rounds N] [--only ID,ID] [--source | --bin PATH] [MODE...]
#     MODE     rr pingpong bulk idle http startup (default: all; a full run takes ~15 min)
#     --quick  1 round, 1 s measurements, 64 MiB bulk (~3 min): checks the harness, not the numbers
#     --only   contestant ids, e.g. sidecar-proxy,haproxy (direct always runs). Yardsticks:
#              bun-floor, the smallest correct Bun relay (bench/floor/relay.ts), in TCP and CONNECT rr/pingpong, TCP bulk
#              and HTTP reverse; sidecar-proxy-tcp (our TCP mode relaying HTTP) in HTTP reverse
#     --source run `bun proxy.ts` instead of the compiled binary (for profiling)
#     --bin    benchmark this sidecar-proxy binary instead of building one (A/B of a change)
#
# Needs: apt-get install -y microsocks dante-server haproxy tinyproxy squid nginx libnginx-mod-stream wrk
# Writes bench/out/<stamp>.md/.json; a full run also refreshes the table in bench/RESULTS.md.
# Every process it starts is killed on exit (trap), also when the runner itself dies.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUN="$ROOT/node_modules/.bin/bun"

missing=()
for tool in cc microsocks danted tinyproxy squid haproxy nginx wrk; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -f /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=("libnginx-mod-stream")
[ -x "$BUN" ] || missing+=("node_modules (npm install)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "bench: missing ${missing[*]}" >&2
  echo "bench: apt-get install -y microsocks dante-server haproxy tinyproxy squid nginx libnginx-mod-stream wrk" >&2
  exit 2
fi

mkdir -p "$HERE/.work" "$HERE/out"
cc -O2 -Wall -Wextra -o "$HERE/.work/loadgen" "$HERE/loadgen.c"
source_mode=0
bin=""
prev=""
for a in "$@"; do
  [ "$a" = "--source" ] && source_mode=1
  [ "$prev" = "--bin" ] && bin=$(cd "$(dirname "$a")" && pwd)/$(basename "$a")
  prev=$a
done
if [ -n "$bin" ]; then
  [ -x "$bin" ] || { echo "bench: --bin $bin is not an executable" >&2; exit 2; }
elif [ $source_mode = 0 ]; then
  # build.ts itself (same flags as the release binaries), into bench/.work so dist/ is left alone.
  (cd "$ROOT" && "$BUN" build.ts linux-x64 --outdir "$HERE/.work" >/dev/null)
fi
# The Bun floor relay (the bun-floor yardstick), compiled like sidecar-proxy.
"$BUN" build --compile "$HERE/floor/relay.ts" --outfile "$HERE/.work/floor-relay" >/dev/null

RUN=$(mktemp -d /tmp/sidecar-bench.XXXXXX)
chmod 777 "$RUN" # Squid, tinyproxy and Dante drop privileges and still write their logs here
PIDFILE="$RUN/pids"
: >"$PIDFILE"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

killtree() {
  local pid=$1 child
  for child in $(pgrep -P "$pid" 2>/dev/null); do killtree "$child"; done
  kill -9 "$pid" 2>/dev/null || true
}
runner=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$runner" ] && killtree "$runner"
  while read -r pid; do [ -n "$pid" ] && killtree "$pid"; done <"$PIDFILE"
  if [ $rc = 0 ]; then rm -rf "$RUN"; else echo "bench: exit $rc; peer logs kept in $RUN" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

LOADGEN="$HERE/.work/loadgen" SIDECAR_BIN="${bin:-$HERE/.work/sidecar-proxy-linux-x64}" FLOOR_BIN="$HERE/.work/floor-relay" \
  BENCH_RUN="$RUN" BENCH_PIDFILE="$PIDFILE" \
  "$BUN" "$HERE/bench.ts" "$@" &
runner=$!
wait $runner
