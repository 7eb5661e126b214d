#!/usr/bin/env bash
# mariadb (one thread per connection; InnoDB waits with raw futex
# syscalls, writes with libaio/io_uring, fdatasync) natively and under
# libgmp, each on a private datadir: sysbench oltp_read_write with 64
# threads, CHECK TABLE on every table, row counts, a clean shutdown on
# SIGTERM. usage: mariadb.sh [path/to/libgmp.so] [quick|full]
set -u
. "$(dirname "$0")/lib.sh"
compat_args "${1:-}" "${2:-quick}"
need_pkg mariadb-server mariadbd || need_pkg mariadb-server /usr/sbin/mariadbd || exit 2
need_pkg sysbench sysbench || exit 2
compat_tmp
raise_nofile 20000

if [ "$MODE" = quick ]; then TIME=4 ROWS=2000; else TIME=30 ROWS=100000; fi
THREADS=64 TABLES=4
FAIL=0
MARIADBD=$(command -v mariadbd || echo /usr/sbin/mariadbd)

# run_one MODE: sets R_OK R_TPS R_P95 R_THR R_RSS R_DATA
run_one() {
  local mode=$1 port pre= dir
  [ "$mode" = libgmp ] && pre=$GMPLIB
  port=$(free_port)
  dir=$COMPAT_TMP/$mode; mkdir -p "$dir/data"
  R_OK=1; R_TPS=0; R_P95=0; R_THR=0; R_RSS=0; R_DATA="no check"
  if ! mariadb-install-db --no-defaults --datadir="$dir/data" --user="$(id -un)" \
      --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1; then
    note "$mode: mariadb-install-db failed"; tail -3 "$dir/install.log" >&2; R_OK=0; return
  fi
  start_bg "$dir/out.log" env ${pre:+LD_PRELOAD=$pre} "$MARIADBD" --no-defaults \
    --datadir="$dir/data" --user="$(id -un)" --port="$port" --bind-address=127.0.0.1 \
    --socket="$dir/sock" --pid-file="$dir/pid" --log-error="$dir/err.log" --skip-name-resolve \
    --innodb-buffer-pool-size=128M --max-connections=500 --thread-handling=one-thread-per-connection
  local spid=$BG_PID
  if ! wait_port "$port" 60 "$spid"; then
    note "$mode: mariadbd did not listen"; tail -5 "$dir/err.log" >&2; R_OK=0; stop_pid "$spid" 10; return
  fi
  local sql=(mariadb -uroot -h127.0.0.1 -P"$port")
  "${sql[@]}" -e "CREATE DATABASE sbtest" || { R_OK=0; stop_pid "$spid" 10; return; }
  local sb=(sysbench oltp_read_write --db-driver=mysql --mysql-host=127.0.0.1
            --mysql-port="$port" --mysql-user=root --mysql-db=sbtest --tables=$TABLES
            --table-size=$ROWS)
  if ! timeout 300 "${sb[@]}" prepare >"$dir/prepare.log" 2>&1; then
    note "$mode: sysbench prepare failed"; tail -3 "$dir/prepare.log" >&2; R_OK=0
  fi
  sample_threads "$spid" 600 "$dir/thr"
  local sampler=$SAMPLER_PID
  timeout $((TIME + 60)) "${sb[@]}" --threads=$THREADS --time=$TIME run >"$dir/run.log" 2>&1 ||
    { note "$mode: sysbench run failed"; tail -3 "$dir/run.log" >&2; R_OK=0; }
  R_TPS=$(awk '/transactions:/ {gsub(/\(/, "", $3); print int($3)}' "$dir/run.log")
  R_P95=$(awk '/95th percentile:/ {print $3}' "$dir/run.log")
  kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
  R_THR=$(cat "$dir/thr" 2>/dev/null || echo 0)
  R_RSS=$(peak_rss_kb "$spid")

  # data: every table checks OK and still has its rows (oltp_read_write
  # deletes and re-inserts the same ids)
  local bad= t
  for t in $(seq 1 $TABLES); do
    "${sql[@]}" -N -e "CHECK TABLE sbtest.sbtest$t" | grep -q "status[[:space:]]*OK" || bad="$bad check$t"
    [ "$("${sql[@]}" -N -e "SELECT COUNT(*) FROM sbtest.sbtest$t")" = "$ROWS" ] || bad="$bad rows$t"
  done
  if [ -z "$bad" ]; then R_DATA="tables OK"; else R_DATA="data FAIL:$bad"; R_OK=0; note "$mode: $R_DATA"; fi

  kill -0 "$spid" 2>/dev/null || { note "$mode: mariadbd died"; R_OK=0; }
  stop_pid "$spid" 60
  if [ "$STOP_KILLED" = 1 ]; then note "$mode: mariadbd ignored SIGTERM for 60 s"; R_OK=0
  elif [ "$STOP_STATUS" != 0 ]; then note "$mode: mariadbd exit status $STOP_STATUS"; R_OK=0; fi
  grep -q 'Shutdown complete' "$dir/err.log" || { note "$mode: no 'Shutdown complete' in the log"; R_OK=0; }
}

run_one native
n_ok=$R_OK n_tps=$R_TPS n_p95=$R_P95 n_thr=$R_THR n_rss=$R_RSS n_data=$R_DATA
[ "$n_ok" = 1 ] || note "native run failed too ($n_data)"
run_one libgmp
[ "$R_OK" = 1 ] || FAIL=1
report mariadb "oltp_read_write, $THREADS threads" tps "$n_tps" "$R_TPS" "$n_thr" "$R_THR" "$n_rss" "$R_RSS" "$([ "$R_OK" = 1 ] && echo OK || echo FAIL)"
result "compat mariadb: native $n_tps tps (p95 $n_p95 ms) | libgmp $R_TPS tps (p95 $R_P95 ms), $THREADS sysbench threads, OS threads $n_thr vs $R_THR, peak RSS $((n_rss / 1024)) vs $((R_RSS / 1024)) MiB, $R_DATA, shutdown $([ "$R_OK" = 1 ] && echo OK || echo FAIL)"
exit $FAIL
