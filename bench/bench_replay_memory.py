"""Peak memory of replaying a day-long recording: the file is read as a stream, not loaded.

    python bench/bench_replay_memory.py [--hours 24] [--vms 2] [--vcpus 2] [--replay 3000] [--dir /tmp]

Writes (once, then reuses) demo recordings at 1 s of 1 h and of ``--hours`` with
RecordingWriter, then in a fresh process each: opens the recording for replay (the
indexing pass over the whole file), replays ``--replay`` intervals through a Feed from the
start, from the middle and up to the end (seeks, as the dashboard's seek keys do), and
prints that process's peak RSS (``resource.getrusage``). The same peak for 1 h and for the
day shows that memory does not grow with the recording. For comparison, the 1 h file is
also read whole into a list, as kvmtop did before (that RSS grows with the length).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time

from kvmtop.feed import Feed
from kvmtop.offline.recording import RecordingWriter
from kvmtop.offline.recording_reader import read_recording
from kvmtop.sources.demo import DemoSource
from kvmtop.sources.recording import RecordingSource

CYCLE = 600  # distinct demo intervals, repeated with advancing times


def generate(path: str, intervals: int, vms: int, vcpus: int) -> None:
    demo = DemoSource(vms=vms, max_vcpus=vcpus)
    cycle = [demo.next_interval() for _ in range(min(CYCLE, intervals))]
    t0 = cycle[0].time
    with RecordingWriter(path + ".part", {"source": "demo", "interval_s": 1.0}) as w:
        for i in range(intervals):
            w.write(dataclasses.replace(cycle[i % len(cycle)], time=t0 + i))
    os.replace(path + ".part", path)


def _rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_stream(path: str, replay: int) -> dict:
    t0 = time.perf_counter()
    source = RecordingSource(path)
    opened = time.perf_counter() - t0
    feed = Feed(source, speed=1e9)
    feed.open()
    n = len(source.intervals)
    t1 = time.perf_counter()
    built = 0
    try:
        for start in (0, n // 2, max(0, n - replay)):
            if start:
                feed.seek(start)
            for _ in range(min(replay, n - start)):
                if feed.next_snapshot() is None:
                    break
                built += 1
    finally:
        feed.close()
    return {"intervals": n, "open_s": opened, "replay_s": time.perf_counter() - t1, "snapshots": built,
            "peak_rss_kb": _rss_kb()}


def child_whole(path: str) -> dict:
    t0 = time.perf_counter()
    _meta, intervals, _warning = read_recording(path)
    return {"intervals": len(intervals), "open_s": time.perf_counter() - t0, "peak_rss_kb": _rss_kb()}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--vms", type=int, default=2)
    ap.add_argument("--vcpus", type=int, default=2)
    ap.add_argument("--replay", type=int, default=3000, help="intervals replayed at each of 3 positions")
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--child", nargs="+")
    args = ap.parse_args()
    if args.child:
        mode, path, *rest = args.child
        result = child_stream(path, int(rest[0])) if mode == "stream" else child_whole(path)
        print(json.dumps(result))
        return 0
    files = []
    for hours in (1.0, args.hours):
        n = int(hours * 3600)
        path = os.path.join(args.dir, f"kvmtop-bench-replay-{n}-{args.vms}x{args.vcpus}.kvmtop")
        if not os.path.exists(path):
            t0 = time.perf_counter()
            print(f"writing {path} ({n:,} intervals)...", flush=True)
            generate(path, n, args.vms, args.vcpus)
            print(f"  {os.path.getsize(path) / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s", flush=True)
        files.append((hours, path))
    print()
    print(f"{'recording':>10}  {'MiB':>6}  {'intervals':>9}  {'open s':>7}  {'replay s':>8}  {'peak RSS':>9}")
    peaks = []
    for hours, path in files:
        r = run_child("stream", path, str(args.replay))
        peaks.append(r["peak_rss_kb"] / 1024)
        print(f"{hours:>8g} h  {os.path.getsize(path) / 2**20:>6.0f}  {r['intervals']:>9,}  {r['open_s']:>7.1f}  "
              f"{r['replay_s']:>8.1f}  {peaks[-1]:>5.0f} MiB")
    whole = run_child("whole", files[0][1])
    print(f"\n1 h read whole into a list (before streaming): peak RSS {whole['peak_rss_kb'] / 1024:.0f} MiB")
    print(f"replay of {args.hours:g} h at 1 s ({args.vms} VMs x {args.vcpus} vCPUs, {3 * args.replay:,} intervals "
          f"built at 3 positions): peak RSS {peaks[1]:.0f} MiB ({peaks[1] - peaks[0]:+.0f} MiB vs 1 h)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
