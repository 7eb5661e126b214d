#!/usr/bin/env bash
# tools/gmp-schedplot and tools/gmp-tracecheck on synthetic inputs: a
# schedtrace log with detail lines and program output mixed in must give
# well-formed SVG with a line per series; an empty log, exit 1. A trace
# with nested spans on 3 tracks must pass with the right counts; broken
# ones (unmatched E, unclosed B, missing ts, crossed spans, negative dur,
# time going back, not JSON) must fail with the right exit code and say
# why. Needs only python3. Usage: plot_tracecheck.sh [BUILD_DIR] (unused:
# the tools are scripts in the source tree).
set -u
here=$(cd "$(dirname "$0")" && pwd)
tools=$(cd "$here/../../tools" && pwd)
plot=$tools/gmp-schedplot
tcheck=$tools/gmp-tracecheck
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
check() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

# Run through python3 rather than the shebang, so a checkout that lost the
# executable bits still tests the code; the shebang is checked once below.
splot() { python3 "$plot" "$@"; }
tc() { python3 "$tcheck" "$@"; }

# ---- gmp-schedplot -----------------------------------------------------

# 50 SCHED lines, 2 Ps, with scheddetail lines and program output between
# them, one SCHED line glued to output without a newline.
python3 - > "$tmp/sched.log" <<'PY'
for i in range(50):
    line = ("SCHED %dms: gomaxprocs=2 idleprocs=%d threads=%d spinningthreads=%d "
            "needspinning=0 idlethreads=1 runqueue=%d [%d %d]"
            % (i * 100 + 1, i % 3, 5 + i // 10, i % 2, (i * 37) % 500, i % 7, (i * 3) % 11))
    if i == 20:
        line = "partial output with no newline" + line
    print(line)
    if i % 5 == 0:
        print("  P0: status=1 schedtick=%d syscalltick=0 m=0 runqsize=3 gfreecnt=0 timerslen=0" % i)
        print("  M1: p=1 curg=5 mallocing=0 throwing=0 preemptoff= locks=0 dying=0 spinning=false blocked=false lockedg=-1")
        print("  G5: status=1() m=1 lockedm=-1")
    if i % 7 == 0:
        print("request %d served [1 2 3] runqueue=99999" % i)
PY

# Counts the polylines of each series (data-series attribute) in the SVG,
# after checking that it parses as XML and has an <svg> root.
cat > "$tmp/svgcheck.py" <<'PY'
import sys, collections, xml.etree.ElementTree as ET
ns = "{http://www.w3.org/2000/svg}"
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == ns + "svg", root.tag
count = collections.Counter(p.get("data-series") for p in root.iter(ns + "polyline"))
for name, n in sorted(count.items()):
    print("%s=%d" % (name, n))
print("title=" + "".join(root.find(ns + "title").itertext()))
print("text=" + " | ".join("".join(t.itertext()) for t in root.iter(ns + "text")))
PY

splot -o "$tmp/chart.svg" --title 'run <queues> & co' "$tmp/sched.log" 2> "$tmp/plot.err"
check "schedplot: exit 0 on a 50-sample log" "[ $? -eq 0 ]"
python3 "$tmp/svgcheck.py" "$tmp/chart.svg" > "$tmp/svg.txt" 2>&1
check "schedplot: output parses as SVG (XML)" "[ $? -eq 0 ]"
for s in "global runqueue" "P0 local" "P1 local" "idleprocs" "threads (Ms)"; do
  check "schedplot: one <polyline> for '$s'" "grep -qx '$s=1' '$tmp/svg.txt'"
done
check "schedplot: no third P out of the garbage lines" "! grep -q '^P2' '$tmp/svg.txt'"
check "schedplot: title escaped and kept" "grep -qx 'title=run <queues> & co' '$tmp/svg.txt'"
check "schedplot: subtitle has samples and gomaxprocs" \
  "grep -q '50 samples, gomaxprocs=2' '$tmp/svg.txt'"
check "schedplot: axis labels" "grep -q 'time (s)' '$tmp/svg.txt' && grep -q 'run queue length' '$tmp/svg.txt'"
check "schedplot: quiet on a clean log" "[ ! -s '$tmp/plot.err' ]"

# Standard input to standard output.
splot --title 'run <queues> & co' < "$tmp/sched.log" > "$tmp/stdin.svg"
check "schedplot: stdin to stdout, same chart" "[ $? -eq 0 ] && cmp -s '$tmp/stdin.svg' '$tmp/chart.svg'"

# No SCHED line: exit 1 with a message, and no SVG.
printf 'hello\n  P0: status=1\n' > "$tmp/empty.log"
splot "$tmp/empty.log" > "$tmp/empty.svg" 2> "$tmp/empty.err"
rc=$?
check "schedplot: no SCHED lines -> exit 1" "[ $rc -eq 1 ]"
check "schedplot: no SCHED lines -> says so" "grep -q 'no SCHED lines' '$tmp/empty.err'"
check "schedplot: no SCHED lines -> no output" "[ ! -s '$tmp/empty.svg' ]"
splot < /dev/null > /dev/null 2>&1
check "schedplot: empty input -> exit 1" "[ $? -eq 1 ]"

# One line; gomaxprocs changing (a P appears, then goes); huge values.
echo 'SCHED 5ms: gomaxprocs=1 idleprocs=0 threads=2 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=3 [4]' \
  | splot > "$tmp/one.svg" 2>&1
check "schedplot: a single line gives valid SVG" \
  "python3 '$tmp/svgcheck.py' '$tmp/one.svg' | grep -q '1 sample, gomaxprocs=1'"
cat > "$tmp/change.log" <<'EOF'
SCHED 0ms: gomaxprocs=2 idleprocs=0 threads=3 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=1 [1 2]
SCHED 10ms: gomaxprocs=4 idleprocs=0 threads=5 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=123456789012 [1 2 3 4]
SCHED 20ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=7 [1 2]
SCHED 30ms: gomaxprocs=4 idleprocs=0 threads=5 spinningthreads=0 needspinning=0 idlethreads=0 runqueue=9 [1 2 3 99999999999999999999]
EOF
splot "$tmp/change.log" > "$tmp/change.svg"
python3 "$tmp/svgcheck.py" "$tmp/change.svg" > "$tmp/change.txt" 2>&1
check "schedplot: gomaxprocs changing gives valid SVG" "[ $? -eq 0 ]"
check "schedplot: gomaxprocs range in the subtitle" "grep -q 'gomaxprocs=2–4' '$tmp/change.txt'"
# P2 exists at 10ms and 30ms only: two pieces, not a line through the gap.
check "schedplot: a P that comes and goes is drawn in pieces" "grep -qx 'P2 local=2' '$tmp/change.txt'"
check "schedplot: huge values get short tick labels" "grep -Eq '[0-9](G|T|e\\+[0-9]+) ' '$tmp/change.txt'"

splot -h > "$tmp/help.txt" 2>&1
check "schedplot: -h" "[ $? -eq 0 ] && grep -q -- '--title' '$tmp/help.txt'"
if [ -x "$plot" ] && [ -x "$tcheck" ]; then
  check "both tools run by their shebang" "'$plot' -h > /dev/null && '$tcheck' -h > /dev/null"
fi

# ---- gmp-tracecheck ----------------------------------------------------

# Three tracks as libgmp writes them (P0, P1, an M), with nested B/E
# spans, X slices, instants, and the process_name metadata on tid 0.
cat > "$tmp/good.json" <<'EOF'
{"displayTimeUnit":"ns","otherData":{"tool":"libgmp"},"traceEvents":[
{"name":"process_name","ph":"M","pid":1,"tid":0,"args":{"name":"libgmp pid 42"}},
{"name":"outer","ph":"B","pid":1,"tid":0,"ts":1.0},
{"name":"inner","ph":"B","pid":1,"tid":0,"ts":2.0},
{"name":"create","cat":"sched","ph":"i","s":"t","pid":1,"tid":0,"ts":2.5,"args":{"g":2}},
{"name":"inner","ph":"E","pid":1,"tid":0,"ts":3.0},
{"name":"inner2","ph":"B","pid":1,"tid":0,"ts":3.0},
{"name":"inner2","ph":"E","pid":1,"tid":0,"ts":4.0},
{"name":"outer","ph":"E","pid":1,"tid":0,"ts":5.0},
{"name":"a","ph":"B","pid":1,"tid":1,"ts":1.5},
{"name":"G2","cat":"run","ph":"X","pid":1,"tid":1,"ts":1.6,"dur":0.0},
{"name":"unpark","cat":"sched","ph":"i","s":"t","pid":1,"tid":1,"ts":1.7},
{"name":"unpark","cat":"sched","ph":"I","s":"t","pid":1,"tid":1,"ts":1.8},
{"name":"a","ph":"E","pid":1,"tid":1,"ts":6},
{"name":"syscall","ph":"B","pid":1,"tid":1000,"ts":0},
{"name":"syscall","ph":"E","pid":1,"tid":1000,"ts":0},
{"name":"syscall","cat":"syscall","ph":"X","pid":1,"tid":1000,"ts":7,"dur":12.5},
{"name":"thread_name","ph":"M","pid":1,"tid":0,"args":{"name":"P0"}},
{"name":"thread_name","ph":"M","pid":1,"tid":1,"args":{"name":"P1"}},
{"name":"thread_name","ph":"M","pid":1,"tid":1000,"args":{"name":"M0 (tid 42)"}}
]}
EOF
tc "$tmp/good.json" > "$tmp/good.out" 2>&1
check "tracecheck: valid trace -> exit 0" "[ $? -eq 0 ]"
check "tracecheck: event and track counts" "grep -q '^19 events, 3 tracks' '$tmp/good.out'"
tc --json "$tmp/good.json" > "$tmp/good.jsonout" 2>&1
check "tracecheck: --json -> exit 0" "[ $? -eq 0 ]"
cat > "$tmp/counts.py" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
tr = {t["tid"]: t for t in s["tracks"]}
assert s["valid"] and s["events"] == 19 and s["errors"] == 0, s
assert sorted(tr) == [0, 1, 1000], tr
assert (tr[0]["name"], tr[0]["spans"], tr[0]["instants"]) == ("P0", 3, 1), tr[0]
assert (tr[1]["name"], tr[1]["spans"], tr[1]["complete"]) == ("P1", 1, 1), tr[1]
assert (tr[1000]["name"], tr[1000]["spans"], tr[1000]["complete"]) == ("M0 (tid 42)", 1, 1), tr[1000]
assert s["instants"] == {"create": 1, "unpark": 2}, s["instants"]
PY
check "tracecheck: per-track spans, names and instant counts" \
  "python3 '$tmp/counts.py' '$tmp/good.jsonout'"
tc --require create,unpark --require syscall "$tmp/good.json" > /dev/null 2>&1
check "tracecheck: --require of present names -> exit 0" "[ $? -eq 0 ]"
tc --require create,park,unpark "$tmp/good.json" > /dev/null 2> "$tmp/req.err"
check "tracecheck: --require of a missing name -> exit 1" "[ $? -eq 1 ]"
check "tracecheck: --require names the missing one" "grep -q \"no event named 'park'\" '$tmp/req.err'"
# A bare array is a trace too.
python3 -c "import json,sys; json.dump(json.load(open(sys.argv[1]))['traceEvents'], open(sys.argv[2],'w'))" \
  "$tmp/good.json" "$tmp/bare.json"
tc "$tmp/bare.json" > /dev/null 2>&1
check "tracecheck: bare array accepted" "[ $? -eq 0 ]"

# bad NAME 'JSON EVENTS' EXIT MESSAGE: the events go in a traceEvents array.
bad() {
  printf '{"traceEvents":[%s]}\n' "$2" > "$tmp/$1.json"
  tc "$tmp/$1.json" > "$tmp/$1.out" 2> "$tmp/$1.err"
  local rc=$?
  check "tracecheck: $1 -> exit $3" "[ $rc -eq $3 ]"
  check "tracecheck: $1 -> '$4'" "grep -q -- \"$4\" '$tmp/$1.err'"
}
bad unmatched_E \
  '{"name":"a","ph":"B","pid":1,"tid":0,"ts":1},{"name":"a","ph":"E","pid":1,"tid":0,"ts":2},{"name":"b","ph":"E","pid":1,"tid":0,"ts":3}' \
  1 "E 'b' on pid 1 tid 0 with no open B"
bad unclosed_B \
  '{"name":"a","ph":"B","pid":1,"tid":0,"ts":1},{"name":"b","ph":"B","pid":1,"tid":0,"ts":2},{"name":"b","ph":"E","pid":1,"tid":0,"ts":3}' \
  1 "B 'a' on pid 1 tid 0 never closed"
bad missing_ts '{"name":"a","ph":"i","pid":1,"tid":0}' 1 "missing ts"
bad string_ts '{"name":"a","ph":"X","pid":1,"tid":0,"ts":"1","dur":1}' 1 "is not a number"
bad missing_tid '{"name":"a","ph":"X","pid":1,"ts":1,"dur":1}' 1 "missing tid"
bad crossed \
  '{"name":"a","ph":"B","pid":1,"tid":0,"ts":1},{"name":"b","ph":"B","pid":1,"tid":0,"ts":2},{"name":"a","ph":"E","pid":1,"tid":0,"ts":3},{"name":"b","ph":"E","pid":1,"tid":0,"ts":4}' \
  1 "spans cross"
bad negative_dur '{"name":"G1","ph":"X","pid":1,"tid":0,"ts":5,"dur":-1}' 1 "dur -1 < 0"
bad time_back \
  '{"name":"a","ph":"B","pid":1,"tid":0,"ts":5},{"name":"a","ph":"E","pid":1,"tid":0,"ts":4}' \
  1 "goes back before 5"
bad unknown_ph '{"name":"c","ph":"C","pid":1,"tid":0,"ts":1}' 1 "ph 'C' is not one of"
bad nan_ts '{"name":"a","ph":"i","pid":1,"tid":0,"ts":NaN}' 2 "NaN is not JSON"
check "tracecheck: invalid trace still prints its summary" "grep -q '^3 events, 1 track$' '$tmp/unmatched_E.out'"

# Only the first 20 errors are listed.
python3 -c 'import json; print(json.dumps([{"name":"x","ph":"E","pid":1,"tid":0,"ts":i} for i in range(30)]))' \
  > "$tmp/many.json"
tc "$tmp/many.json" > /dev/null 2> "$tmp/many.err"
check "tracecheck: 30 errors -> exit 1" "[ $? -eq 1 ]"
check "tracecheck: only the first 20 listed" \
  "[ \$(grep -c '^error:' '$tmp/many.err') -eq 20 ] && grep -q 'and 10 more errors' '$tmp/many.err'"

# Not JSON, truncated, not a trace, not there: exit 2.
printf '{"traceEvents":[{"name":"a",' > "$tmp/trunc.json"
tc "$tmp/trunc.json" > /dev/null 2> "$tmp/trunc.err"
check "tracecheck: truncated JSON -> exit 2" "[ $? -eq 2 ]"
check "tracecheck: truncated JSON -> says truncated" "grep -q 'truncated' '$tmp/trunc.err'"
printf 'this is not json\n' > "$tmp/garbage.json"
tc "$tmp/garbage.json" > /dev/null 2> "$tmp/garbage.err"
check "tracecheck: bad JSON -> exit 2" "[ $? -eq 2 ] && grep -q 'not a trace' '$tmp/garbage.err'"
printf '{"events":[]}\n' > "$tmp/noevents.json"
tc "$tmp/noevents.json" > /dev/null 2> "$tmp/noevents.err"
check "tracecheck: object without traceEvents -> exit 2" \
  "[ $? -eq 2 ] && grep -q 'traceEvents' '$tmp/noevents.err'"
tc "$tmp/does-not-exist.json" > /dev/null 2> "$tmp/nofile.err"
check "tracecheck: missing file -> exit 2" "[ $? -eq 2 ] && grep -q 'No such file' '$tmp/nofile.err'"

if [ $fails -ne 0 ]; then echo "$fails check(s) failed"; exit 1; fi
echo "all passed"
