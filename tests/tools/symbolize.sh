#!/usr/bin/env bash
# The out-of-process symboliser (tools/symbolize.c): symbolize_test's own
# checks on a PIE child of itself, then children built here of the other
# kinds the dumper meets: a non-PIE program, a stripped one (names from
# .dynsym only), and programs whose file was deleted or replaced while
# they run (named right, or by file offset: never after the symbols of
# the file now at that path). Those run once more as "nobody" when we are
# root: root opens the mapped file itself through /proc/PID/map_files, an
# ordinary user only by its path. Usage: symbolize.sh BUILD_DIR
set -u
bin=$1/tests/tools/symbolize_test
tmp=$(mktemp -d)
pids=()
cleanup() {
  # Only the children this script started, by pid.
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fails=0
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1"; fails=$((fails + 1)); }

# ---- symbolize_test's own checks ------------------------------------------
timeout 50 "$bin" > "$tmp/self.out" 2>&1
rc=$?
cat "$tmp/self.out"
if [ $rc -eq 0 ] && grep -q '^PASS' "$tmp/self.out" && ! grep -q '^FAIL' "$tmp/self.out"; then
  pass "symbolize_test (exit $rc)"
else
  fail "symbolize_test (exit $rc)"
fi

# ---- children of other kinds -----------------------------------------------
cat > "$tmp/kid.c" <<'C'
#include <stdio.h>
#include <unistd.h>
static __attribute__((noinline, noclone)) unsigned np_static(unsigned x) {
  unsigned h = 1; for (unsigned i = 0; i < x; i++) h = h * 31 + i; return h;
}
__attribute__((noinline)) unsigned np_global(unsigned x) {
  unsigned h = 7; for (unsigned i = 0; i < x; i++) h = (h ^ i) * 13; return h;
}
int main(void) {
  printf("static %p\nglobal %p\n", (void *)np_static, (void *)np_global);
  fflush(stdout);
  alarm(30);
  for (;;) pause();
}
C
cc=${CC:-cc}
build() { "$cc" -O2 -w "$@"; }
if ! build -no-pie -g "$tmp/kid.c" -o "$tmp/nopie" ||
   ! build -no-pie -g -Dnp_static=wrong_static -Dnp_global=wrong_global "$tmp/kid.c" -o "$tmp/other" ||
   ! build -fPIE -pie -rdynamic -s "$tmp/kid.c" -o "$tmp/stripped"; then
  fail "cannot compile the test children with $cc"
  exit 1
fi

# start NAME CMD...: run CMD in the background with its addresses in
# $tmp/NAME.addr; sets kid (its pid), s and g (the two addresses).
start() {
  local name=$1
  shift
  "$@" > "$tmp/$name.addr" 2>/dev/null &
  kid=$!
  pids+=("$kid")
  for _ in $(seq 100); do
    [ "$(grep -c . "$tmp/$name.addr")" -ge 2 ] && break
    sleep 0.05
  done
  s=$(awk '$1 == "static" { print $2 }' "$tmp/$name.addr")
  g=$(awk '$1 == "global" { print $2 }' "$tmp/$name.addr")
  [ -n "$s" ] && [ -n "$g" ]
}
plus5() { printf '0x%x' $(($1 + 5)); }
# expect WHAT WANT [RUNAS...]: gmp_sym_name of $kid at static+5 (or $addr)
# must print exactly WANT ("RC TEXT"), or match it as a regex (=~ ...).
lookup() { "$@" "$bin" name "$kid" "$addr"; }
expect() {
  local what=$1 want=$2
  shift 2
  local got ok=0
  got=$(lookup "$@")
  if [[ $want == "=~ "* ]]; then
    [[ $got =~ ${want#=~ } ]] && ok=1
  else
    [ "$got" = "$want" ] && ok=1
  fi
  if [ $ok = 1 ]; then pass "$what: $got"; else fail "$what: got '$got', want '${want#=~ }'"; fi
}

if start nopie "$tmp/nopie"; then
  addr=$(plus5 "$s"); expect "non-PIE static" "1 np_static+0x5 (nopie)"
  addr=$(plus5 "$g"); expect "non-PIE global" "1 np_global+0x5 (nopie)"
else
  fail "non-PIE child did not start"
fi

if start stripped "$tmp/stripped"; then
  addr=$(plus5 "$g"); expect "stripped, global from .dynsym" "1 np_global+0x5 (stripped)"
  addr=$(plus5 "$s"); expect "stripped, static by file offset" "=~ ^0 \? \(stripped\+0x[0-9a-f]+\)$"
else
  fail "stripped child did not start"
fi

# Deleted under the running program.
cp "$tmp/nopie" "$tmp/gone"
if start gone "$tmp/gone"; then
  rm -f "$tmp/gone"
  addr=$(plus5 "$s")
  expect "deleted file" "=~ ^(1 np_static\+0x5 \(gone\)|0 \? \(gone\+0x[0-9a-f]+\))$"
else
  fail "child 'gone' did not start"
fi

# Replaced (rebuilt) under the running program: the path now names the
# same code under other names (wrong_static where np_static was).
replaced() {
  local what=$1
  shift
  cp "$tmp/nopie" "$tmp/swap"
  chmod 755 "$tmp/swap"
  if start swap "$@" "$tmp/swap"; then
    mv -f "$tmp/other.copy" "$tmp/swap"
    addr=$(plus5 "$s")
    expect "$what" "=~ ^(1 np_static\+0x5 \(swap\)|0 \? \(swap\+0x[0-9a-f]+\))$" "$@"
  else
    fail "child 'swap' did not start ($what)"
  fi
}
cp "$tmp/other" "$tmp/other.copy"
replaced "replaced file"
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
  nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
  chmod 755 "$tmp"
  if "${nobody[@]}" test -x "$bin"; then
    cp "$tmp/other" "$tmp/other.copy"
    replaced "replaced file, as nobody" "${nobody[@]}"
    cp "$tmp/nopie" "$tmp/gone"
    chmod 755 "$tmp/gone"
    if start gone "${nobody[@]}" "$tmp/gone"; then
      rm -f "$tmp/gone"
      addr=$(plus5 "$s")
      expect "deleted file, as nobody" "=~ ^0 \? \(gone\+0x[0-9a-f]+\)$" "${nobody[@]}"
    else
      fail "child 'gone' did not start as nobody"
    fi
    # The same user's unchanged file by path, without map_files.
    cp "$tmp/nopie" "$tmp/plain"
    chmod 755 "$tmp/plain"
    if start plain "${nobody[@]}" "$tmp/plain"; then
      addr=$(plus5 "$s"); expect "as nobody, by path" "1 np_static+0x5 (plain)" "${nobody[@]}"
    else
      fail "child 'plain' did not start as nobody"
    fi
  else
    echo "SKIP as nobody: $bin not reachable by uid 65534"
  fi
fi

[ $fails -eq 0 ] && echo "symbolize: all passed" || echo "symbolize: $fails failed"
[ $fails -eq 0 ]
