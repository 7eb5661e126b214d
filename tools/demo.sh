#!/usr/bin/env bash
# The first command of the README: install what is missing, build, and run
# the demo. Today the demo is the benchmark suite, side by side: native
# threads, libgmp, and Go (issue 3 adds the thread-per-connection server).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
echo
echo "libgmp: $(GMP_VERBOSE=1 LD_PRELOAD="$PWD/build/libgmp.so" true 2>&1 | head -1)"
echo
REPEATS="${REPEATS:-3}" tools/bench.sh build
