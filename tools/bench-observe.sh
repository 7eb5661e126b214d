#!/usr/bin/env bash
# tools/bench-observe.sh [BUILD_DIR]   (default ./build)
#
# What observing the scheduler costs: the same programs under libgmp with
# nothing on, with GMP_DEBUG=schedtrace=1000 (a SCHED line a second), and
# with GMP_TRACE=FILE (every run, wake-up, creation, steal and blocking
# system call recorded), interleaved, REPEATS times each, medians compared.
#   cond      tests/bench/cond_pingpong 1000000  (us per round trip; the
#             worst case: a switch every ~0.2 us, 4 events per round trip)
#   sock      tests/bench/sock_pingpong          (us per round trip)
#   echo      tools/demo/echo-threads, 200 connections of 64-byte echoes
#             from tools/demo/loadgen for DURATION s (req/s)
# Targets (issue 6): schedtrace < 1%, GMP_TRACE < 10%.
#
# Environment: REPEATS=5, DURATION=3, ONLY=REGEX (cond|sock|echo).
# Prints a Markdown table; exit 1 if a run failed.
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$(cd "${1:-./build}" && pwd) || exit 2
GMP=$BUILD/libgmp.so
REPEATS=${REPEATS:-5}
DURATION=${DURATION:-3}
ONLY=${ONLY:-}
[ -f "$GMP" ] || { echo "bench-observe: $GMP not found: build first" >&2; exit 2; }
tmp=$(mktemp -d)
server=''
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
failed=0

# run_one BENCH VARIANT -> prints one number (us per round trip, or req/s)
run_one() {
  local bench=$1 variant=$2 envs=()
  case $variant in
    off) ;;
    schedtrace) envs=(GMP_DEBUG=schedtrace=1000 GMP_TRACEFILE=$tmp/sched.log) ;;
    trace) envs=(GMP_TRACE=$tmp/trace.json) ;;
  esac
  case $bench in
    cond|sock)
      local prog=$BUILD/tests/bench/cond_pingpong arg=1000000
      [ "$bench" = sock ] && prog=$BUILD/tests/bench/sock_pingpong arg=''
      env "${envs[@]}" LD_PRELOAD="$GMP" "$prog" $arg 2>/dev/null | awk '/^RESULT/ {print $4}'
      ;;
    echo)
      env "${envs[@]}" LD_PRELOAD="$GMP" "$BUILD/tools/demo/echo-threads" 0 > "$tmp/srv.out" 2>&1 &
      server=$!
      local port='' i
      for i in $(seq 100); do
        port=$(sed -n 's/^listening on \([0-9]*\)$/\1/p' "$tmp/srv.out")
        [ -n "$port" ] && break
        sleep 0.05
      done
      if [ -n "$port" ]; then
        "$BUILD/tools/demo/loadgen" --port "$port" --conns 200 --size 64 --duration "$DURATION" \
          --warmup 0.5 2>/dev/null | sed -n 's/.*req_per_s=\([0-9.]*\).*/\1/p' | head -1
      fi
      kill -INT "$server" 2>/dev/null; wait "$server" 2>/dev/null; server=''
      ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END {if (NR) print (NR % 2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

echo "| benchmark | unit | off | schedtrace=1000 | overhead | GMP_TRACE | overhead |"
echo "|---|---|---:|---:|---:|---:|---:|"
for bench in cond sock echo; do
  [ -n "$ONLY" ] && ! [[ $bench =~ $ONLY ]] && continue
  : > "$tmp/off"; : > "$tmp/schedtrace"; : > "$tmp/trace"
  for r in $(seq "$REPEATS"); do
    for v in off schedtrace trace; do
      x=$(run_one "$bench" "$v")
      if [ -z "$x" ]; then echo "bench-observe: $bench/$v run $r failed" >&2; failed=1; continue; fi
      echo "$x" >> "$tmp/$v"
      sleep 0.2
    done
  done
  off=$(median < "$tmp/off"); st=$(median < "$tmp/schedtrace"); tr=$(median < "$tmp/trace")
  unit="us/round trip"; [ "$bench" = echo ] && unit="req/s"
  # Overhead: extra time per operation (for req/s, the inverse).
  awk -v b="$bench" -v u="$unit" -v o="$off" -v s="$st" -v t="$tr" 'BEGIN {
    if (u == "req/s") { os = o / s - 1; ot = o / t - 1 } else { os = s / o - 1; ot = t / o - 1 }
    printf "| %s | %s | %s | %s | %+.1f%% | %s | %+.1f%% |\n", b, u, o, s, 100 * os, t, 100 * ot }'
done
echo
echo "REPEATS=$REPEATS DURATION=$DURATION tools/bench-observe.sh; medians; $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs"
exit $failed
