#!/usr/bin/env bash
# tools/compat.sh [quick|full] [BUILD_DIR]     (defaults: full, ./build)
#
# Real programs from Debian packages, unmodified, natively and under
# libgmp (tests/compat/*.sh: each installs its package if missing, runs
# on 127.0.0.1 in a private directory, drives a bounded load with the
# program's usual client, checks the data, stops only what it started).
# Writes BUILD_DIR/compat-report.md (a table: throughput, OS threads and
# peak RSS, native vs libgmp, and each program's own result line) and
# BUILD_DIR/compat-report.svg (the same as bars: libgmp/native ratios).
# quick: a few seconds per program (what CI runs); full: the loads the
# issue asks for (minutes). Exit status: non-zero if any program failed
# under libgmp. COMPAT_ONLY=REGEX runs only the matching scripts.
set -u -o pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${1:-full}
BUILD=$(cd "${2:-$REPO/build}" && pwd) || exit 2
case $MODE in quick|full) ;; *) echo "usage: tools/compat.sh [quick|full] [BUILD_DIR]" >&2; exit 2 ;; esac
LIB=$BUILD/libgmp.so
[ -f "$LIB" ] || { echo "compat: $LIB not found: build first" >&2; exit 2; }
out=$BUILD/compat-report.md svg=$BUILD/compat-report.svg
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failed=0
: > "$tmp/reports"; : > "$tmp/lines"
for script in "$REPO"/tests/compat/*.sh; do
  name=$(basename "$script" .sh)
  [ "$name" = lib ] && continue
  [ -n "${COMPAT_ONLY:-}" ] && ! [[ $name =~ $COMPAT_ONLY ]] && continue
  echo "== compat $name ($MODE)" >&2
  start=$SECONDS
  bash "$script" "$LIB" "$MODE" > "$tmp/$name.out" 2> "$tmp/$name.err"
  rc=$?
  grep -v '^REPORT' "$tmp/$name.out" | tee -a "$tmp/lines"
  grep '^REPORT' "$tmp/$name.out" >> "$tmp/reports"
  if [ $rc -ne 0 ]; then
    failed=1
    echo "compat $name: FAILED (exit $rc) after $((SECONDS - start)) s; its diagnostics:" | tee -a "$tmp/lines"
    tail -15 "$tmp/$name.err" | sed 's/^/    /' | tee -a "$tmp/lines"
  fi
done

python3 - "$tmp/reports" "$tmp/lines" "$out" "$svg" "$MODE" <<'PY'
import sys, datetime, os, html
reports, lines, out, svg, mode = sys.argv[1:6]
rows = []
for l in open(reports):
    f = l.rstrip("\n").split("\t")[1:]
    if len(f) < 10:
        continue
    prog, what, unit, n, g, nt, gt, nr, gr, st = f[:10]
    def num(x):
        try: return float(x)
        except ValueError: return 0.0
    rows.append(dict(prog=prog, what=what, unit=unit, n=num(n), g=num(g), nt=int(num(nt)),
                     gt=int(num(gt)), nr=num(nr) / 1024, gr=num(gr) / 1024, st=st))
def ratio(a, b):
    return f"{a / b:.2f}x" if b else "n/a"
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
with open(out, "w") as o:
    o.write(f"# libgmp compatibility report ({mode})\n\n")
    o.write(f"{now}, {os.cpu_count()} CPUs, `tools/compat.sh {mode}`. Each program natively and under "
            "`LD_PRELOAD=libgmp.so` in the same run; throughput ratio > 1 means libgmp is faster; "
            "OS threads are the program's peak.\n\n")
    o.write("| program | load | unit | native | libgmp | libgmp/native | OS threads native → libgmp "
            "| peak RSS MiB native → libgmp | checks |\n|---|---|---|---:|---:|---:|---|---|---|\n")
    for r in rows:
        o.write(f"| {r['prog']} | {r['what']} | {r['unit']} | {r['n']:g} | {r['g']:g} | {ratio(r['g'], r['n'])} "
                f"| {r['nt']} → {r['gt']} | {r['nr']:.0f} → {r['gr']:.0f} | {r['st']} |\n")
    o.write("\n## Result lines\n\n```\n" + open(lines).read() + "```\n")
# The chart: per row, three bars of libgmp/native (throughput, OS
# threads, RSS) on a log scale from 0.01x to 10x.
import math
W, rowh, left = 900, 54, 260
H = 70 + rowh * len(rows) + 40
def x(v):
    v = min(max(v, 0.01), 10.0)
    return left + (math.log10(v) + 2) / 3 * (W - left - 30)
s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
     f'<rect width="{W}" height="{H}" fill="white"/>',
     f'<text x="{W/2}" y="22" text-anchor="middle" font-size="15">libgmp / native ({html.escape(mode)}, {now})</text>']
for v in (0.01, 0.1, 1, 10):
    s.append(f'<line x1="{x(v):.1f}" y1="40" x2="{x(v):.1f}" y2="{H-30}" stroke="{"#444" if v == 1 else "#ddd"}"/>')
    s.append(f'<text x="{x(v):.1f}" y="{H-14}" text-anchor="middle">{v:g}x</text>')
colors = [("throughput", "#2b7bb9"), ("OS threads", "#e08a1e"), ("peak RSS", "#4a9a4a")]
for i, (lab, c) in enumerate(colors):
    s.append(f'<rect x="{left + i*150}" y="30" width="10" height="10" fill="{c}"/><text x="{left + i*150 + 14}" y="39">{lab}</text>')
for k, r in enumerate(rows):
    y0 = 50 + rowh * k
    s.append(f'<text x="{left-8}" y="{y0+24}" text-anchor="end">{html.escape(r["prog"] + ": " + r["what"])[:40]}</text>')
    vals = [r["g"] / r["n"] if r["n"] else 0, r["gt"] / r["nt"] if r["nt"] else 0, r["gr"] / r["nr"] if r["nr"] else 0]
    for i, (v, (lab, c)) in enumerate(zip(vals, colors)):
        if v <= 0:
            continue
        y = y0 + 8 + i * 14
        s.append(f'<rect x="{min(x(1), x(v)):.1f}" y="{y}" width="{abs(x(v) - x(1)):.1f}" height="12" fill="{c}"/>')
        s.append(f'<text x="{max(x(1), x(v)) + 4:.1f}" y="{y+10}" font-size="10">{v:.2f}x</text>')
s.append("</svg>")
open(svg, "w").write("\n".join(s) + "\n")
print(f"report: {out}\nchart: {svg}")
PY
exit $failed
