#!/usr/bin/env bash
# The first command of the README: install what is missing, build, and run
# the demo: a legacy thread-per-connection echo server at 1,000 and 10,000
# connections, natively and under libgmp, beside a hand-written epoll
# server (tools/c10k.sh); then the scheduler benchmarks, native vs libgmp
# vs Go (tools/bench.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
echo
# /bin/true, not the shell builtin: the preload must really be loaded.
echo "libgmp: $(GMP_VERBOSE=1 LD_PRELOAD="$PWD/build/libgmp.so" /bin/true 2>&1 | head -1)"
echo
echo "== C10K: thread-per-connection echo server, native threads vs libgmp vs epoll =="
tools/c10k.sh build
echo
echo "== scheduler benchmarks: native threads vs libgmp vs Go =="
REPEATS="${REPEATS:-3}" tools/bench.sh build
