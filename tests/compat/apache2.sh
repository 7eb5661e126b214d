#!/bin/bash
# compat: apache2 (mpm_worker, one child with thousands of threads), native vs libgmp.
# usage: apache2.sh [LIB] [quick|full]
# Runs apache2 from a private config in a temp dir (never the system service),
# serves one static file, loads it with wrk, checks every response.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
LIB=${1:-$HERE/../../build/libgmp.so}
MODE=${2:-quick}
LIB=$(readlink -f "$LIB")
[ -f "$LIB" ] || { echo "compat apache2: no library $LIB"; exit 2; }

need() { command -v "$1" >/dev/null 2>&1; }
if ! need apache2 || ! need wrk || ! need curl; then
    . "$(dirname "$0")/lib.sh" && apt_install \
        apache2 apache2-utils wrk curl >/dev/null 2>&1 || { echo "compat apache2: cannot install apache2/wrk"; exit 2; }
fi
PATH=$PATH:/usr/sbin
MODDIR=/usr/lib/apache2/modules

case $MODE in
quick) THREADS_LIST="2000"; CONNS_LIST="200"; DUR=3 ;;
full)  THREADS_LIST="2000 10000"; CONNS_LIST="1000 4000"; DUR=8 ;;
*) echo "usage: $0 [LIB] [quick|full]"; exit 2 ;;
esac
WRK_THREADS=2
WORK=$(mktemp -d /tmp/compat-apache.XXXXXX); chmod 755 "$WORK"
trap 'stop_server; rm -rf "$WORK"' EXIT
FAIL=0
PARENT=

# ulimit -n: as high as the hard limit allows (one fd per connection + logs)
ulimit -n "$(ulimit -Hn)" 2>/dev/null
ulimit -u unlimited 2>/dev/null

# the static file: 16 KiB of deterministic bytes
mkdir -p "$WORK/htdocs" "$WORK/logs"
head -c 16384 /dev/urandom > "$WORK/htdocs/file.bin"
FILESIZE=$(stat -c %s "$WORK/htdocs/file.bin")

free_port() { python3 - <<'PY'
import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])
PY
}

write_conf() {   # $1 threads, $2 port
    cat > "$WORK/httpd.conf" <<CONF
ServerRoot "$WORK"
ServerName 127.0.0.1
PidFile "$WORK/logs/httpd.pid"
ErrorLog "$WORK/logs/error.log"
LogLevel warn
Listen 127.0.0.1:$2
LoadModule mpm_worker_module $MODDIR/mod_mpm_worker.so
LoadModule authz_core_module $MODDIR/mod_authz_core.so
LoadModule mime_module $MODDIR/mod_mime.so
LoadModule dir_module $MODDIR/mod_dir.so
TypesConfig /etc/mime.types
DocumentRoot "$WORK/htdocs"
<Directory "$WORK/htdocs">
    Require all granted
</Directory>
User www-data
Group www-data
StartServers 1
ServerLimit 1
MinSpareThreads 1
MaxSpareThreads $1
ThreadLimit $1
ThreadsPerChild $1
MaxRequestWorkers $1
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 30
ListenBacklog 8192
Timeout 30
CONF
}

stop_server() {
    [ -n "${PARENT:-}" ] || return 0
    kill -TERM "$PARENT" 2>/dev/null
    for _ in $(seq 1 100); do kill -0 "$PARENT" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$PARENT" 2>/dev/null; then
        echo "  parent $PARENT did not exit 10 s after SIGTERM"; STOPFAIL=1
        kill -KILL "$PARENT" 2>/dev/null
        [ -n "${CHILD:-}" ] && kill -KILL "$CHILD" 2>/dev/null
    fi
    wait "$PARENT" 2>/dev/null
    PARENT=
}

child_of() { # child apache2 process of the parent
    pgrep -P "$1" -x apache2 | head -1
}

# run_one KIND(native|libgmp) THREADS -> sets R_RPS R_THR R_RSS R_OK, prints details
run_one() {
    local kind=$1 threads=$2 port
    port=$(free_port)
    write_conf "$threads" "$port"
    : > "$WORK/logs/error.log"
    local pre=()
    [ "$kind" = libgmp ] && pre=(env LD_PRELOAD="$LIB")
    STOPFAIL=0
    "${pre[@]}" apache2 -f "$WORK/httpd.conf" -DFOREGROUND >"$WORK/logs/stdout.log" 2>&1 &
    PARENT=$!
    CHILD=
    # wait until it answers and the child has all its threads
    local t0=$SECONDS ok=0
    while [ $((SECONDS - t0)) -lt 60 ]; do
        CHILD=$(child_of "$PARENT")
        if [ -n "$CHILD" ] && curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$port/file.bin"; then ok=1; break; fi
        kill -0 "$PARENT" 2>/dev/null || break
        sleep 0.2
    done
    R_RPS=0 R_THR=0 R_RSS=0 R_OK=0 R_NOTE=
    if [ $ok != 1 ]; then
        R_NOTE="did not start/answer: $(cat "$WORK/logs/error.log" "$WORK/logs/stdout.log" | tail -n 4 | tr '\n' ' ')"
        stop_server; return
    fi
    # byte-for-byte check
    curl -s --max-time 5 -o "$WORK/got.bin" "http://127.0.0.1:$port/file.bin"
    local cmpok=1
    cmp -s "$WORK/got.bin" "$WORK/htdocs/file.bin" || cmpok=0
    # idle: every worker made, no load (RSS steady for a second, at most 30 s)
    local idle_rss=0 prev=-1 t2=$SECONDS
    while [ $((SECONDS - t2)) -lt 30 ]; do
        idle_rss=$(awk '/^VmRSS:/ {print $2}' /proc/"$CHILD"/status 2>/dev/null)
        [ "${idle_rss:-0}" = "$prev" ] && break
        prev=${idle_rss:-0}; sleep 1
    done
    local idle_thr
    idle_thr=$(awk '/^Threads:/ {print $2}' /proc/"$CHILD"/status 2>/dev/null)
    local allok=1 total_rps=0 details=""
    # kernel stacks: 16 KiB (THREAD_SIZE on x86_64) per OS thread
    details+="    $kind threads=$threads idle: child RSS $(awk -v k="${idle_rss:-0}" 'BEGIN{printf "%.1f", k/1024}') MiB, $idle_thr OS threads, RSS + kernel stacks $(awk -v k="${idle_rss:-0}" -v t="${idle_thr:-0}" 'BEGIN{printf "%.1f", (k + 16*t)/1024}') MiB"$'\n'
    for conns in $CONNS_LIST; do
        [ "$conns" -gt "$threads" ] && [ "$kind" = native ] && true
        timeout $((DUR + 60)) wrk -t$WRK_THREADS -c"$conns" -d${DUR}s --timeout 10s \
            "http://127.0.0.1:$port/file.bin" >"$WORK/wrk.$conns.out" 2>&1
        local rc=$?
        local rps non2xx errs reqs bytes
        rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.$conns.out")
        non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.$conns.out")
        errs=$(grep -o 'Socket errors:.*' "$WORK/wrk.$conns.out")
        reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.$conns.out")
        # wrk "X requests in Ys, Z MB read": check bytes ~ reqs * (file + headers)
        local thr rss
        thr=$(awk '/^Threads:/ {print $2}' /proc/"$CHILD"/status 2>/dev/null)
        rss=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' /proc/"$CHILD"/status 2>/dev/null)
        details+="    $kind threads=$threads conns=$conns: ${rps:-?} req/s, $reqs requests, non-2xx ${non2xx:-0}, ${errs:-no socket errors}, child threads $thr, child RSS $rss MiB (wrk rc $rc)"$'\n'
        [ -z "$rps" ] && allok=0
        [ -n "$non2xx" ] && allok=0
        # timeouts/read errors mean requests that did not complete
        if [ -n "$errs" ] && echo "$errs" | grep -Eq 'read [1-9]|timeout [1-9]|write [1-9]'; then allok=0; fi
        R_RPS=${rps:-0}; R_THR=${thr:-0}; R_RSS=${rss:-0}
    done
    # after load: another byte-for-byte fetch
    curl -s --max-time 5 -o "$WORK/got2.bin" "http://127.0.0.1:$port/file.bin"
    cmp -s "$WORK/got2.bin" "$WORK/htdocs/file.bin" || cmpok=0
    # length check from the access-less server: HEAD request content-length
    local cl
    cl=$(curl -sI --max-time 5 "http://127.0.0.1:$port/file.bin" | awk -F': ' 'tolower($1)=="content-length" {print $2+0}')
    [ "$cl" = "$FILESIZE" ] || cmpok=0
    R_THR=$(awk '/^Threads:/ {print $2}' /proc/"$CHILD"/status 2>/dev/null)
    R_RSS=$(awk '/^VmRSS:/ {printf "%.1f", $2/1024}' /proc/"$CHILD"/status 2>/dev/null)
    # graceful restart (apache2 -k graceful = SIGUSR1 to the parent): a new
    # child replaces the old one and serves the same bytes
    kill -USR1 "$PARENT"
    local newchild="" t1=$SECONDS
    while [ $((SECONDS - t1)) -lt 30 ]; do
        newchild=$(pgrep -P "$PARENT" -x apache2 | grep -vx "$CHILD" | head -1)
        [ -n "$newchild" ] && curl -s --max-time 2 -o "$WORK/got3.bin" "http://127.0.0.1:$port/file.bin" && break
        sleep 0.2
    done
    if [ -z "$newchild" ] || ! cmp -s "$WORK/got3.bin" "$WORK/htdocs/file.bin"; then
        cmpok=0; details+="    $kind: graceful restart failed (new child '${newchild}')"$'\n'
    else
        CHILD=$newchild
    fi
    printf '%s' "$details"
    stop_server
    local stopped=1
    [ "$STOPFAIL" = 1 ] && stopped=0
    if grep -Eq 'emerg|crit|alert|Segmentation|AH00052|AH00051' "$WORK/logs/error.log"; then
        echo "    error.log:"; grep -E 'emerg|crit|alert|Segmentation|AH0005' "$WORK/logs/error.log" | head -5 | sed 's/^/      /'
        allok=0
    fi
    [ $cmpok = 1 ] && [ $allok = 1 ] && [ $stopped = 1 ] && R_OK=1
    [ $cmpok = 1 ] || R_NOTE+=" body mismatch;"
    [ $allok = 1 ] || R_NOTE+=" load errors;"
    [ $stopped = 1 ] || R_NOTE+=" no clean stop;"
}

SUMMARY=""
for threads in $THREADS_LIST; do
    echo "== ThreadsPerChild $threads"
    run_one native "$threads";  N_RPS=$R_RPS N_THR=$R_THR N_RSS=$R_RSS N_OK=$R_OK N_NOTE=$R_NOTE
    [ "$N_OK" = 1 ] || echo "  native: NOT OK:$N_NOTE"
    run_one libgmp "$threads";  G_RPS=$R_RPS G_THR=$R_THR G_RSS=$R_RSS G_OK=$R_OK G_NOTE=$R_NOTE
    [ "$G_OK" = 1 ] || { echo "  libgmp: NOT OK:$G_NOTE"; FAIL=1; }
    echo "REPORT	apache2	ThreadsPerChild $threads, wrk -c ${CONNS_LIST##* }	req/s	${N_RPS%.*}	${G_RPS%.*}	$N_THR	$G_THR	$(awk -v m="$N_RSS" 'BEGIN{printf "%d", m * 1024}')	$(awk -v m="$G_RSS" 'BEGIN{printf "%d", m * 1024}')	$([ "$G_OK" = 1 ] && echo OK || echo FAIL)"
    SUMMARY+="compat apache2 ($threads threads/child): native $N_RPS req/s, $N_THR threads, $N_RSS MiB | libgmp $G_RPS req/s, $G_THR threads, $G_RSS MiB, responses $([ "$G_OK" = 1 ] && echo OK || echo FAILED)"$'\n'
done
printf '%s' "$SUMMARY"
exit $FAIL
