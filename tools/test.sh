#!/usr/bin/env bash
# Build libgmp and run every test: unit (cmocka), integration (ordinary
# programs under LD_PRELOAD compared with their native run), and the unit
# tests again under ASan+UBSan. Exits non-zero on any failure.
#   tools/test.sh            (from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
jobs=$(nproc)
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$jobs"
echo "== unit tests"
ctest --test-dir build -L unit --output-on-failure -j "$jobs"
echo "== integration tests (each program natively, then under libgmp with GMP_MAXPROCS unset, 1, 2)"
# One at a time: several of them measure sleep accuracy and fairness.
ctest --test-dir build -L integration --output-on-failure -j 1
echo "== user-facing checks (configuration errors, fail-safe, gmp-run, install)"
ctest --test-dir build -L tools --output-on-failure
echo "== unit tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake -S . -B build-san -DCMAKE_BUILD_TYPE=Debug -DGMP_SANITIZE=ON >/dev/null
cmake --build build-san -j "$jobs"
ctest --test-dir build-san -L unit --output-on-failure -j "$jobs"
echo "== real programs, quick form (tests/compat: apache2, cpython, iperf2, mariadb, memcached, redis)"
# Each installs its Debian package if missing and runs a few seconds
# natively and under libgmp; the full form is tools/compat.sh full.
# COMPAT=0 skips this stage (a machine without apt access).
if [ "${COMPAT:-1}" != 0 ]; then
  tools/compat.sh quick build
fi
echo "== all tests passed"
