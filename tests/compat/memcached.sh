#!/usr/bin/env bash
# memcached (-t 4, libevent, one thread per worker) natively and under libgmp:
# a byte-for-byte data check (mc_check.py) and memcslap load.
# usage: memcached.sh [path/to/libgmp.so] [quick|full]
set -u
. "$(dirname "$0")/lib.sh"
compat_args "${1:-}" "${2:-quick}"
need_pkg memcached memcached || exit 2
need_pkg python3 python3 || exit 2
need_pkg libmemcached-tools memcslap || note "no memcslap: data check only"
compat_tmp
raise_nofile 20000

if [ "$MODE" = quick ]; then CONNS=200 KEYS=3000 SLAP_N=1000; else CONNS=1000 KEYS=30000 SLAP_N=10000; fi
USER_OPT=()
[ "$(id -u)" = 0 ] && USER_OPT=(-u nobody)   # as root memcached insists on dropping privileges
FAIL=0

# run_one MODE: sets R_OK R_SLAP (sets/s) R_THR R_RSS R_CHECK
run_one() {
  local mode=$1 port pre=
  [ "$mode" = libgmp ] && pre=$GMPLIB
  port=$(free_port)
  R_OK=1; R_SLAP=0; R_THR=0; R_RSS=0; R_CHECK="no check"
  start_bg "$COMPAT_TMP/memcached-$mode.log" env ${pre:+LD_PRELOAD=$pre} \
    memcached -t 4 -l 127.0.0.1 -p "$port" -U 0 -m 64 -c 4096 "${USER_OPT[@]}" -v
  local spid=$BG_PID
  if ! wait_port "$port" 10 "$spid"; then
    note "$mode: memcached did not listen within 10 s (threads: $(os_threads "$spid"))"
    [ -d "/proc/$spid" ] && note "$mode: main thread in $(cat "/proc/$spid/wchan" 2>/dev/null)"
    R_OK=0; stop_pid "$spid" 2; return
  fi
  sample_threads "$spid" 600 "$COMPAT_TMP/thr-$mode"
  local sampler=$SAMPLER_PID
  if timeout 300 python3 "$COMPAT_DIR/mc_check.py" "$port" "$CONNS" "$KEYS" >"$COMPAT_TMP/check-$mode.log" 2>&1; then
    R_CHECK="data OK"
  else
    R_CHECK="data FAIL"; R_OK=0; note "$mode: $(tail -1 "$COMPAT_TMP/check-$mode.log")"
  fi
  if command -v memcslap >/dev/null; then
    local t
    timeout 300 memcslap --servers="127.0.0.1:$port" --concurrency=50 --execute-number="$SLAP_N" \
      >"$COMPAT_TMP/slap-$mode.log" 2>&1
    t=$(awk '/Time to set/{for(i=1;i<=NF;i++) if($i=="seconds.") print $(i-1)}' "$COMPAT_TMP/slap-$mode.log")
    local nk
    nk=$(awk '/Time to set/{print $4}' "$COMPAT_TMP/slap-$mode.log")
    if [ -n "$t" ] && [ "${nk:-0}" -gt 0 ]; then
      R_SLAP=$(awk -v n="$nk" -v t="$t" 'BEGIN{printf "%d", n / (t > 0 ? t : 0.001)}')
    else
      note "$mode: memcslap: $(tail -2 "$COMPAT_TMP/slap-$mode.log" | tr '\n' ' ')"; R_OK=0
    fi
  fi
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  R_THR=$(cat "$COMPAT_TMP/thr-$mode" 2>/dev/null || echo 0)
  R_RSS=$(peak_rss_kb "$spid")
  kill -0 "$spid" 2>/dev/null || { note "$mode: memcached died"; R_OK=0; }
  stop_pid "$spid" 5
  if [ "$STOP_KILLED" = 1 ]; then note "$mode: memcached ignored SIGTERM for 5 s"; R_OK=0; fi
}

run_one native
n_ok=$R_OK n_slap=$R_SLAP n_thr=$R_THR n_rss=$R_RSS n_check=$R_CHECK
[ "$n_ok" = 1 ] || note "native run failed too"
run_one libgmp
[ "$R_OK" = 1 ] || FAIL=1
report memcached "memcslap sets, -t 4" set/s "$n_slap" "$R_SLAP" "$n_thr" "$R_THR" "$n_rss" "$R_RSS" "$([ "$R_OK" = 1 ] && echo OK || echo FAIL)"
result "compat memcached: native $n_slap set/s (memcslap) | libgmp $R_SLAP set/s, threads $n_thr vs $R_THR, peak RSS $((n_rss / 1024)) vs $((R_RSS / 1024)) MiB, $CONNS conns x $KEYS keys: native $n_check, libgmp $R_CHECK$([ "$R_OK" = 1 ] && echo "" || echo ", FAIL")"
exit $FAIL
