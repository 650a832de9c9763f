"""Milliseconds per poll of the live source with many map keys.

The maps of a real LiveSource are filled from Python (one batch update per map) with a
realistic shape: vCPU threads with 25 (kind, code) keys each (20 exit reasons, 3
userspace codes, 2 hypercalls), each key's events in 2 latency buckets (one `stats` row
per key and bucket) and its pairing state (4 request bits counted): 51 map rows per
thread. The threads are real idle threads of the bench named as QEMU names vCPUs ("CPU 3/KVM"):
the collector names them once, as on a real host (threads that do not exist are looked for
in /proc at every poll). --keys counts all map rows. Then one poll is timed two ways: ``drain`` (the `stats`
map swapped for a new one and read in batches into numpy, the `lost` half drained) and
``next_interval`` (that, with the settle time, pairing state, grouping, identity, status).
The read map's slot gets a new map in a thread after the read; the bench lets that finish
before it times the next poll, as the interval between two polls does, and shows its time.
Repeated, best and median shown.

    sudo python bench/bench_poll.py [--keys 10000 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import statistics
import sys
import threading
import time

import numpy as np

from kvmtop import histogram
from kvmtop.bpf import maps
from kvmtop.bpf.program import KIND_HYPERCALL, KIND_USERSPACE, KIND_VMX
from kvmtop.sources.collector import LiveSource

TARGET_MS = {10_000: 20, 100_000: 100}  # 100,000 rows: issue 13 (was 200)
CODES_PER_THREAD = 25
PR_SET_NAME = 15


@contextlib.contextmanager
def vcpu_threads(count: int):
    """``count`` idle threads of this process named as QEMU names its vCPUs ("CPU 3/KVM"), so that
    the collector names them as on a real host (once, not at every poll); yields their tids."""
    libc = ctypes.CDLL(None, use_errno=True)
    stop, tids, lock = threading.Event(), [], threading.Lock()

    def idle(i: int) -> None:
        libc.prctl(PR_SET_NAME, f"CPU {i}/KVM".encode(), 0, 0, 0)
        with lock:
            tids.append(threading.get_native_id())
        stop.wait()

    threads = [threading.Thread(target=idle, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    try:
        while len(tids) < count:  # (each appends before it waits)
            time.sleep(0.01)
        yield np.array(sorted(tids), np.uint32)
    finally:
        stop.set()
        for t in threads:
            t.join()


def fill(src: LiveSource, n: int, pid: int, thread_ids: np.ndarray) -> None:
    """n (thread, kind, code) keys, two `stats` rows each, one pairing state per thread."""
    idx = np.arange(n)
    tid = thread_ids[idx // CODES_PER_THREAD]
    slot = idx % CODES_PER_THREAD
    kind = np.where(slot < 20, KIND_VMX, np.where(slot < 23, KIND_USERSPACE, KIND_HYPERCALL)).astype(np.uint8)
    code = np.where(slot < 20, slot * 3, slot).astype(np.uint32)

    sk = np.zeros(2 * n, maps.STAT_KEY)
    sv = np.zeros(2 * n, maps.STAT_VAL)
    for j, value in enumerate((400, 1500)):
        part = sk[j * n:(j + 1) * n]
        part["pid"], part["tid"], part["code"], part["kind"] = pid, tid, code, kind
        part["bucket"] = histogram.bucket_index(value)
        v = sv[j * n:(j + 1) * n]
        v["count"], v["sum_ns"], v["min_ns"], v["max_ns"] = 2, 2 * value, value, value

    r = src._readers
    r["stats"].fd = src.program.stats_fd()  # the map the BPF program writes now: the next poll reads it
    idx, states = r["slots"].read()  # the threads' pairing state: request counts are cumulative
    mine, first = np.unique(thread_ids % len(idx), return_index=True)  # (a thread whose slot is taken: none)
    states["tid"][mine], states["pid"][mine] = thread_ids[first], pid
    for bit in (0, 3, 14, 40):
        states["req"][mine, bit] += 3
    r["stats"].update(sk, sv)
    r["slots"].update(idx[mine], states[mine])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keys", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_poll: needs root", file=sys.stderr)
        return 1
    pid = os.getpid()  # a live process, so identity resolves; the kernel filter keeps real events out
    for total in args.keys:
        n = round(total * CODES_PER_THREAD / (2 * CODES_PER_THREAD + 1))  # (thread, kind, code) keys
        src = LiveSource(pid=pid, max_keys=n)
        src.open()
        try:
            with vcpu_threads(-(-n // CODES_PER_THREAD)) as tids:
                drain_ms, renew_ms, poll_ms = measure(src, n, pid, tids, args.repeat)
            target = TARGET_MS.get(total)
            tail = f" (target ≤ {target})" if target else ""
            rows = 2 * n + len(tids)
            print(f"poll drain {rows} map rows ({n} keys): {statistics.median(drain_ms):.1f} ms/poll "
                  f"median, {min(drain_ms):.1f} best{tail}")
            print(f"poll stats map renewal after its read (in a thread, off the poll's path): "
                  f"{statistics.median(renew_ms):.1f} ms median")
            print(f"poll next_interval {rows} map rows ({n} keys): {statistics.median(poll_ms):.1f} ms/poll "
                  f"median, {min(poll_ms):.1f} best{tail}")
        finally:
            src.close()
    return 0


def measure(src: LiveSource, n: int, pid: int, tids: np.ndarray, repeat: int) -> tuple[list, list, list]:
    """(drain ms, stats renewal ms, next_interval ms) of ``repeat`` polls of n keys."""
    drain_ms, poll_ms, renew_ms = [], [], []
    for _ in range(repeat):
        fill(src, n, pid, tids)
        t = time.perf_counter()
        old = src.program.flip_epoch()  # as a poll does, without its settle time
        src._readers["stats"].fd = src.program.stats_fd(old)
        src._readers["stats"].read()
        src.program.release_stats(old)
        src._readers["lost"].drain_epoch(old)
        drain_ms.append((time.perf_counter() - t) * 1000)
        fill(src, n, pid, tids)
        src.program.stats.ready()  # (what an interval between two polls leaves done)
        renew_ms.append(src.program.stats.renew_s * 1000)
        t = time.perf_counter()
        iv = src.next_interval()
        poll_ms.append((time.perf_counter() - t) * 1000)
        assert sum(len(t.reasons) + len(t.userspace) + len(t.hypercalls) for t in iv.threads) == n
        assert len(iv.vms[pid].vcpu_index) == len(tids)  # named as vCPUs
    return drain_ms, renew_ms, poll_ms

if __name__ == "__main__":
    sys.exit(main())
