#!/usr/bin/env python3
"""fdatasync of one journal-like file, from one thread or several at once (issue 20).

Each thread appends 5,000 bytes (the size of a node's batch of about 15 writes) under a lock, then
calls fdatasync without it, so with two threads or more the fsyncs overlap, as they would if the
store synced its journal without fjall's lock. Prints fsyncs per second, their latency and the
CPU time per fsync (user and system, this process).

    python3 bench/fsync-overlap.py [THREADS...] [--seconds S] [--written] [--dir D]

--written first fills the file with zeros (as a journal whose blocks are allocated and written);
by default it is sparse (set_len, as fjall makes its journals).
"""
import argparse
import os
import resource
import threading
import time

p = argparse.ArgumentParser()
p.add_argument("threads", nargs="*", type=int, default=[1, 2, 1, 2])
p.add_argument("--seconds", type=float, default=4)
p.add_argument("--written", action="store_true")
p.add_argument("--dir", default=".")
a = p.parse_args()

for n in a.threads:
    path = os.path.join(a.dir, "fsync-overlap.jnl")
    fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY)
    if a.written:
        os.pwrite(fd, b"\0" * (64 << 20), 0)
    else:
        os.ftruncate(fd, 64 << 20)
    os.fsync(fd)
    pos, lock, lat = 0, threading.Lock(), []
    stop = time.time() + a.seconds

    def worker():
        global pos
        buf = b"x" * 5000
        while time.time() < stop:
            with lock:
                os.pwrite(fd, buf, pos)
                pos += len(buf)
            t = time.perf_counter()
            os.fdatasync(fd)
            lat.append(time.perf_counter() - t)

    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    ts = [threading.Thread(target=worker) for _ in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    r1, el = resource.getrusage(resource.RUSAGE_SELF), time.time() - t0
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    lat.sort()
    print(
        f"threads={n} {'written' if a.written else 'sparse'} fsyncs/s={len(lat) / el:.0f} "
        f"p50={lat[len(lat) // 2] * 1e6:.0f}us p99={lat[int(len(lat) * 0.99)] * 1e6:.0f}us "
        f"cpu/fsync={cpu / len(lat) * 1e6:.0f}us"
    )
    os.close(fd)
    os.unlink(path)
