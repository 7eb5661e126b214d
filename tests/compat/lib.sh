# Shared helpers for the compat scripts (sourced, bash).
# Every process a script starts is recorded and ended by PID on exit.

COMPAT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
COMPAT_PIDS=()
COMPAT_TMP=

# compat_args LIB MODE: sets GMPLIB (absolute) and MODE (quick|full).
compat_args() {
  GMPLIB=${1:-$COMPAT_DIR/../../build/libgmp.so}
  MODE=${2:-quick}
  case $MODE in quick|full) ;; *) echo "mode must be quick or full, not '$MODE'" >&2; exit 2 ;; esac
  [ -f "$GMPLIB" ] || { echo "no libgmp.so at $GMPLIB (build first, or pass its path)" >&2; exit 2; }
  GMPLIB=$(cd "$(dirname "$GMPLIB")" && pwd)/$(basename "$GMPLIB")
}

# apt_install PKG...: install the packages (non-interactive, no
# recommends), with the system's services NOT started: a policy-rc.d that
# refuses them (Debian's mechanism, honoured by invoke-rc.d and
# deb-systemd-invoke) is in place during the install. The scripts run
# their own private instances; a mariadb or apache2 of the system's own
# would only take memory and ports.
apt_install() {
  local sudo= made=0
  [ "$(id -u)" = 0 ] || sudo=sudo
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null &&
      $sudo chmod 755 /usr/sbin/policy-rc.d && made=1
  fi
  local rc=0
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
      >/dev/null 2>&1; then
    $sudo apt-get update >/dev/null 2>&1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" \
      >/dev/null 2>&1 || rc=1
  fi
  [ $made = 1 ] && $sudo rm -f /usr/sbin/policy-rc.d
  return $rc
}

# need_pkg PKG [COMMAND]: apt_install PKG if COMMAND (default PKG) is missing.
need_pkg() {
  local pkg=$1 cmd=${2:-$1}
  command -v "$cmd" >/dev/null 2>&1 && return 0
  apt_install "$pkg"
  command -v "$cmd" >/dev/null 2>&1 || { echo "cannot install $pkg" >&2; return 1; }
}

# compat_tmp: a private temp dir in $COMPAT_TMP, removed on exit.
compat_tmp() {
  COMPAT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/compat.XXXXXX")
  chmod 755 "$COMPAT_TMP"   # servers that drop privileges still read it
}

# free_port: a TCP port on 127.0.0.1 nothing listens on now.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# wait_port PORT [TIMEOUT_S] [PID]: until something accepts on 127.0.0.1:PORT;
# fails early if PID dies.
wait_port() {
  local port=$1 t=${2:-10} pid=${3:-} i
  for ((i = 0; i < t * 20; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.05
  done
  return 1
}

# start_bg OUTFILE CMD...: start CMD in the background (stdout+stderr to
# OUTFILE), record its PID in $BG_PID and in the cleanup list.
start_bg() {
  local out=$1; shift
  "$@" >"$out" 2>&1 &
  BG_PID=$!
  COMPAT_PIDS+=("$BG_PID")
}

# os_threads PID: its Threads: count now (0 if gone).
os_threads() { awk '/^Threads:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }

# peak_rss_kb PID: VmHWM in KiB.
peak_rss_kb() { awk '/^VmHWM:/{print $2; f=1} END{if(!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }

# sample_threads PID SECONDS OUTFILE: in the background, the max Threads:
# seen every 0.1 s, written to OUTFILE when done. Sets $SAMPLER_PID.
sample_threads() {
  local pid=$1 secs=$2 out=$3
  (
    max=0
    end=$((SECONDS + secs))
    while [ $SECONDS -le $end ] && kill -0 "$pid" 2>/dev/null; do
      n=$(os_threads "$pid")
      [ "$n" -gt "$max" ] && max=$n
      # written aside and renamed: the sampler is killed at any moment, and
      # a kill between the truncation and the write left an empty file
      echo "$max" >"$out.new" && mv -f "$out.new" "$out"
      sleep 0.1
    done
  ) &
  SAMPLER_PID=$!
  COMPAT_PIDS+=("$SAMPLER_PID")
}

# stop_pid PID [TIMEOUT_S]: SIGTERM, then SIGKILL after TIMEOUT_S.
# Sets STOP_STATUS to the exit status and STOP_KILLED=1 if SIGKILL was needed.
stop_pid() {
  local pid=$1 t=${2:-5} i
  STOP_KILLED=0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < t * 20; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # a zombie child counts as gone
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.05
  done
  # Killed only if the whole timeout ran out with the process still
  # there: a state read racing with its exit (the stat file of a process
  # being reaped) must not count as "ignored SIGTERM".
  if [ "$i" -ge $((t * 20)) ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
    STOP_KILLED=1
  fi
  wait "$pid" 2>/dev/null
  STOP_STATUS=$?
}

compat_cleanup() {
  local p
  for p in "${COMPAT_PIDS[@]}"; do
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
  done
  [ -n "$COMPAT_TMP" ] && [ -z "${COMPAT_KEEP:-}" ] && rm -rf "$COMPAT_TMP"
}
trap compat_cleanup EXIT

# raise_nofile N: soft RLIMIT_NOFILE to min(N, hard).
raise_nofile() {
  local hard
  hard=$(ulimit -Hn)
  [ "$hard" = unlimited ] && hard=$1
  ulimit -n $(( $1 < hard ? $1 : hard ))
}

# result LINE: the one result line (stdout).
result() { echo "$*"; }

# report PROGRAM WHAT UNIT NATIVE LIBGMP NATIVE_THREADS LIBGMP_THREADS
#        NATIVE_RSS_KB LIBGMP_RSS_KB OK|FAIL: one machine-readable line for
# tools/compat.sh's report (tab-separated, after the word REPORT).
report() {
  local IFS=$'\t'
  echo "REPORT	$*"
}

# note MSG: progress and diagnostics (stderr).
note() { echo "  [$(basename "$0" .sh)] $*" >&2; }
