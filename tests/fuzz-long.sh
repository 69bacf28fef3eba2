#!/usr/bin/env bash
# Long fuzzing run of the protocol machines (SOCKS4/5, HTTP/1.1) and of the plain-head shortcuts
# against the general HTTP path (tests/http-plain.test.ts), with a fresh random seed.
#   tests/fuzz-long.sh [ITERATIONS]      default 1,000,000 per fuzz loop
# The seed is printed first: re-run a failure with FUZZ_SEED=<seed>.
set -euo pipefail
cd "$(dirname "$0")/.."
seed="${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
iterations="${1:-1000000}"
echo "FUZZ_SEED=$seed FUZZ_ITERATIONS=$iterations"
FUZZ_SEED="$seed" FUZZ_ITERATIONS="$iterations" exec node_modules/.bin/bun test --timeout 3600000 fuzz http-plain
