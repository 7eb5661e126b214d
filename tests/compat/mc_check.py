#!/usr/bin/env python3
"""memcached data check: many connections open at once, random keys and
values (up to ~100 KiB), set through one connection, read back through
another (single and multi-get), every byte compared.
usage: mc_check.py PORT [CONNS] [KEYS] [SEED]; prints one summary line,
exits 1 on any mismatch or protocol error."""
import random
import socket
import sys
import threading

port = int(sys.argv[1])
nconn = int(sys.argv[2]) if len(sys.argv) > 2 else 200
nkeys = int(sys.argv[3]) if len(sys.argv) > 3 else 3000
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 7
NWORK = 16
rng = random.Random(seed)


SIZES = [0, 1, 7, 100, 1000, 1500, 4096, 8000, 16384, 30000, 65536, 102400]
ROUND = 1500  # keys per round: about 20 MiB, well inside -m 64 (no eviction)


def value_for(i):
    r = random.Random(seed * 1000003 + i)
    size = r.choice(SIZES) if r.random() < 0.5 else r.randint(0, 4096)
    return r.randbytes(size)


keys = ["k%d_%d" % (seed, i) for i in range(nkeys)]
vals = [value_for(i) for i in range(nkeys)]
flags = [rng.randint(0, 65535) for _ in range(nkeys)]

conns = []
for _ in range(nconn):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    conns.append((s, s.makefile("rb")))

errors = []
lock = threading.Lock()
stats = {"set": 0, "get": 0, "bytes": 0}


def err(msg):
    with lock:
        if len(errors) < 10:
            errors.append(msg)


def do_set(c, i):
    s, f = c
    s.sendall(b"set %s %d 0 %d\r\n" % (keys[i].encode(), flags[i], len(vals[i])) + vals[i] + b"\r\n")
    line = f.readline()
    if line != b"STORED\r\n":
        err("set %s: %r" % (keys[i], line[:80]))


def do_get(c, idx):
    s, f = c
    s.sendall(b"get " + b" ".join(keys[i].encode() for i in idx) + b"\r\n")
    got = {}
    while True:
        line = f.readline()
        if line == b"END\r\n":
            break
        parts = line.split()
        if len(parts) != 4 or parts[0] != b"VALUE":
            err("get: bad line %r" % line[:80])
            return
        n = int(parts[3])
        data = f.read(n + 2)
        if len(data) != n + 2 or data[-2:] != b"\r\n":
            err("get %s: short data" % parts[1])
            return
        got[parts[1].decode()] = (int(parts[2]), data[:-2])
    for i in idx:
        if keys[i] not in got:
            err("get %s: missing" % keys[i])
        elif got[keys[i]] != (flags[i], vals[i]):
            fl, d = got[keys[i]]
            first = next((j for j in range(min(len(d), len(vals[i]))) if d[j] != vals[i][j]), None)
            err("get %s: differs (flags %d/%d, len %d/%d, first diff at %s)" %
                (keys[i], fl, flags[i], len(d), len(vals[i]), first))
        else:
            with lock:
                stats["bytes"] += len(vals[i])


def worker(w, phase, lo, hi):
    try:
        mine = [c for j, c in enumerate(conns) if j % NWORK == w]
        ks = [i for i in range(lo, hi) if i % NWORK == w]
        r = random.Random(seed + w + phase)
        if phase == 0:
            for n, i in enumerate(ks):
                do_set(mine[n % len(mine)], i)
        else:
            r.shuffle(ks)
            n = 0
            while ks:
                take = r.choice([1, 1, 1, 4, 16])
                batch, ks = ks[:take], ks[take:]
                # a different connection than the one that set them
                do_get(mine[(n * 7 + 3) % len(mine)], batch)
                n += 1
    except Exception as e:  # timeouts, resets
        err("worker %d phase %d: %r" % (w, phase, e))


for lo in range(0, nkeys, ROUND):
    hi = min(nkeys, lo + ROUND)
    for phase in (0, 1):
        ts = [threading.Thread(target=worker, args=(w, phase, lo, hi)) for w in range(NWORK)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if errors:
            break
    if errors:
        break

# every connection still answers
for s, f in conns:
    try:
        s.sendall(b"version\r\n")
        if not f.readline().startswith(b"VERSION"):
            err("a connection stopped answering")
            break
    except Exception as e:
        err("version: %r" % e)
        break
for s, f in conns:
    s.close()

total = sum(len(v) for v in vals)
if errors:
    print("mc_check: FAIL: " + "; ".join(errors))
    sys.exit(1)
print("mc_check: %d connections, %d keys, %.1f MiB, every byte OK" % (nconn, nkeys, total / 1048576))
