#!/usr/bin/env bash
# redis-server (io-threads 2, reads too) natively and under libgmp:
# redis-benchmark, a data check with redis-cli, a clean SIGTERM shutdown.
# usage: redis.sh [path/to/libgmp.so] [quick|full]
set -u
. "$(dirname "$0")/lib.sh"
compat_args "${1:-}" "${2:-quick}"
need_pkg redis-server redis-server || exit 2
need_pkg redis-tools redis-benchmark || exit 2
compat_tmp
raise_nofile 20000

if [ "$MODE" = quick ]; then N=20000 INCRS=500; else N=200000 INCRS=5000; fi
TESTS="set,get,incr,lpush,lpop"
FAIL=0
head -c 1048576 /dev/urandom >"$COMPAT_TMP/big.bin"

# run_one MODE: sets R_OK R_RPS ("SET/GET/INCR/LPUSH/LPOP") R_SET R_THR R_RSS R_DATA
run_one() {
  local mode=$1 port pre= dir
  [ "$mode" = libgmp ] && pre=$GMPLIB
  port=$(free_port)
  dir=$COMPAT_TMP/$mode; mkdir -p "$dir"
  R_OK=1; R_RPS="-"; R_SET=0; R_THR=0; R_RSS=0; R_DATA="no check"
  start_bg "$dir/redis.log" env ${pre:+LD_PRELOAD=$pre} redis-server --port "$port" --bind 127.0.0.1 \
    --dir "$dir" --save '' --appendonly no --io-threads 2 --io-threads-do-reads yes --daemonize no
  local spid=$BG_PID
  if ! wait_port "$port" 10 "$spid"; then
    note "$mode: redis did not listen"; tail -3 "$dir/redis.log" >&2; R_OK=0; stop_pid "$spid" 2; return
  fi
  local cli=(redis-cli -p "$port")
  sample_threads "$spid" 600 "$dir/thr"
  local sampler=$SAMPLER_PID
  timeout 300 redis-benchmark -p "$port" -q -n "$N" -c 50 -t "$TESTS" 2>&1 | tr '\r' '\n' |
    grep 'requests per second' >"$dir/bench.txt"
  R_RPS=$(awk -F'[: ]+' '{printf "%s%d", (NR>1?"/":""), $2}' "$dir/bench.txt")
  R_SET=$(awk -F'[: ]+' '$1=="SET"{printf "%d", $2}' "$dir/bench.txt")
  if [ "$(wc -l <"$dir/bench.txt")" -ne 5 ]; then note "$mode: redis-benchmark incomplete"; R_OK=0; fi

  # data: 4 clients INCR one counter at once, a list, a 1 MiB binary value
  local bad=
  "${cli[@]}" DEL ctr lst big >/dev/null
  local i pids=()
  for i in 1 2 3 4; do
    (yes 'INCR ctr' | head -n "$INCRS" | "${cli[@]}" >/dev/null) & pids+=($!)
  done
  wait "${pids[@]}"
  [ "$("${cli[@]}" GET ctr)" = $((4 * INCRS)) ] || bad="$bad counter=$("${cli[@]}" GET ctr)"
  seq 1 "$INCRS" | sed 's/^/RPUSH lst /' | "${cli[@]}" >/dev/null
  for i in $(seq 1 10); do "${cli[@]}" LPOP lst >/dev/null; done
  [ "$("${cli[@]}" LLEN lst)" = $((INCRS - 10)) ] || bad="$bad llen=$("${cli[@]}" LLEN lst)"
  [ "$("${cli[@]}" LINDEX lst 0)" = 11 ] || bad="$bad lindex"
  "${cli[@]}" -x SET big <"$COMPAT_TMP/big.bin" >/dev/null
  [ "$("${cli[@]}" STRLEN big)" = 1048576 ] || bad="$bad strlen=$("${cli[@]}" STRLEN big)"
  "${cli[@]}" --raw GET big | head -c 1048576 >"$dir/big.out"
  cmp -s "$COMPAT_TMP/big.bin" "$dir/big.out" || bad="$bad big-value-differs"
  if [ -z "$bad" ]; then R_DATA="data OK"; else R_DATA="data FAIL:$bad"; R_OK=0; note "$mode: $R_DATA"; fi

  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  R_THR=$(cat "$dir/thr" 2>/dev/null || echo 0)
  R_RSS=$(peak_rss_kb "$spid")
  kill -0 "$spid" 2>/dev/null || { note "$mode: redis died"; R_OK=0; }
  stop_pid "$spid" 10
  if [ "$STOP_KILLED" = 1 ]; then note "$mode: redis ignored SIGTERM for 10 s"; R_OK=0
  elif [ "$STOP_STATUS" != 0 ]; then note "$mode: redis exit status $STOP_STATUS"; R_OK=0; fi
  grep -q 'ready to exit' "$dir/redis.log" || { note "$mode: no 'ready to exit' in the log"; R_OK=0; }
}

run_one native
n_ok=$R_OK n_rps=$R_RPS n_set=$R_SET n_thr=$R_THR n_rss=$R_RSS n_data=$R_DATA
[ "$n_ok" = 1 ] || note "native run failed too ($n_data)"
run_one libgmp
[ "$R_OK" = 1 ] || FAIL=1
report redis "redis-benchmark SET, 50 clients" req/s "$n_set" "$R_SET" "$n_thr" "$R_THR" "$n_rss" "$R_RSS" "$([ "$R_OK" = 1 ] && echo OK || echo FAIL)"
result "compat redis: native $n_set req/s (SET) | libgmp $R_SET req/s (SET), threads $n_thr vs $R_THR, peak RSS $((n_rss / 1024)) vs $((R_RSS / 1024)) MiB, $R_DATA, shutdown $([ "$R_OK" = 1 ] && echo OK || echo FAIL) [SET/GET/INCR/LPUSH/LPOP native $n_rps | libgmp $R_RPS]"
exit $FAIL
