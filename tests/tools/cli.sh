#!/usr/bin/env bash
# Checks of what a user sees around the runtime: configuration errors,
# fail-safe switches, the verbose banner, the gmp-run launcher, and the
# installed layout. Usage: cli.sh BUILD_DIR SOURCE_DIR
set -u
build=$1
src=$2
lib=$build/libgmp.so
prog=$build/tests/integration/barrier_once_spin   # any ordinary threaded program
fails=0
ok()   { echo "PASS $1"; }
bad()  { echo "FAIL $1"; fails=$((fails + 1)); }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$prog" > "$tmp/native.out" 2>&1 || bad "native run of $prog"

# A bad value: one line naming the variable and the accepted values, the
# default used, the program unaffected.
GMP_MAXPROCS=abc LD_PRELOAD=$lib "$prog" > "$tmp/out" 2> "$tmp/err"
check "bad GMP_MAXPROCS: program output unchanged" "cmp -s '$tmp/out' '$tmp/native.out'"
check "bad GMP_MAXPROCS: exactly one stderr line" "[ \$(wc -l < '$tmp/err') -eq 1 ]"
check "bad GMP_MAXPROCS: the line names the variable and the range" \
  "grep -q \"GMP_MAXPROCS='abc' is invalid (want an integer in 1..1024)\" '$tmp/err'"
GMP_STACK_SIZE=12Q LD_PRELOAD=$lib "$prog" > "$tmp/out" 2> "$tmp/err"
check "bad GMP_STACK_SIZE: one line, program unchanged" \
  "[ \$(wc -l < '$tmp/err') -eq 1 ] && grep -q GMP_STACK_SIZE '$tmp/err' && cmp -s '$tmp/out' '$tmp/native.out'"
GMP_DEBUG=nosuchkey=1 LD_PRELOAD=$lib "$prog" > "$tmp/out" 2> "$tmp/err"
check "unknown GMP_DEBUG key: one line, program unchanged" \
  "[ \$(wc -l < '$tmp/err') -eq 1 ] && grep -q nosuchkey '$tmp/err' && cmp -s '$tmp/out' '$tmp/native.out'"

# Without asynchronous preemption, an event loop that polls with a zero
# timeout still gives way when its calls return (it starved the rest).
starve=$build/tests/integration/poll_loop_starve
GMP_MAXPROCS=2 GMP_DEBUG=asyncpreemptoff=1 timeout -s KILL 30 env LD_PRELOAD=$lib "$starve" \
  > "$tmp/out" 2> "$tmp/err"
check "asyncpreemptoff=1: zero-timeout poll loops do not starve a sleeper" \
  "grep -q 'under 60 ms' '$tmp/out'"

# The banner proves the preload took effect; GMP_DISABLE passes through.
GMP_VERBOSE=1 GMP_MAXPROCS=3 LD_PRELOAD=$lib "$prog" > "$tmp/out" 2> "$tmp/err"
check "GMP_VERBOSE=1 prints the banner with the settings" "grep -q '^libgmp 0.1.0: on; GMP_MAXPROCS=3' '$tmp/err'"
GMP_DISABLE=1 GMP_VERBOSE=1 LD_PRELOAD=$lib "$prog" > "$tmp/out" 2> "$tmp/err"
check "GMP_DISABLE=1: no banner, program unchanged" \
  "! grep -q 'libgmp 0.1.0: on' '$tmp/err' && cmp -s '$tmp/out' '$tmp/native.out'"

# Threads are Gs: 200 threads alive at once on GMP_MAXPROCS + 2 OS threads.
cat > "$tmp/alive.c" <<'C'
#include <pthread.h>
#include <stdio.h>
#include <string.h>
static pthread_barrier_t b;
static void *f(void *a) { pthread_barrier_wait(&b); pthread_barrier_wait(&b); return a; }
int main(void) {
  pthread_t t[200]; pthread_barrier_init(&b, NULL, 201);
  for (int i = 0; i < 200; i++) pthread_create(&t[i], NULL, f, NULL);
  pthread_barrier_wait(&b);
  char line[256]; int n = -1; FILE *s = fopen("/proc/self/status", "r");
  while (fgets(line, sizeof line, s)) if (!strncmp(line, "Threads:", 8)) n = atoi(line + 8);
  fclose(s);
  pthread_barrier_wait(&b);
  for (int i = 0; i < 200; i++) pthread_join(t[i], NULL);
  printf("%d\n", n); return 0;
}
C
sed -i '1i #include <stdlib.h>' "$tmp/alive.c"
cc -O2 -pthread "$tmp/alive.c" -o "$tmp/alive"
n=$(GMP_MAXPROCS=2 LD_PRELOAD=$lib "$tmp/alive")
check "200 threads alive on $n OS threads (<= GMP_MAXPROCS + 2 = 4)" "[ '$n' -le 4 ]"

# A crash names the thread; a stack overflow says so; the process still
# dies of SIGSEGV as natively.
cat > "$tmp/so.c" <<'C'
#include <pthread.h>
static int deep(int n) { volatile char buf[1024]; buf[0] = (char)n; return n ? deep(n - 1) + buf[0] : 0; }
static void *overflow_here(void *a) { return (void *)(long)deep(1 << 20); }
int main(void) {
  pthread_attr_t at; pthread_attr_init(&at); pthread_attr_setstacksize(&at, 256 * 1024);
  pthread_t t; pthread_create(&t, &at, overflow_here, 0); pthread_join(t, 0); return 0;
}
C
cc -O0 -pthread "$tmp/so.c" -o "$tmp/so"
(ulimit -c 0; LD_PRELOAD=$lib "$tmp/so" 2> "$tmp/err"); rc=$?
check "stack overflow in a thread: dies of SIGSEGV (exit $rc)" "[ $rc -eq 139 ]"
check "stack overflow: the report names the thread and the overflow" \
  "grep -q 'fatal signal SIGSEGV in thread G2 .*stack overflow' '$tmp/err'"
check "stack overflow: the report has a backtrace through the recursion" \
  "grep -q 'backtrace' '$tmp/err' && [ \$(grep -c ' deep+' '$tmp/err') -ge 3 ]"

# A SIGSEGV sent with raise (as test suites do to crash a worker) is no
# fault: the report names the sender, not a "fault address" that is its pid.
cat > "$tmp/rs.c" <<'C'
#include <signal.h>
int main(void) { raise(SIGSEGV); return 0; }
C
cc -O2 "$tmp/rs.c" -o "$tmp/rs"
(ulimit -c 0; LD_PRELOAD=$lib "$tmp/rs" 2> "$tmp/err"); rc=$?
check "raise(SIGSEGV): dies of SIGSEGV (exit $rc)" "[ $rc -eq 139 ]"
check "raise(SIGSEGV): the report says who sent it, no fault address" \
  "grep -q 'fatal signal SIGSEGV in thread G1 .*sent by process [0-9]' '$tmp/err' && ! grep -q 'fault address' '$tmp/err'"

# gmp-run: help, preload, refusals.
run=$build/gmp-run
check "gmp-run --help documents every knob" \
  "$run --help | grep -q GMP_MAXPROCS && $run --help | grep -q GMP_STACK_SIZE && $run --help | grep -q GMP_DEBUG && $run --help | grep -q GMP_DISABLE"
out=$($run --lib "$lib" --maxprocs 2 --verbose -- "$prog" 2>&1 >/dev/null)
check "gmp-run preloads the library" "echo \"\$out\" | grep -q 'libgmp 0.1.0: on; GMP_MAXPROCS=2'"
$run --lib "$lib" --maxprocs 0 -- /bin/true 2> "$tmp/err"; rc=$?
check "gmp-run rejects --maxprocs 0 with exit 2 and one line" "[ $rc -eq 2 ] && [ \$(wc -l < '$tmp/err') -eq 1 ]"
if [ -x /sbin/ldconfig ] && ! readelf -l /sbin/ldconfig 2>/dev/null | grep -q INTERP; then
  $run --lib "$lib" -- /sbin/ldconfig --version > /dev/null 2> "$tmp/err"; rc=$?
  check "gmp-run refuses a static binary (exit 126, says why)" "[ $rc -eq 126 ] && grep -q 'statically linked' '$tmp/err'"
fi

# Installed layout: a private libdir, and a SONAME that is not GNU MP's.
cmake --install "$build" --prefix "$tmp/prefix" > /dev/null
so=$(ls "$tmp"/prefix/lib*/gmp-sched/libgmp.so 2>/dev/null | head -1)
check "install puts libgmp.so in <prefix>/lib/gmp-sched/" "[ -n '$so' ]"
check "SONAME is libgmp-sched.so.0, not libgmp.so.N" "readelf -d '$so' | grep -q 'SONAME.*\\[libgmp-sched.so.0\\]'"
check "gmp-run and gmp-schedtrace are installed" "[ -x '$tmp/prefix/bin/gmp-run' ] && [ -x '$tmp/prefix/bin/gmp-schedtrace' ]"

[ $fails -eq 0 ] && echo "cli: all checks passed" || echo "cli: $fails check(s) failed"
exit $((fails != 0))
