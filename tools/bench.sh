#!/usr/bin/env bash
# tools/bench.sh [BUILD_DIR]    (default ./build)
#
# Runs the benchmark programs of tests/bench three ways, interleaved, in one
# go: natively, under LD_PRELOAD=BUILD_DIR/libgmp.so, and their Go
# equivalents (tests/bench/go). Each is run REPEATS times and the median is
# reported, as a Markdown table on stdout, also saved to
# BUILD_DIR/bench-results.md. Every run's stdout/stderr is kept in
# BUILD_DIR/bench-logs/.
#
# Environment:
#   REPEATS=3            runs per benchmark and variant (median is reported)
#   BENCH_TIMEOUT=30     seconds before a run is killed (timeout(1))
#   BENCH_ONLY=REGEX     run only the jobs whose name matches (extended regex;
#                        jobs: cj_seq cj_burst pingpong sockpp mutex2 mutex16
#                        mutex1000 sleep syscall wake0 wake4
#   BENCH_SETTLE=0.2     seconds of pause after each run (lets the kernel finish
#                        tearing down the last run's threads)
#   BENCH_NO_GMP=1       run even without libgmp.so (its column shows n/a)
#   GO=/path/to/go       Go toolchain (default: go in PATH, else /usr/lib/go-1.19/bin/go)
#
# The C programs are built by the project's CMake (targets bench_*); this
# script asks CMake to bring them up to date when BUILD_DIR is a CMake tree.
# OS thread counts ("max OS threads" rows) are the max of what each program
# reports from /proc/self/status and of polling /proc/PID/status while it runs.
# Exit status: 0 if every run succeeded, 1 if any failed (crash, timeout, bad
# count: see the Failures section), 2 on a setup error.
set -u -o pipefail

die() { echo "bench.sh: error: $*" >&2; exit 2; }
note() { echo "bench.sh: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD_ARG=${1:-./build}
[ $# -le 1 ] || die "usage: tools/bench.sh [BUILD_DIR]"
[ -d "$BUILD_ARG" ] || die "build directory '$BUILD_ARG' does not exist (cmake -S . -B build && cmake --build build)"
BUILD=$(cd "$BUILD_ARG" && pwd)
REPEATS=${REPEATS:-3}
TIMEOUT=${BENCH_TIMEOUT:-30}
ONLY=${BENCH_ONLY:-}
SETTLE=${BENCH_SETTLE:-0.2}
[[ $REPEATS =~ ^[1-9][0-9]*$ ]] || die "REPEATS must be a positive integer (got '$REPEATS')"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "BENCH_TIMEOUT must be a positive integer (got '$TIMEOUT')"
[[ $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "BENCH_SETTLE must be a number of seconds (got '$SETTLE')"
# shellcheck disable=SC2016 # the quotes are part of the text
COMMAND="REPEATS=$REPEATS BENCH_TIMEOUT=$TIMEOUT${ONLY:+ BENCH_ONLY='$ONLY'}${BENCH_NO_GMP:+ BENCH_NO_GMP=$BENCH_NO_GMP} $0${1:+ $1}"

# ---- libgmp ------------------------------------------------------------------
GMP=$BUILD/libgmp.so
HAVE_GMP=1
if [ ! -f "$GMP" ]; then
	if [ "${BENCH_NO_GMP:-}" = 1 ]; then
		note "WARNING: $GMP missing; BENCH_NO_GMP=1, so the libgmp column is n/a"
		HAVE_GMP=0
	else
		die "$GMP not found: build the runtime first (cmake -S $REPO -B $BUILD && cmake --build $BUILD --target gmp), or set BENCH_NO_GMP=1 to benchmark native and Go only"
	fi
else
	# ld.so only warns, and runs the program natively, when a preload fails
	# to load: that must not pass for a libgmp number.
	out=$(LD_PRELOAD=$GMP /bin/true 2>&1)
	rc=$?
	if grep -q 'cannot be preloaded' <<<"$out"; then
		die "$GMP cannot be preloaded: $out"
	fi
	[ $rc -eq 0 ] || note "WARNING: 'LD_PRELOAD=$GMP /bin/true' exited $rc: $out"
fi

# ---- C benchmark programs -------------------------------------------------------
BENCHBIN=$BUILD/tests/bench
C_PROGS=(create_join cond_pingpong sock_pingpong mutex_contended sleep_storm)
if [ -f "$BUILD/CMakeCache.txt" ]; then
	targets=()
	for p in "${C_PROGS[@]}"; do targets+=("bench_$p"); done
	if ! cmake --build "$BUILD" --target "${targets[@]}" >"$BUILD/bench-build.log" 2>&1; then
		note "WARNING: 'cmake --build $BUILD --target ${targets[*]}' failed (see $BUILD/bench-build.log); using the binaries already there"
	fi
fi
for p in "${C_PROGS[@]}"; do
	[ -x "$BENCHBIN/$p" ] || die "$BENCHBIN/$p missing: cmake --build $BUILD --target bench_$p"
done

# ---- Go ------------------------------------------------------------------------
TMP=$(mktemp -d "${TMPDIR:-/tmp}/gmpbench.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
GOBIN_PATH=$BENCHBIN/gobench
GO=${GO:-$(command -v go || true)}
[ -n "$GO" ] || { [ -x /usr/lib/go-1.19/bin/go ] && GO=/usr/lib/go-1.19/bin/go; }
HAVE_GO=0
GO_NOTE=
if [ -z "$GO" ]; then
	GO_NOTE="Go absent: go column skipped (apt-get install golang-go)"
	echo "$GO_NOTE" >&2
else
	note "building $GOBIN_PATH with $GO"
	if (cd "$REPO/tests/bench/go" && env GOCACHE="$TMP/gocache" GOPATH="$TMP/gopath" \
		GOFLAGS=-mod=mod GOPROXY=off GO111MODULE=on GOTOOLCHAIN=local \
		"$GO" build -o "$GOBIN_PATH" .) >"$TMP/gobuild.log" 2>&1; then
		HAVE_GO=1
		GO_NOTE="Go: $("$GO" version 2>/dev/null), GOMAXPROCS default"
	else
		cat "$TMP/gobuild.log" >&2
		GO_NOTE="Go build FAILED: go column skipped"
		note "WARNING: $GO_NOTE"
	fi
fi

# ---- jobs and table rows --------------------------------------------------------
# job: name | C command (program + args) | Go args | poll OS threads (0/1)
JOBS=(
	"cj_seq|create_join seq 20000|createjoin-seq 20000|0"
	"cj_burst|create_join burst 1000 20|createjoin-burst 1000 20|0"
	"pingpong|cond_pingpong 100000|condpingpong 100000|0"
	"sockpp|sock_pingpong 100000|sockpingpong 100000|0"
	"mutex2|mutex_contended 2 2000000|mutex 2 2000000|1"
	"mutex16|mutex_contended 16 2000000|mutex 16 2000000|1"
	"mutex1000|mutex_contended 1000 2000000|mutex 1000 2000000|1"
	"sleep|sleep_storm 10000 20 1000 64|sleepstorm 10000 20 1000|1"
	"syscall|syscall_read 2000000|readzero 2000000|0"
	"wake0|wakeup_latency 0 500|wakeup 0 500|0"
	"wake4|wakeup_latency 4 300|wakeup 4 300|0"
)
# row: job | RESULT bench | RESULT metric | label
ROWS=(
	"cj_seq|createjoin_seq|per_op|create+join, sequential (20000×), per pair"
	"cj_burst|createjoin_burst|per_thread|create 1000 then join all (20×), per thread"
	"pingpong|condpingpong|roundtrip|cond ping-pong, 2 threads (100000×), per round trip"
	"sockpp|sockpingpong|roundtrip|socketpair ping-pong, 1 byte, blocking read/write (100000×), per round trip"
	"mutex2|mutex_T2|per_op|mutex lock/inc/unlock, 2 threads, 2M ops, per op"
	"mutex2|mutex_T2|threads|… 2 threads: max OS threads"
	"mutex16|mutex_T16|per_op|mutex lock/inc/unlock, 16 threads, 2M ops, per op"
	"mutex16|mutex_T16|threads|… 16 threads: max OS threads"
	"mutex1000|mutex_T1000|per_op|mutex lock/inc/unlock, 1000 threads, 2M ops, per op"
	"mutex1000|mutex_T1000|threads|… 1000 threads: max OS threads"
	"sleep|sleepstorm|wall|sleep storm 10000 thr × 20 × usleep(1ms): total wall"
	"sleep|sleepstorm|run|… sleep phase only (gate to last join; ideal 0.02 s)"
	"sleep|sleepstorm|late_p50|… sleep lateness p50"
	"sleep|sleepstorm|late_p99|… sleep lateness p99"
	"sleep|sleepstorm|threads|… max OS threads"
	"syscall|syscall_read|per_op|read(2) of 1 byte from /dev/zero (2 threads alive), per call"
	"wake0|wakeup_h0|p50|1 ms sleeper alone: wake-up lateness p50"
	"wake0|wakeup_h0|p99|… p99"
	"wake4|wakeup_h4|p50|1 ms sleeper beside 4 spinning threads: lateness p50"
	"wake4|wakeup_h4|p99|… p99"
	"wake4|wakeup_h4|max|… max"
)
VARIANTS=(native libgmp go)

declare -A VAL      # [job|variant|rep|bench.metric] = value
declare -A UNIT     # [bench.metric] = unit
declare -A STATUS   # [job|variant|rep] = ok | failure text
declare -A SKIP     # [job|variant] = reason: don't run again
declare -A CMDLINE  # [job|variant] = command line as run
FAILURES=()

LOGDIR=$BUILD/bench-logs
mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
rm -f "$LOGDIR"/*.out "$LOGDIR"/*.err

# Max of Threads: in /proc/PID/status while PID lives. Bash builtins only
# (plus one sleep per sample), so the sampler costs next to nothing.
poll_threads() { # pid outfile
	local pid=$1 out=$2 max=0 k v
	while [ -d "/proc/$pid" ]; do
		while read -r k v; do
			if [ "$k" = "Threads:" ]; then
				[ "$v" -gt "$max" ] && max=$v
				break
			fi
		done 2>/dev/null <"/proc/$pid/status"
		sleep 0.02
	done
	echo "$max" >"$out"
}

describe_rc() { # rc
	local rc=$1
	if [ "$rc" -eq 124 ]; then echo "timeout (${TIMEOUT}s)"
	elif [ "$rc" -gt 128 ]; then echo "killed by SIG$(kill -l $((rc - 128)) 2>/dev/null || echo $((rc - 128)))"
	else echo "exit $rc"
	fi
}

run_one() { # job variant rep ccmd goargs poll
	local job=$1 var=$2 rep=$3 ccmd=$4 goargs=$5 poll=$6
	local key="$job|$var" log="$LOGDIR/$job.$var.$rep" prog args=() gargs=() cmd=()
	read -r prog _ <<<"$ccmd"
	read -ra args <<<"${ccmd#"$prog"}"
	read -ra gargs <<<"$goargs"
	case $var in
	native) cmd=("$BENCHBIN/$prog" "${args[@]}") ;;
	libgmp) cmd=(env "LD_PRELOAD=$GMP" "$BENCHBIN/$prog" "${args[@]}") ;;
	go) cmd=("$GOBIN_PATH" "${gargs[@]}") ;;
	esac
	case $var in
	libgmp) CMDLINE[$key]="LD_PRELOAD=$GMP $BENCHBIN/$prog ${args[*]}" ;;
	*) CMDLINE[$key]="${cmd[*]}" ;;
	esac
	note "[$rep/$REPEATS] $job $var: ${CMDLINE[$key]}"

	local tpid cpid="" i rc polled=0
	timeout -k 5 "$TIMEOUT" "${cmd[@]}" >"$log.out" 2>"$log.err" &
	tpid=$!
	if [ "$poll" = 1 ]; then
		# the benchmark is timeout's only child
		for ((i = 0; i < 200; i++)); do
			read -r cpid _ 2>/dev/null <"/proc/$tpid/task/$tpid/children" || true
			[ -n "$cpid" ] && break
			sleep 0.005
		done
		[ -n "$cpid" ] && poll_threads "$cpid" "$log.threads" &
	fi
	wait "$tpid"
	rc=$?
	if [ "$poll" = 1 ]; then
		wait # the poller ends with the benchmark
		[ -f "$log.threads" ] && polled=$(<"$log.threads")
		rm -f "$log.threads"
	fi

	local status=ok
	if grep -q 'cannot be preloaded' "$log.err"; then
		status="libgmp.so was not preloaded"
	elif [ "$rc" -ne 0 ]; then
		status=$(describe_rc "$rc")
	elif ! grep -q '^RESULT ' "$log.out"; then
		status="no RESULT lines"
	fi
	STATUS[$key|$rep]=$status
	if [ "$status" != ok ]; then
		note "    -> FAILED: $status (log: $log.err)"
		FAILURES+=("$job $var run $rep: $status — \`${CMDLINE[$key]}\` — last stderr: $(tail -n 2 "$log.err" | tr '\n' ' ' | cut -c1-300)")
		[ -s "$log.err" ] || FAILURES[-1]+="(empty)"
		# A hang or crash is not worth repeating.
		case $status in timeout*|killed*) SKIP[$key]=$status ;; esac
		return
	fi
	local tag bench metric value unit
	while read -r tag bench metric value unit; do
		[ "$tag" = RESULT ] || continue
		VAL[$key|$rep|$bench.$metric]=$value
		UNIT[$bench.$metric]=$unit
	done <"$log.out"
	# OS threads: max of the program's own report and the poll
	for tag in "${ROWS[@]}"; do
		IFS='|' read -r _j bench metric _l <<<"$tag"
		if [ "$_j" != "$job" ] || [ "$metric" != threads ]; then continue; fi
		value=${VAL[$key|$rep|$bench.threads]:-0}
		[ "$polled" -gt "$value" ] 2>/dev/null && VAL[$key|$rep|$bench.threads]=$polled
		UNIT[$bench.threads]=count
	done
}

selected_jobs=()
for j in "${JOBS[@]}"; do
	name=${j%%|*}
	if [ -z "$ONLY" ] || [[ $name =~ $ONLY ]]; then selected_jobs+=("$j"); fi
done
[ ${#selected_jobs[@]} -gt 0 ] || die "BENCH_ONLY='$ONLY' matches no job"

for ((rep = 1; rep <= REPEATS; rep++)); do
	for j in "${selected_jobs[@]}"; do
		IFS='|' read -r job ccmd goargs poll <<<"$j"
		for var in "${VARIANTS[@]}"; do
			[ "$var" = libgmp ] && [ $HAVE_GMP = 0 ] && continue
			[ "$var" = go ] && [ $HAVE_GO = 0 ] && continue
			if [ -n "${SKIP[$job|$var]:-}" ]; then
				STATUS[$job|$var|$rep]="skipped"
				continue
			fi
			run_one "$job" "$var" "$rep" "$ccmd" "$goargs" "$poll"
			sleep "$SETTLE"
		done
	done
done

# ---- report ---------------------------------------------------------------------
median() { # values...
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END {
		if (NR == 0) exit 1
		if (NR % 2) print a[(NR + 1) / 2]; else printf "%.6g\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

fmtnum() { # value unit
	awk -v v="$1" -v u="$2" 'BEGIN {
		if (u == "count") { printf "%d", v; exit }
		a = v < 0 ? -v : v
		if (a >= 100) f = "%.0f"; else if (a >= 10) f = "%.1f"; else if (a >= 1) f = "%.2f"; else f = "%.3f"
		printf f, v
		if (u == "us") printf " µs"; else printf " %s", u }'
}

ratio() { # a b
	awk -v a="$1" -v b="$2" 'BEGIN {
		if (a == "" || b == "" || b + 0 == 0) { printf "–"; exit }
		r = a / b
		if (r >= 100) printf "%.0f×", r; else if (r >= 10) printf "%.1f×", r; else printf "%.2f×", r }'
}

# cell for one row/variant: sets CELL (text) and MED (number or empty)
cell() { # job variant bench metric
	local job=$1 var=$2 bm=$3.$4 vals=() rep st fails=() nok=0
	CELL="–"; MED=""
	[ "$var" = libgmp ] && [ $HAVE_GMP = 0 ] && { CELL="n/a"; return; }
	[ "$var" = go ] && [ $HAVE_GO = 0 ] && { CELL="–"; return; }
	for ((rep = 1; rep <= REPEATS; rep++)); do
		st=${STATUS[$job|$var|$rep]:-}
		[ -n "$st" ] || continue
		if [ "$st" = ok ]; then
			nok=$((nok + 1))
			[ -n "${VAL[$job|$var|$rep|$bm]:-}" ] && vals+=("${VAL[$job|$var|$rep|$bm]}")
		elif [ "$st" != skipped ]; then
			fails+=("$st")
		fi
	done
	if [ ${#vals[@]} -eq 0 ]; then
		if [ ${#fails[@]} -gt 0 ]; then CELL="**FAIL: ${fails[0]}**"; elif [ $nok -gt 0 ]; then CELL="n/a"; fi
		return
	fi
	MED=$(median "${vals[@]}")
	CELL=$(fmtnum "$MED" "${UNIT[$bm]:-}")
	[ ${#fails[@]} -gt 0 ] && CELL+=" (${#vals[@]}/$((${#vals[@]} + ${#fails[@]})) ok; ${fails[0]})"
}

REPORT=$BUILD/bench-results.md
{
	echo "## libgmp benchmarks — $(date '+%Y-%m-%d %H:%M:%S %z'), nproc $(nproc), kernel $(uname -r)"
	echo
	echo "Command: \`$COMMAND\` (median of $REPEATS interleaved runs per cell; timeout ${TIMEOUT}s per run)"
	echo
	rev=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo "no commit")
	[ -n "$(git -C "$REPO" status --porcelain 2>/dev/null | head -n1)" ] && rev+=" (dirty tree)"
	echo "libgmp: \`$GMP\`$([ $HAVE_GMP = 1 ] || echo ' — MISSING, column n/a'); source $rev; $(gcc --version 2>/dev/null | head -n1); glibc $(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}'). $GO_NOTE"
	echo
	echo "| benchmark | native | libgmp | Go | libgmp/native | libgmp/Go |"
	echo "|---|---:|---:|---:|---:|---:|"
	for r in "${ROWS[@]}"; do
		IFS='|' read -r job bench metric label <<<"$r"
		found=0
		for j in "${selected_jobs[@]}"; do [ "${j%%|*}" = "$job" ] && found=1; done
		[ $found = 1 ] || continue
		cell "$job" native "$bench" "$metric"; cn=$CELL; mn=$MED
		cell "$job" libgmp "$bench" "$metric"; cg=$CELL; mg=$MED
		cell "$job" go "$bench" "$metric"; co=$CELL; mo=$MED
		echo "| $label | $cn | $cg | $co | $(ratio "$mg" "$mn") | $(ratio "$mg" "$mo") |"
	done
	echo
	echo "Lower is better everywhere. Go runs the same workloads with goroutines (create+join = \`go\` + channel/WaitGroup; sync.Mutex, sync.Cond, time.Sleep)."
	echo "OS threads: max of the program's own /proc/self/status reading and polling /proc/PID/status every 20 ms."
	echo
	echo "Commands (libgmp column = the native command under LD_PRELOAD; logs in \`$LOGDIR\`):"
	echo
	for j in "${selected_jobs[@]}"; do
		IFS='|' read -r job ccmd goargs poll <<<"$j"
		echo "- $job: \`$BENCHBIN/$ccmd\`$([ $HAVE_GO = 1 ] && echo " · Go: \`$GOBIN_PATH $goargs\`")"
	done
	if [ ${#FAILURES[@]} -gt 0 ]; then
		echo
		echo "### Failures"
		echo
		for f in "${FAILURES[@]}"; do echo "- $f"; done
	fi
} >"$REPORT"
cat "$REPORT"
[ ${#FAILURES[@]} -eq 0 ]
