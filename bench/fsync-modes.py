#!/usr/bin/env python3
"""What one durable append of a journal batch costs, by the way it is made durable (issue 20).

Appends of 5,000 bytes (a node's batch of about 15 writes) to a 64 MiB file written with zeros
first, one after the other, each made durable before the next:

- buffered: pwrite, then fdatasync (what fjall's journal does, on a file already written);
- dsync: pwrite on a descriptor opened O_DSYNC;
- direct: pwrite with O_DIRECT (4 KiB-aligned buffer and length), then fdatasync;
- direct_dsync: pwrite with O_DIRECT | O_DSYNC.

Prints appends per second, p50 latency, and CPU time per append (this process, user + system).

    python3 bench/fsync-modes.py [MODES...] [--dir D] [--count N]
"""
import argparse
import mmap
import os
import resource
import time

p = argparse.ArgumentParser()
p.add_argument("modes", nargs="*", default=["buffered", "dsync", "direct", "direct_dsync"])
p.add_argument("--dir", default=".")
p.add_argument("--count", type=int, default=20000)
a = p.parse_args()

SIZE = 64 << 20
BATCH = 5000
path = os.path.join(a.dir, "fsync-modes.jnl")
fd = os.open(path, os.O_CREAT | os.O_TRUNC | os.O_WRONLY)
os.pwrite(fd, b"\0" * SIZE, 0)
os.fsync(fd)
os.close(fd)


def run(mode):
    flags = os.O_WRONLY
    if mode.startswith("direct"):
        flags |= os.O_DIRECT
    if mode.endswith("dsync"):
        flags |= os.O_DSYNC
    fd = os.open(path, flags)
    aligned = mode.startswith("direct")
    length = (BATCH + 4095) // 4096 * 4096 if aligned else BATCH
    buf = mmap.mmap(-1, length)
    buf.write(b"x" * length)
    pos, lat = 0, []
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
    for _ in range(a.count):
        t = time.perf_counter()
        os.pwrite(fd, buf, pos)
        if mode in ("buffered", "direct"):
            os.fdatasync(fd)
        lat.append(time.perf_counter() - t)
        pos = 0 if pos + 2 * length > SIZE else pos + length
    r1, el = resource.getrusage(resource.RUSAGE_SELF), time.time() - t0
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    lat.sort()
    print(
        f"{mode:13s} appends/s={a.count / el:.0f} p50={lat[len(lat) // 2] * 1e6:.0f}us "
        f"cpu/append={cpu / a.count * 1e6:.0f}us"
    )
    os.close(fd)


for m in a.modes:
    run(m)
os.unlink(path)
