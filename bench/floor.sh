#!/usr/bin/env bash
# What Bun itself costs: sidecar-proxy (TCP reverse) against the smallest correct Bun relay
# (bench/floor/relay.ts, compiled the same way), HAProxy and nginx, in rr and pingpong.
#
#   bench/floor.sh [ROUNDS]      (default 3; ~1 min per round; needs what bench/run.sh needs)
#
# Prints, per mode and contestant, the median rate and proxy CPU per operation over the rounds
# (contestants alternate within each round). Loopback only; every process is killed on exit.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BUN="$ROOT/node_modules/.bin/bun"
ROUNDS=${1:-3}
W="$HERE/.work"
mkdir -p "$W"
cc -O2 -Wall -Wextra -o "$W/loadgen" "$HERE/loadgen.c"
(cd "$ROOT" && "$BUN" build.ts linux-x64 --outdir "$W" >/dev/null)
"$BUN" build --compile "$HERE/floor/relay.ts" --outfile "$W/floor-relay" >/dev/null
RUN=$(mktemp -d /tmp/sidecar-floor.XXXXXX)
pids=()
cleanup() { exec 2>/dev/null; for p in "${pids[@]}"; do pkill -9 -P "$p" 2>/dev/null || true; kill -9 "$p" 2>/dev/null || true; done; rm -rf "$RUN"; }
trap cleanup EXIT

"$W/loadgen" server >"$RUN/srv" & pids+=($!)
for _ in $(seq 50); do [ -s "$RUN/srv" ] && break; sleep 0.1; done
ECHO=$(sed -E 's/.*"echo":([0-9]+).*/\1/' "$RUN/srv")
free_port() { python3 -c "import socket;s=socket.socket();s.bind(('127.0.0.1',0));print(s.getsockname()[1])"; }

# start ID PORT -> sets PID (the process to kill) and WATCH (the process doing the work)
start() {
  local id=$1 port=$2
  case $id in
    sidecar-proxy) "$W/sidecar-proxy-linux-x64" --proxy-type reverse --proxy-protocol tcp --proxy-host 127.0.0.1 \
        --proxy-port "$ECHO" --proxy-in-port "$port" --in-bind 127.0.0.1 --no-admin --log-level error >/dev/null 2>&1 & ;;
    bun-floor) "$W/floor-relay" "$port" "$ECHO" >/dev/null 2>&1 & ;;
    haproxy|nginx)
      local conf=$HERE/peers/haproxy-tcp.cfg
      [ "$id" = nginx ] && conf=$HERE/peers/nginx-stream.conf
      sed -e "s#{{PORT}}#$port#g; s#{{ECHO_PORT}}#$ECHO#g; s#{{RUN}}#$RUN#g" "$conf" >"$RUN/$id.conf"
      if [ "$id" = nginx ]; then nginx -e "$RUN/nginx.err" -p "$RUN" -c "$RUN/nginx.conf" & else haproxy -db -f "$RUN/haproxy.conf" >/dev/null 2>&1 & fi ;;
  esac
  PID=$!
  pids+=("$PID")
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done
  WATCH=$PID
  [ "$id" = nginx ] && WATCH=$(pgrep -P "$PID" | head -1)
  return 0
}

IDS=(sidecar-proxy bun-floor haproxy nginx)
for round in $(seq "$ROUNDS"); do
  for mode in rr pingpong; do
    for n in 16 64; do
      for id in "${IDS[@]}"; do
        port=$(free_port)
        start "$id" "$port"
        line=$("$W/loadgen" client --mode "$mode" --proto plain --proxy "127.0.0.1:$port" --target "127.0.0.1:$ECHO" \
          --conns "$n" --duration 3 --src-ips 16 --watch-pid "$WATCH")
        kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true
        echo "$mode-$n $id $line" >>"$RUN/results"
        echo "round $round $mode-$n $id: $(grep -o '"rate":[0-9.]*' <<<"$line")" >&2
      done
    done
  done
  IDS=("${IDS[@]:1}" "${IDS[0]}") # rotate the order each round
done

echo
echo "| mode | contestant | median ops/s | proxy CPU µs/op (median) | errors |"
echo "|---|---|---|---|---|"
python3 - "$RUN/results" <<'PY'
import json, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    key, ident, js = line.split(" ", 2)
    r = json.loads(js)
    rows.setdefault((key, ident), []).append(r)
for (key, ident), rs in sorted(rows.items(), key=lambda kv: (kv[0][0], ["sidecar-proxy", "bun-floor", "haproxy", "nginx"].index(kv[0][1]))):
    rate = statistics.median(r["rate"] for r in rs)
    cpu = statistics.median(1e6 * r["proxy_cpu_s"] / max(1, r["ops"]) for r in rs)
    print(f"| {key} | {ident} | {rate:,.0f} | {cpu:.1f} | {sum(r['errors'] for r in rs)} |")
PY
