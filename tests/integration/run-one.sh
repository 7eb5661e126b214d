#!/usr/bin/env bash
# run-one.sh LIB BINARY SOURCE
#
# Runs one integration program natively and under LD_PRELOAD=LIB (libgmp.so)
# and judges the runs. The program knows nothing of libgmp.
#
# Optional tags, in a comment within the first 10 lines of SOURCE:
#     gmp-test: key=value key=value ...
#   mode=compare   (default) stdout and exit status of every preload run must
#                  equal those of the native run (stderr is shown on failure,
#                  never compared). The native run must itself exit 0.
#   mode=selfcheck the program checks itself; every run must exit 0.
#   native=skip    do not run natively (only under LIB). In compare mode the
#                  first preload run then serves as the reference.
#   maxprocs=LIST  comma list of GMP_MAXPROCS values for the preload runs;
#                  "default" means GMP_MAXPROCS unset. Default: default,1,2
#   timeout=SECS   per run (default 60), enforced with `timeout -k 5`.
#
# Prints one line per run: "PASS native", "PASS gmp maxprocs=1",
# "FAIL gmp maxprocs=2: output differs" (+ a unified diff, at most 40 lines),
# "FAIL ...: exit 139 (signal SIGSEGV)", "FAIL ...: timed out after 60 s".
# Exits 0 only if every run passed.
set -u

if [ $# -ne 3 ]; then
  echo "usage: $0 LIB BINARY SOURCE" >&2
  exit 2
fi
lib=$1 bin=$2 src=$3

fail_setup() { echo "FAIL setup: $*"; exit 1; }

[ -f "$lib" ] || fail_setup "preload library '$lib' does not exist (build libgmp first)"
[ -r "$lib" ] || fail_setup "preload library '$lib' is not readable"
[ -x "$bin" ] || fail_setup "test binary '$bin' does not exist or is not executable"
[ -r "$src" ] || fail_setup "test source '$src' is not readable"
# LD_PRELOAD wants an absolute path (a bare name would be searched for).
case $lib in /*) ;; *) lib=$(cd "$(dirname "$lib")" && pwd)/$(basename "$lib") ;; esac

# ---- tags ------------------------------------------------------------------
mode=compare native=run maxprocs=default,1,2 tmo=60
tagline=$(head -n 10 "$src" | grep -o 'gmp-test:.*' | head -n 1)
tagline=${tagline#gmp-test:}
tagline=${tagline%%\*/*}            # drop a closing C comment on the same line
for kv in $tagline; do
  key=${kv%%=*} val=${kv#*=}
  [ "$key" != "$kv" ] && [ -n "$val" ] || fail_setup "malformed tag '$kv' in $src"
  case $key in
    mode)     case $val in compare|selfcheck) mode=$val ;;
                *) fail_setup "unknown mode '$val' in $src" ;; esac ;;
    native)   case $val in skip) native=skip ;; run) native=run ;;
                *) fail_setup "unknown native= value '$val' in $src" ;; esac ;;
    maxprocs) [[ $val =~ ^(default|[0-9]+)(,(default|[0-9]+))*$ ]] ||
                fail_setup "bad maxprocs list '$val' in $src"
              maxprocs=$val ;;
    timeout)  [[ $val =~ ^[0-9]+$ ]] && [ "$val" -gt 0 ] ||
                fail_setup "bad timeout '$val' in $src"
              tmo=$val ;;
    *)        fail_setup "unknown tag key '$key' in $src" ;;
  esac
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gmp-it.XXXXXX") || fail_setup "mktemp -d failed"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

failures=0
ref_out= ref_rc= ref_label=

# Describe an exit status the way a human wants to read it.
describe_rc() {
  local rc=$1 sig
  if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
    sig=$(kill -l $((rc - 128)) 2>/dev/null) || sig=
    if [ -n "$sig" ]; then echo "exit $rc (signal SIG$sig)"; return; fi
  fi
  echo "exit $rc"
}

show_stdout() {
  [ -s "$1" ] || return 0
  echo "  --- stdout (last 20 lines) ---"
  tail -n 20 "$1" | sed 's/^/  | /'
}

show_stderr() {
  local f=$1 n
  n=$(wc -l <"$f")
  [ "$n" -gt 0 ] || return 0
  echo "  --- stderr ($n lines, first 40) ---"
  head -n 40 "$f" | sed 's/^/  | /'
}

# run_one LABEL NAME ENV-ARGS...   (ENV-ARGS are passed to env(1))
# LD_PRELOAD is given to the test binary only (through env), never to timeout.
run_one() {
  local label=$1 name=$2; shift 2
  local out=$tmp/$name.out err=$tmp/$name.err rc start end
  start=$(date +%s%N)
  # The subshell absorbs bash's "Segmentation fault ..." job report (timeout
  # re-raises the child's fatal signal on itself).
  ( timeout -k 5 "$tmo" env "$@" "$bin" >"$out" 2>"$err" </dev/null; exit $? ) 2>/dev/null
  rc=$?
  end=$(date +%s%N)
  # timeout(1) exits 124 after TERM, 137 after the KILL that follows -k; the
  # elapsed time tells that apart from a program exiting 124 by itself.
  if { [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; } && [ $(( (end - start) / 1000000 )) -ge $(( tmo * 1000 - 100 )) ]; then
    echo "FAIL $label: timed out after $tmo s"
    show_stdout "$out"
    show_stderr "$err"
    failures=$((failures + 1))
    return
  fi

  if [ "$mode" = selfcheck ] || { [ "$label" = native ]; }; then
    if [ "$rc" -ne 0 ]; then
      echo "FAIL $label: $(describe_rc "$rc")"
      show_stdout "$out"
      show_stderr "$err"
      failures=$((failures + 1))
      # A broken native run still serves as the reference, so that preload
      # runs are judged against something; it has already been reported.
      [ "$label" = native ] && { ref_out=$out ref_rc=$rc ref_label=$label; }
      return
    fi
    if [ "$mode" = selfcheck ]; then echo "PASS $label"; return; fi
    ref_out=$out ref_rc=$rc ref_label=$label
    echo "PASS $label"
    return
  fi

  # compare mode, preload run
  if [ -z "$ref_out" ]; then            # native=skip: first preload run is the reference
    if [ "$rc" -ne 0 ]; then
      echo "FAIL $label: $(describe_rc "$rc")"
      show_stderr "$err"
      failures=$((failures + 1))
      return
    fi
    ref_out=$out ref_rc=$rc ref_label=$label
    echo "PASS $label (reference output)"
    return
  fi
  local bad=0
  if [ "$rc" -ne "$ref_rc" ]; then
    echo "FAIL $label: $(describe_rc "$rc"), $ref_label gave $(describe_rc "$ref_rc")"
    bad=1
  fi
  if ! cmp -s "$ref_out" "$out"; then
    echo "FAIL $label: output differs"
    diff -u --label "$ref_label" --label "$label" "$ref_out" "$out" | head -n 40
    bad=1
  fi
  if [ $bad -ne 0 ]; then
    show_stderr "$err"
    failures=$((failures + 1))
  else
    echo "PASS $label"
  fi
}

if [ "$native" = run ]; then
  run_one native native -u LD_PRELOAD -u GMP_MAXPROCS
fi
IFS=, read -r -a mp_list <<<"$maxprocs"
for mp in "${mp_list[@]}"; do
  if [ "$mp" = default ]; then
    run_one "gmp maxprocs=default" gmp-default -u GMP_MAXPROCS LD_PRELOAD="$lib"
  else
    run_one "gmp maxprocs=$mp" "gmp-$mp" LD_PRELOAD="$lib" GMP_MAXPROCS="$mp"
  fi
done

if [ $failures -ne 0 ]; then
  echo "$(basename "$bin"): $failures run(s) failed"
  exit 1
fi
exit 0
