#!/usr/bin/env bash
# The C10K demo: one unmodified thread-per-connection echo server
# (tools/demo/echo-threads.c), run natively and under libgmp, against the
# hand-written single-threaded epoll server (tools/demo/epoll-echo.c), all
# driven by the same load generator (tools/demo/loadgen.c) over 127.0.0.1.
#
#   tools/c10k.sh [BUILD_DIR]          (default: build/)
#
# Environment:
#   CONNS     connection counts to run           (default "1000 10000")
#   DURATION  measured seconds per run           (default 5)
#   SIZE      bytes per request (echoed back)    (default 64)
#   SERVERS   which servers, in order            (default "threads gmp epoll")
#               threads = echo-threads, native pthreads
#               gmp     = echo-threads with LD_PRELOAD=BUILD_DIR/libgmp.so
#               epoll   = epoll-echo, native
#   WARMUP    unmeasured seconds after the ramp  (default 1)
#   DEMO_DIR  where the demo binaries are        (default BUILD_DIR/tools/demo)
#
# For each run it records the server's OS thread count (the maximum of
# /proc/PID/status "Threads" sampled every 0.2 s), its peak RSS (VmHWM at
# the end) and the kernel memory it causes beyond RSS: page tables (VmPTE,
# the maximum seen) plus one kernel stack per OS thread.  Socket buffers
# are kernel memory too, but the same for every server, so not counted.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
if [[ ! -d $BUILD ]]; then
  echo "c10k: build directory '$BUILD' does not exist (cmake -S . -B build && cmake --build build)" >&2
  exit 2
fi
BUILD=$(cd "$BUILD" && pwd)
DEMO=${DEMO_DIR:-$BUILD/tools/demo}
CONNS=${CONNS:-"1000 10000"}
DURATION=${DURATION:-5}
SIZE=${SIZE:-64}
SERVERS=${SERVERS:-"threads gmp epoll"}
WARMUP=${WARMUP:-1}
LIBGMP=$BUILD/libgmp.so

# Each OS thread has a kernel stack of THREAD_SIZE, 16 KiB on x86_64 (four
# pages; KASAN kernels use 32 KiB).  It is not in the process's RSS, and it
# is what a thread-per-connection server pays per connection in the kernel
# on top of its page tables.
KSTACK_KIB=16
FD_MARGIN=64            # descriptors besides connections: stdio, epoll, ...

for bin in echo-threads epoll-echo loadgen; do
  if [[ ! -x $DEMO/$bin ]]; then
    echo "c10k: $DEMO/$bin not found: build it (cmake --build $BUILD, with tools/demo in the build)" \
         "or set DEMO_DIR (cmake -S tools/demo -B /tmp/demo-build && cmake --build /tmp/demo-build;" \
         "DEMO_DIR=/tmp/demo-build/tools/demo)" >&2
    exit 2
  fi
done
for mode in $SERVERS; do
  case $mode in
    threads|epoll) ;;
    gmp) if [[ ! -f $LIBGMP ]]; then
           echo "c10k: $LIBGMP not found (needed by SERVERS=gmp): cmake --build $BUILD" >&2
           exit 2
         fi ;;
    *) echo "c10k: unknown server '$mode' in SERVERS (threads, gmp, epoll)" >&2; exit 2 ;;
  esac
  # Results and logs are kept per connection count and server: a server
  # named twice would overwrite its first run (run the script twice).
  if [[ " ${seen_modes:-} " == *" $mode "* ]]; then
    echo "c10k: server '$mode' named twice in SERVERS; run the script again to repeat a run" >&2
    exit 2
  fi
  seen_modes="${seen_modes:-} $mode"
done
for n in $CONNS; do
  if ! [[ $n =~ ^[1-9][0-9]*$ ]]; then
    echo "c10k: CONNS must be positive integers, not '$n'" >&2
    exit 2
  fi
done

# Descriptors: as many as the hard limit allows (no privilege needed).
# Both programs inherit this; each also raises its own soft limit.
hard=$(ulimit -Hn)
if [[ $hard == unlimited ]]; then
  hard=$(cat /proc/sys/fs/nr_open)
fi
ulimit -n "$hard"
nofile=$(ulimit -n)

# ---- state for the EXIT trap: the processes this script started ---------
SERVER_PID=
LG_PID=
LOGDIR=$(mktemp -d "${TMPDIR:-/tmp}/c10k.XXXXXX")
KEEP_LOGS=0

# Is PID a live process (not a zombie waiting to be reaped)?  kill -0 alone
# succeeds for a zombie child, which is not running anything.
alive() {
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  st=${st##*) }
  [[ ${st:0:1} != Z ]]
}

# Stop one process started here, by PID: SIGTERM, up to 5 s, then SIGKILL;
# then reap it.  Sets STOPPED to how it ended ("exit N" or "SIGKILL").
# (Not called as $(...): a subshell cannot wait for this shell's children.)
stop_pid() {
  local pid=$1 i rc=0
  if alive "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
      alive "$pid" || break
      sleep 0.1
    done
    if alive "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      STOPPED=SIGKILL
      return 0
    fi
  fi
  wait "$pid" 2>/dev/null || rc=$?
  STOPPED="exit $rc"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in $SERVER_PID $LG_PID; do
    if alive "$pid"; then
      echo "c10k: stopping leftover process $pid" >&2
      stop_pid "$pid"
    fi
  done
  if ((KEEP_LOGS)) || ((rc != 0)); then
    echo "c10k: logs kept in $LOGDIR" >&2
  else
    rm -rf "$LOGDIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Read "Key: value kB" fields of /proc/PID/status into ST_<Key>.
read_status() {
  local k v rest
  ST_Threads=0 ST_VmPTE=0 ST_VmHWM=0
  while read -r k v rest; do
    case $k in
      Threads:) ST_Threads=$v ;;
      VmPTE:) ST_VmPTE=$v ;;
      VmHWM:) ST_VmHWM=$v ;;
    esac
  done < "/proc/$1/status" 2>/dev/null || return 1
}

declare -A R_RPS R_P99 R_THR R_RSS R_KMEM R_ERR R_OK R_NOTE
RC=0

# ---- one run: server MODE against N connections ---------------------------
run_one() {
  local n=$1 mode=$2 bin tag=$2-$1 port='' i line lg_rc=0
  local out=$LOGDIR/$tag.server.out err=$LOGDIR/$tag.server.err
  local lgout=$LOGDIR/$tag.loadgen.out lgerr=$LOGDIR/$tag.loadgen.err
  case $mode in
    threads) bin=$DEMO/echo-threads ;;
    gmp) bin=$DEMO/echo-threads ;;
    epoll) bin=$DEMO/epoll-echo ;;
  esac
  # env execs the server, so $! is the server's own PID.
  if [[ $mode == gmp ]]; then
    env LD_PRELOAD="$LIBGMP" "$bin" 0 >"$out" 2>"$err" &
  else
    env -u LD_PRELOAD "$bin" 0 >"$out" 2>"$err" &
  fi
  SERVER_PID=$!

  for ((i = 0; i < 100; i++)); do
    # (The file may not exist yet: the child creates it.)
    if [[ -s $out ]] && read -r line <"$out" &&
       [[ $line =~ ^listening\ on\ ([0-9]+)$ ]]; then
      port=${BASH_REMATCH[1]}
      break
    fi
    alive "$SERVER_PID" || break
    sleep 0.05
  done
  if [[ -z $port ]]; then
    stop_pid "$SERVER_PID"
    echo "c10k: $mode server did not start ($STOPPED): $(head -c 300 "$err")" >&2
    SERVER_PID=
    R_OK[$n:$mode]=0 R_NOTE[$n:$mode]="server did not start"
    RC=1 KEEP_LOGS=1
    return
  fi

  # loadgen bounds itself (30 s ramp limit + warm-up + duration); timeout
  # is the backstop should it not.
  local limit
  limit=$(awk -v w="$WARMUP" -v d="$DURATION" 'BEGIN { printf "%d", 30 + w + d + 20 }')
  timeout -k 5 "$limit" "$DEMO/loadgen" --port "$port" --conns "$n" \
    --size "$SIZE" --duration "$DURATION" --warmup "$WARMUP" \
    >"$lgout" 2>"$lgerr" &
  LG_PID=$!

  local max_thr=0 max_pte=0 hwm=0 server_died=0
  while alive "$LG_PID"; do
    if read_status "$SERVER_PID"; then
      if ((ST_Threads > max_thr)); then max_thr=$ST_Threads; fi
      if ((ST_VmPTE > max_pte)); then max_pte=$ST_VmPTE; fi
      hwm=$ST_VmHWM
    fi
    sleep 0.2
  done
  wait "$LG_PID" || lg_rc=$?
  LG_PID=
  if alive "$SERVER_PID" && read_status "$SERVER_PID"; then
    if ((ST_Threads > max_thr)); then max_thr=$ST_Threads; fi
    if ((ST_VmPTE > max_pte)); then max_pte=$ST_VmPTE; fi
    hwm=$ST_VmHWM
  else
    server_died=1
  fi
  stop_pid "$SERVER_PID"
  local how=$STOPPED
  SERVER_PID=

  line=$(grep -m1 '^conns=' "$lgout" || true)
  local note=
  if ((server_died)); then
    note="server died during the run ($how)"
  elif [[ $how == SIGKILL ]]; then
    note="server ignored SIGTERM for 5 s, SIGKILLed"
  elif [[ $how != "exit 0" ]]; then
    note="server $how after SIGTERM"
  fi
  if ((lg_rc == 124 || lg_rc == 137)); then
    note="${note:+$note; }loadgen timed out"
  fi
  if [[ -z $line ]]; then
    R_OK[$n:$mode]=0 R_NOTE[$n:$mode]="${note:-loadgen printed no result (exit $lg_rc)}"
    RC=1 KEEP_LOGS=1
    return
  fi
  local kv conns=0 connected=0 req_per_s=0 p99_us=0 errors=0 verify_errors=0
  for kv in $line; do
    case ${kv%%=*} in
      conns) conns=${kv#*=} ;;
      connected) connected=${kv#*=} ;;
      req_per_s) req_per_s=${kv#*=} ;;
      p99_us) p99_us=${kv#*=} ;;
      errors) errors=${kv#*=} ;;
      verify_errors) verify_errors=${kv#*=} ;;
    esac
  done
  R_OK[$n:$mode]=1
  R_RPS[$n:$mode]=$req_per_s
  R_P99[$n:$mode]=$(awk -v u="$p99_us" 'BEGIN { printf "%.2f", u / 1000 }')
  R_THR[$n:$mode]=$max_thr
  R_RSS[$n:$mode]=$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k / 1024 }')
  R_KMEM[$n:$mode]=$(awk -v p="$max_pte" -v t="$max_thr" -v s="$KSTACK_KIB" \
                       'BEGIN { printf "%.1f", (p + t * s) / 1024 }')
  # Every connection that did not work: never connected, lost, or garbled.
  R_ERR[$n:$mode]=$((conns - connected + errors + verify_errors))
  if ((lg_rc != 0)) || [[ -n $note ]]; then
    R_NOTE[$n:$mode]="${note:-loadgen exit $lg_rc: $(grep -v '^loadgen: ramp' "$lgerr" | tail -n 2 | tr '\n' ' ')}"
    RC=1 KEEP_LOGS=1
  fi
}

# ---- the runs ----------------------------------------------------------------
echo "C10K echo demo: $(nproc) CPUs, $(uname -sr), $SIZE-byte requests," \
     "${WARMUP} s warm-up + ${DURATION} s measured per run, open files limit $nofile"
if [[ " $SERVERS " == *" gmp "* ]]; then
  # /bin/true, not the shell builtin: a builtin never loads libgmp.
  echo "libgmp: $(env GMP_VERBOSE=1 LD_PRELOAD="$LIBGMP" /bin/true 2>&1 | head -n 1)"
fi
RUN_CONNS=
for n in $CONNS; do
  need=$((n + FD_MARGIN))
  if ((need > nofile)); then
    echo "c10k: skipping CONNS=$n: every connection is one descriptor in the server and one in loadgen (separate processes), so each needs $n + $FD_MARGIN = $need open files, but the hard limit (ulimit -Hn) is $nofile; only root can raise it (/etc/security/limits.conf, LimitNOFILE=)" >&2
    RC=1
    continue
  fi
  if [[ " $SERVERS " == *" threads "* ]]; then
    maxproc=$(ulimit -u)
    tmax=$(cat /proc/sys/kernel/threads-max)
    pmax=$(cat /proc/sys/kernel/pid_max)
    for lim in "ulimit -u:$maxproc" "kernel.threads-max:$tmax" "kernel.pid_max:$pmax"; do
      v=${lim##*:}
      if [[ $v != unlimited ]] && ((n + 16 > v)); then
        echo "c10k: warning: the native thread server needs $n threads at $n connections, but ${lim%:*} is $v" >&2
      fi
    done
  fi
  RUN_CONNS+=" $n"
  for mode in $SERVERS; do
    echo "  running: $n connections, $mode ..." >&2
    run_one "$n" "$mode"
  done
done

# ---- the table ---------------------------------------------------------------
echo
fmt='%6s  %-8s %10s %9s %8s %9s %10s %7s\n'
# shellcheck disable=SC2059
printf "$fmt" conns server req/s 'p99(ms)' threads 'rss(MiB)' 'kmem(MiB)' errors
for n in $RUN_CONNS; do
  for mode in $SERVERS; do
    k=$n:$mode
    if [[ ${R_OK[$k]:-0} == 1 ]]; then
      # shellcheck disable=SC2059
      printf "$fmt" "$n" "$mode" "${R_RPS[$k]}" "${R_P99[$k]}" "${R_THR[$k]}" \
        "${R_RSS[$k]}" "${R_KMEM[$k]}" "${R_ERR[$k]}"
    else
      # shellcheck disable=SC2059
      printf "$fmt" "$n" "$mode" FAIL - - - - -
    fi
  done
done

# libgmp against the same server on native threads.
if [[ " $SERVERS " == *" gmp "* && " $SERVERS " == *" threads "* ]]; then
  echo
  for n in $RUN_CONNS; do
    if [[ ${R_OK[$n:gmp]:-0} == 1 && ${R_OK[$n:threads]:-0} == 1 ]]; then
      awk -v n="$n" \
          -v gr="${R_RPS[$n:gmp]}" -v nr="${R_RPS[$n:threads]}" \
          -v gp="${R_P99[$n:gmp]}" -v np="${R_P99[$n:threads]}" \
          -v gm="$(awk -v a="${R_RSS[$n:gmp]}" -v b="${R_KMEM[$n:gmp]}" 'BEGIN { print a + b }')" \
          -v nm="$(awk -v a="${R_RSS[$n:threads]}" -v b="${R_KMEM[$n:threads]}" 'BEGIN { print a + b }')" '
        function r(a, b) { return b > 0 ? sprintf("%.2fx", a / b) : "n/a" }
        BEGIN {
          printf "%6d conns, libgmp/native: req/s %s, p99 %s, rss+kmem %s\n",
                 n, r(gr, nr), r(gp, np), r(gm, nm)
        }'
    else
      echo "$(printf '%6d' "$n") conns, libgmp/native: n/a (a run failed)"
    fi
  done
fi

# What went wrong, if anything.
for n in $RUN_CONNS; do
  for mode in $SERVERS; do
    if [[ -n ${R_NOTE[$n:$mode]:-} ]]; then
      echo "note: $n $mode: ${R_NOTE[$n:$mode]}"
    fi
  done
done
echo "(threads: max OS threads of the server; rss: its peak RSS (VmHWM); kmem: page tables (VmPTE) + threads x ${KSTACK_KIB} KiB kernel stack; errors: connections that failed to connect, were lost, or echoed wrong bytes)"

# Nothing this script started may outlive it (the EXIT trap also makes
# sure of it on failure or interrupt).
for pid in $SERVER_PID $LG_PID; do
  if alive "$pid"; then
    echo "c10k: process $pid still running" >&2
    RC=1
  fi
done
exit "$RC"
