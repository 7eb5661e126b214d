#!/usr/bin/env bash
# Scheduler observability on a program of known shape, as a user would
# look at it: 1,000 threads waiting on a condvar (in a static function),
# 100 blocked in read() on sockets, 8 spinning, main in sleep(3).
#  - gmp-schedtrace --goroutines PID: exactly those counts and wait
#    reasons, wait durations, the program's own (static) function names in
#    the backtraces and as start functions;
#  - GMP_DEBUG=dumpsignal=SIGQUIT: kill -QUIT prints the same dump on
#    stderr and the program carries on to a normal exit;
#  - gmp-schedtrace --top: per-P rows and rates;
#  - GMP_TRACE: a Chrome trace file that tools/gmp-tracecheck accepts, with
#    run slices on every P track and create/unpark events;
#  - a quiescent point (1 P, no preemption, main spinning behind 5
#    runnable threads): the SCHED line's run queues add up to the
#    runnable threads the detail lines list.
# Usage: goroutines.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=${2:-$(dirname "$0")/../..}
lib=$build/libgmp.so
dump=$build/gmp-schedtrace
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

cat > "$tmp/shape.c" <<'C'
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;
static atomic_int stop;
static int sv[100][2];
__attribute__((noinline)) static void wait_for_go(void)
{ pthread_mutex_lock(&mu); while (!go) pthread_cond_wait(&cv, &mu); pthread_mutex_unlock(&mu); }
static void *cond_waiter(void *a) { wait_for_go(); return a; }
__attribute__((noinline)) static void read_until_eof(int fd) { char c; while (read(fd, &c, 1) > 0) ; }
static void *sock_reader(void *a) { read_until_eof(sv[(long)a][0]); return a; }
static void *spinner(void *a) { while (!atomic_load(&stop)) ; return a; }
int main(void) {
  pthread_t w[1000], r[100], sp[8];
  for (int i = 0; i < 1000; i++) pthread_create(&w[i], 0, cond_waiter, 0);
  for (long i = 0; i < 100; i++) {
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) return 1;
    pthread_create(&r[i], 0, sock_reader, (void *)i);
  }
  for (int i = 0; i < 8; i++) pthread_create(&sp[i], 0, spinner, 0);
  sleep(3);
  pthread_mutex_lock(&mu); go = 1; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
  atomic_store(&stop, 1);
  for (int i = 0; i < 100; i++) close(sv[i][1]);
  for (int i = 0; i < 1000; i++) pthread_join(w[i], 0);
  for (int i = 0; i < 100; i++) pthread_join(r[i], 0);
  for (int i = 0; i < 8; i++) pthread_join(sp[i], 0);
  puts("done");
  return 0;
}
C
cc -O2 -g -pthread "$tmp/shape.c" -o "$tmp/shape" || exit 1

# --goroutines and --top on the running program.
GMP_MAXPROCS=2 LD_PRELOAD=$lib "$tmp/shape" > "$tmp/out" 2> "$tmp/err" &
pid=$!; pids+=("$pid")
sleep 1.2
"$dump" --goroutines "$pid" > "$tmp/g" 2> "$tmp/gerr"; rc=$?
"$dump" --top --count 2 --interval 200 "$pid" > "$tmp/top" 2>&1
wait "$pid"; prc=$?
check "program runs normally under the dumper (exit $prc)" "[ $prc -eq 0 ] && grep -qx done '$tmp/out'"
check "--goroutines exits 0 (rc $rc)" "[ $rc -eq 0 ]"
sum=$(grep '^summary:' "$tmp/g")
echo "  $sum"
check "summary: 1109 threads" "echo '$sum' | grep -q '^summary: 1109 threads'"
check "summary: 1000 waiting on the condvar, 100 in IO wait, main asleep" \
  "echo '$sum' | grep -q '(cond 1000, sleep 1, IO wait 100)'"
run=$(( $(echo "$sum" | sed -E 's/.*: ([0-9]+) running, ([0-9]+) in system calls, ([0-9]+) runnable.*/\1+\2+\3/') ))
check "summary: the 8 spinners are running or runnable (saw $run)" "[ '$run' = 8 ]"
c=$(grep -c '^goroutine [0-9]* \[cond, [0-9]* ms, on 0x' "$tmp/g")
check "1000 goroutine headers say cond with the condvar's address (saw $c)" "[ $c -eq 1000 ]"
c=$(grep -c '^goroutine [0-9]* \[IO wait, [0-9]* ms, read fd [0-9]*\]' "$tmp/g")
check "100 say IO wait, read, with their fd (saw $c)" "[ $c -eq 100 ]"
w=$(grep -o '^goroutine 2 \[cond, [0-9]* ms' "$tmp/g" | grep -o '[0-9]* ms' | cut -d' ' -f1)
check "wait duration of an early waiter is plausible (${w:-?} ms of ~1200)" "[ '${w:-0}' -ge 500 ] && [ '${w:-0}' -le 3000 ]"
c=$(grep -c 'wait_for_go+0x[0-9a-f]* (shape)' "$tmp/g")
check "backtraces name the program's static function wait_for_go (saw $c)" "[ $c -eq 1000 ]"
c=$(grep -c 'read_until_eof+0x[0-9a-f]* (shape)' "$tmp/g")
check "backtraces name read_until_eof under read (saw $c)" "[ $c -eq 100 ]"
c=$(grep -c 'started by cond_waiter at 0x' "$tmp/g")
check "start function named (static cond_waiter: $c)" "[ $c -eq 1000 ]"
check "main's backtrace reaches main" "grep -A12 '^goroutine 1 \[sleep' '$tmp/g' | grep -q ' main+0x'"
check "--top prints a row per P and rates" \
  "grep -q 'switch/s' '$tmp/top' && [ \$(grep -cE '^ +[01] (running|idle|syscall) ' '$tmp/top') -ge 2 ]"

# A thread blocked in a system call is named with it.
cat > "$tmp/waiter.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
static void *w(void *a) { pid_t p = fork(); if (p == 0) { sleep(2); _exit(0); } int st; waitpid(p, &st, 0); return a; }
int main(void) { pthread_t t; pthread_create(&t, 0, w, 0); pthread_join(t, 0); puts("done"); return 0; }
C
cc -O2 -pthread "$tmp/waiter.c" -o "$tmp/waiter" || exit 1
LD_PRELOAD=$lib "$tmp/waiter" > /dev/null 2>&1 &
pid=$!; pids+=("$pid")
sleep 0.6
"$dump" --goroutines "$pid" > "$tmp/gw" 2>&1
"$dump" --detail --count 1 "$pid" > "$tmp/dw" 2>&1
wait "$pid"
check "a thread in waitpid: [syscall waitpid] in the dump and status=3(syscall waitpid) in --detail" \
  "grep -q '^goroutine 2 \[syscall waitpid, M' '$tmp/gw' && grep -q 'G2: status=3(syscall waitpid)' '$tmp/dw'"

# A process of another user: a clear error, not a hang or a crash.
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
  setpriv --reuid=65534 --regid=65534 --clear-groups env LD_PRELOAD=$lib sleep 3 2>/dev/null &
  other=$!; pids+=("$other")
  sleep 0.3
  "$dump" --goroutines "$other" > /dev/null 2> "$tmp/uerr"; rc=$?
  kill "$other" 2>/dev/null; wait "$other" 2>/dev/null
  check "a process of another user: exit 1 and says whose it is" \
    "[ $rc -eq 1 ] && grep -q 'belongs to user 65534' '$tmp/uerr'"
fi

# The dump signal.
GMP_DEBUG=dumpsignal=SIGQUIT LD_PRELOAD=$lib "$tmp/shape" > "$tmp/out2" 2> "$tmp/err2" &
pid=$!; pids+=("$pid")
sleep 1.2
kill -QUIT "$pid"
wait "$pid"; prc=$?
check "dumpsignal: SIGQUIT dumps instead of killing (exit $prc)" \
  "[ $prc -eq 0 ] && grep -qx done '$tmp/out2'"
check "dumpsignal: the dump is on stderr with its summary" \
  "grep -q '^libgmp: goroutine dump' '$tmp/err2' && grep -q '^summary: 1109 threads.*cond 1000' '$tmp/err2'"
check "dumpsignal: in-process names include static functions" "grep -q 'wait_for_go+0x' '$tmp/err2'"
GMP_DEBUG=dumpsignal=SIGKILL LD_PRELOAD=$lib /bin/true 2> "$tmp/err3"
check "dumpsignal=SIGKILL refused in one clear line" \
  "[ \$(wc -l < '$tmp/err3') -eq 1 ] && grep -q \"dumpsignal='SIGKILL' is invalid\" '$tmp/err3'"

# GMP_TRACE: a Chrome trace-event file.
GMP_TRACE=$tmp/trace.json GMP_MAXPROCS=2 LD_PRELOAD=$lib "$tmp/shape" > /dev/null 2>&1
python3 "$src/tools/gmp-tracecheck" --runs-disjoint --require create,unpark "$tmp/trace.json" > "$tmp/tc" 2>&1; rc=$?
check "GMP_TRACE file is a valid Chrome trace, run slices disjoint (gmp-tracecheck rc $rc)" "[ $rc -eq 0 ]"
check "GMP_TRACE: run slices on both P tracks" \
  "python3 -c \"
import json,sys
ev=json.load(open('$tmp/trace.json'))['traceEvents']
runs=[e for e in ev if e.get('cat')=='run']
sys.exit(0 if {0,1} <= {e['tid'] for e in runs} and len(runs) >= 1109 else 1)\""

# A process that ends in _exit, or dies of a fault, still leaves a
# complete trace (normally written by an atexit handler).
cat > "$tmp/abrupt.c" <<'C'
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
static void *f(void *a) { usleep(1000); return a; }
int main(int argc, char **argv) {
  pthread_t t[8];
  for (int i = 0; i < 8; i++) pthread_create(&t[i], 0, f, 0);
  for (int i = 0; i < 8; i++) pthread_join(t[i], 0);
  if (argc > 1 && strcmp(argv[1], "segv") == 0)
    *(volatile int *)8 = 1;
  _exit(3);
}
C
cc -O2 -pthread "$tmp/abrupt.c" -o "$tmp/abrupt" || exit 1
GMP_TRACE=$tmp/t_exit.json LD_PRELOAD=$lib "$tmp/abrupt" > /dev/null 2>&1; xrc=$?
python3 "$src/tools/gmp-tracecheck" --require create,unpark "$tmp/t_exit.json" > "$tmp/tc2" 2>&1; rc=$?
check "GMP_TRACE after _exit(3): exit status kept ($xrc), trace valid (rc $rc)" "[ $xrc -eq 3 ] && [ $rc -eq 0 ]"
# (through an inner shell, which reports the crash to /dev/null, not here)
bash -c 'GMP_TRACE="$2" LD_PRELOAD="$3" "$1" segv; exit $?' _ "$tmp/abrupt" \
  "$tmp/t_segv.json" "$lib" > /dev/null 2>&1; xrc=$?
python3 "$src/tools/gmp-tracecheck" --require create "$tmp/t_segv.json" > "$tmp/tc3" 2>&1; rc=$?
check "GMP_TRACE after SIGSEGV: still dies of it ($xrc), trace valid (rc $rc)" "[ $xrc -eq 139 ] && [ $rc -eq 0 ]"

# Ps taken from threads blocked in the kernel, inside a wrapper (waitpid)
# and outside any (a raw syscall instruction), while others keep the Ps
# busy: each P's run slices must still not overlap.
cat > "$tmp/handoff.c" <<'C'
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static atomic_int stop;
static void *busy(void *a) {
  volatile unsigned long x = 0;
  while (!atomic_load(&stop)) { for (int i = 0; i < 20000; i++) x += i; sched_yield(); }
  return a;
}
static void *raw_sleep(void *a) {
  struct timespec ts = {0, 150000000};
  long r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(SYS_nanosleep), "D"(&ts), "S"(0) : "rcx", "r11", "memory");
  return a;
}
static void *wait_child(void *a) {
  pid_t c = fork();
  if (c == 0) { usleep(150000); _exit(0); }
  waitpid(c, 0, 0);
  return a;
}
int main(void) {
  pthread_t b[4], r, w;
  for (int i = 0; i < 4; i++) pthread_create(&b[i], 0, busy, 0);
  for (int k = 0; k < 2; k++) {
    pthread_create(&r, 0, raw_sleep, 0);
    pthread_create(&w, 0, wait_child, 0);
    pthread_join(r, 0);
    pthread_join(w, 0);
  }
  atomic_store(&stop, 1);
  for (int i = 0; i < 4; i++) pthread_join(b[i], 0);
  return 0;
}
C
cc -O2 -pthread "$tmp/handoff.c" -o "$tmp/handoff" || exit 1
GMP_TRACE=$tmp/t_hand.json GMP_MAXPROCS=2 GMP_DEBUG=stats=1 LD_PRELOAD=$lib "$tmp/handoff" > /dev/null 2> "$tmp/hand.err"; xrc=$?
python3 "$src/tools/gmp-tracecheck" --runs-disjoint "$tmp/t_hand.json" > "$tmp/tc4" 2>&1; rc=$?
nh=$(sed -n 's/.*P hand-offs (blocked Ms) *//p' "$tmp/hand.err")
check "GMP_TRACE with Ps handed off (${nh:-?} hand-offs): run slices of a P disjoint (rc $rc)" \
  "[ $xrc -eq 0 ] && [ $rc -eq 0 ] && [ \"\${nh:-0}\" -ge 2 ]"

# A quiescent point: 1 P, preemption off, main spins with 5 threads queued.
cat > "$tmp/queued.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <time.h>
static void *f(void *a) { return a; }
int main(void) {
  pthread_t t[5];
  for (int i = 0; i < 5; i++) pthread_create(&t[i], 0, f, 0);
  struct timespec a, b; clock_gettime(CLOCK_MONOTONIC, &a);
  do clock_gettime(CLOCK_MONOTONIC, &b); while ((b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000 < 600);
  for (int i = 0; i < 5; i++) pthread_join(t[i], 0);
  puts("done");
  return 0;
}
C
cc -O2 -pthread "$tmp/queued.c" -o "$tmp/queued" || exit 1
GMP_MAXPROCS=1 GMP_DEBUG=schedtrace=200,scheddetail=1,asyncpreemptoff=1 LD_PRELOAD=$lib "$tmp/queued" > /dev/null 2> "$tmp/q"
awk '/^SCHED/{n++} n==1' "$tmp/q" > "$tmp/q1"
rq=$(( $(head -1 "$tmp/q1" | sed -E 's/.*runqueue=([0-9]+) \[(.*)\]/\1 \2/' | tr ' ' '+') ))
nr=$(grep -c 'status=1(' "$tmp/q1")
check "quiescent point: run queues ($rq) = runnable threads listed ($nr) = 5" "[ '$rq' = 5 ] && [ '$nr' = 5 ]"

[ $fails -eq 0 ] && echo "goroutines: all checks passed" || echo "goroutines: $fails check(s) failed"
exit $((fails != 0))
