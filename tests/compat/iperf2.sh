#!/usr/bin/env bash
# iperf 2 (thread per connection) natively and under libgmp.
# usage: iperf2.sh [path/to/libgmp.so] [quick|full]
set -u
. "$(dirname "$0")/lib.sh"
compat_args "${1:-}" "${2:-quick}"
need_pkg iperf iperf || exit 2
compat_tmp
raise_nofile 20000

if [ "$MODE" = quick ]; then RUNS="64:3"; else RUNS="64:10 1000:5"; fi
FAIL=0
LINE=

# run_one MODE CONNS SECS: sets R_TPUT (Gbit/s), R_THR (max server OS threads), R_RSS, R_OK
run_one() {
  local mode=$1 conns=$2 secs=$3 port pre=
  [ "$mode" = libgmp ] && pre=$GMPLIB
  port=$(free_port)
  start_bg "$COMPAT_TMP/server-$mode-$conns.log" env ${pre:+LD_PRELOAD=$pre} iperf -s -B 127.0.0.1 -p "$port"
  local spid=$BG_PID
  R_OK=1; R_TPUT=0; R_THR=0; R_RSS=0
  if ! wait_port "$port" 10 "$spid"; then
    note "$mode: server did not listen"; R_OK=0; stop_pid "$spid" 2; return
  fi
  sample_threads "$spid" $((secs + 10)) "$COMPAT_TMP/thr-$mode-$conns"
  local sampler=$SAMPLER_PID
  timeout $((secs + 60)) iperf -c 127.0.0.1 -p "$port" -t "$secs" -P "$conns" -f g \
    >"$COMPAT_TMP/client-$mode-$conns.log" 2>&1
  local crc=$?
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  R_THR=$(cat "$COMPAT_TMP/thr-$mode-$conns" 2>/dev/null || echo 0)
  R_RSS=$(peak_rss_kb "$spid")
  R_TPUT=$(awk '/\[SUM\].*Gbits\/sec/{v=$(NF-1)} END{print v+0}' "$COMPAT_TMP/client-$mode-$conns.log")
  if [ "$crc" != 0 ]; then note "$mode $conns: client exit $crc"; R_OK=0; fi
  if ! awk -v v="$R_TPUT" 'BEGIN{exit !(v > 0)}'; then
    note "$mode $conns: no throughput line from the client:"; tail -3 "$COMPAT_TMP/client-$mode-$conns.log" >&2; R_OK=0
  fi
  sleep 0.5
  if ! kill -0 "$spid" 2>/dev/null; then
    note "$mode $conns: server died"; tail -5 "$COMPAT_TMP/server-$mode-$conns.log" >&2; R_OK=0
  fi
  local seen
  seen=$(grep -c 'connected with' "$COMPAT_TMP/server-$mode-$conns.log")
  if [ "$seen" -lt "$conns" ]; then note "$mode $conns: server saw $seen of $conns connections"; R_OK=0; fi
  stop_pid "$spid" 5
  if [ "$STOP_KILLED" = 1 ]; then note "$mode $conns: server ignored SIGTERM for 5 s"; R_OK=0; fi
}

for run in $RUNS; do
  conns=${run%%:*}; secs=${run##*:}
  run_one native "$conns" "$secs"
  n_tput=$R_TPUT n_thr=$R_THR n_rss=$R_RSS n_ok=$R_OK
  run_one libgmp "$conns" "$secs"
  g_tput=$R_TPUT g_thr=$R_THR g_rss=$R_RSS g_ok=$R_OK
  [ "$g_ok" = 1 ] || FAIL=1
  [ "$n_ok" = 1 ] || note "native run failed too ($conns connections)"
  report iperf2 "-P $conns, ${secs} s" Gbit/s "$n_tput" "$g_tput" "$n_thr" "$g_thr" "$n_rss" "$g_rss" "$([ "$g_ok" = 1 ] && echo OK || echo FAIL)"
  part="-P $conns: native $n_tput Gbit/s | libgmp $g_tput Gbit/s, threads $n_thr vs $g_thr, peak RSS $((n_rss / 1024)) vs $((g_rss / 1024)) MiB, $([ "$g_ok" = 1 ] && echo OK || echo FAIL)"
  LINE=${LINE:+$LINE; }$part
done
result "compat iperf2: $LINE"
exit $FAIL
