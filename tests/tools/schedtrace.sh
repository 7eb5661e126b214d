#!/usr/bin/env bash
# GMP_DEBUG=schedtrace/scheddetail/stats on a program of known shape: 50
# threads in pthread_cond_wait, 10 in sleep(1), 2 spinning. Checks that
# every SCHED line parses with the format of Go's schedtrace, that the
# first detailed snapshot shows exactly those wait reasons, that the
# counters are consistent (idle Ps + busy Ps = gomaxprocs; one runq size
# per P), that GMP_TRACEFILE redirects it, and that stats=1 prints its
# table at exit. Usage: schedtrace.sh BUILD_DIR
set -u
lib=$1/libgmp.so
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

cat > "$tmp/shape.c" <<'C'
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go;
static atomic_int stop;
static void *waiter(void *a) { pthread_mutex_lock(&mu); while (!go) pthread_cond_wait(&cv, &mu); pthread_mutex_unlock(&mu); return a; }
static void *sleeper(void *a) { sleep(1); return a; }
static void *spinner(void *a) { while (!atomic_load(&stop)) ; return a; }
int main(void) {
  pthread_t w[50], s[10], sp[2];
  for (int i = 0; i < 50; i++) pthread_create(&w[i], 0, waiter, 0);
  for (int i = 0; i < 10; i++) pthread_create(&s[i], 0, sleeper, 0);
  for (int i = 0; i < 2; i++) pthread_create(&sp[i], 0, spinner, 0);
  usleep(600000);
  pthread_mutex_lock(&mu); go = 1; pthread_cond_broadcast(&cv); pthread_mutex_unlock(&mu);
  atomic_store(&stop, 1);
  for (int i = 0; i < 50; i++) pthread_join(w[i], 0);
  for (int i = 0; i < 10; i++) pthread_join(s[i], 0);
  for (int i = 0; i < 2; i++) pthread_join(sp[i], 0);
  puts("done");
  return 0;
}
C
cc -O2 -pthread "$tmp/shape.c" -o "$tmp/shape" || exit 1

GMP_DEBUG=schedtrace=200,scheddetail=1,stats=1 LD_PRELOAD=$lib "$tmp/shape" > "$tmp/out" 2> "$tmp/err"
check "program runs normally" "grep -qx done '$tmp/out'"
re='^SCHED [0-9]+ms: gomaxprocs=[0-9]+ idleprocs=[0-9]+ threads=[0-9]+ spinningthreads=[0-9]+ needspinning=[0-9]+ idlethreads=[0-9]+ runqueue=[0-9]+ \[[0-9]+( [0-9]+)*\]$'
n=$(grep -c '^SCHED' "$tmp/err")
check "SCHED lines printed ($n)" "[ $n -ge 2 ]"
check "every SCHED line has Go's format" "[ \$(grep '^SCHED' '$tmp/err' | grep -cvE '$re') -eq 0 ]"
# The first snapshot (taken at ~200 ms, while the shape holds).
awk '/^SCHED/{n++} n==1' "$tmp/err" > "$tmp/first"
c=$(grep -c 'status=4(cond)' "$tmp/first"); s=$(grep -c 'status=4(sleep)' "$tmp/first")
check "first snapshot: 50 threads waiting on the condvar (saw $c)" "[ $c -eq 50 ]"
check "first snapshot: 11 threads sleeping, main in usleep included (saw $s)" "[ $s -eq 11 ]"
r=$(grep -cE 'G[0-9]+: status=(1|2)\(' "$tmp/first")
check "first snapshot: the 2 spinners are running or runnable (saw $r)" "[ $r -ge 2 ]"
check "first snapshot: one P line per P" "[ \$(grep -c '^  P[0-9]*: status=' '$tmp/first') -eq 2 ]"
check "stats=1 prints the exit table" "grep -q 'threads created (Gs) *63' '$tmp/err'"

GMP_TRACEFILE=$tmp/trace.log GMP_DEBUG=schedtrace=200 LD_PRELOAD=$lib "$tmp/shape" > /dev/null 2> "$tmp/err2"
check "GMP_TRACEFILE receives the trace, stderr does not" \
  "grep -qE '$re' '$tmp/trace.log' && ! grep -q '^SCHED' '$tmp/err2'"

# The dumper attaches to the running program through its control socket.
dump=$(dirname "$lib")/gmp-schedtrace
LD_PRELOAD=$lib "$tmp/shape" > /dev/null 2>&1 &
pid=$!
sleep 0.3
"$dump" --detail --count 1 "$pid" > "$tmp/dump" 2>&1
check "gmp-schedtrace PID: a SCHED line in Go's format" "head -1 '$tmp/dump' | grep -qE '$re'"
c=$(grep -c 'status=4(cond)' "$tmp/dump")
check "gmp-schedtrace --detail: the 50 condvar waiters (saw $c)" "[ $c -eq 50 ]"
"$dump" --count 2 --interval 100 "$pid" > "$tmp/dump2" 2>&1
check "gmp-schedtrace --count 2: two reports" "[ \$(grep -c '^SCHED' '$tmp/dump2') -eq 2 ]"
wait "$pid"
check "the control socket is removed at exit" "[ ! -e /tmp/gmp-\$(id -u)/$pid.sock ]"
sleep 2 &
other=$!
"$dump" "$other" > /dev/null 2> "$tmp/err3"; rc=$?
kill "$other" 2>/dev/null; wait "$other" 2>/dev/null
check "gmp-schedtrace on a process without libgmp: clear error, exit 1" \
  "[ $rc -eq 1 ] && grep -q 'does not run libgmp' '$tmp/err3'"

[ $fails -eq 0 ] && echo "schedtrace: all checks passed" || echo "schedtrace: $fails check(s) failed"
exit $((fails != 0))
