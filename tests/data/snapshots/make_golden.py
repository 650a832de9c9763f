"""Write the golden files of tests/test_snapshot_golden.py: run with the kvmtop whose output
is the reference (the object builder before the columnar one, commit 9ebefa8), e.g.

    git archive 9ebefa8 | tar -x -C /tmp/ref && PYTHONPATH=/tmp/ref python tests/data/snapshots/make_golden.py

It records varied intervals (both ISAs with ties, unnamed processes, idle VMs, exited VMs,
events lost to full maps, request bits, exits in flight, counts without latencies) and the
demo's, then prints what a snapshot of each shows: JSON (plain and filtered), text, CSV and
the history series a screen draws.
"""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.filtering import ReasonFilter
from kvmtop.model import InFlight, Interval, Latency, Stat, ThreadInterval, VmIdentity
from kvmtop.offline.recording import RecordingWriter
from kvmtop.snapshot_csv import snapshot_to_csv
from kvmtop.snapshot_json import snapshot_to_json
from kvmtop.sources.demo import DemoSource
from kvmtop.text import render

HERE = Path(__file__).resolve().parent
FILTERS = (None, "HLT", "!EPT_VIOLATION,KVM_EXIT_IO", "KVM_EXIT_MMIO")


def random_intervals(seed: int, n: int = 10) -> list[Interval]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        threads, vms = [], {}
        for pid in rnd.sample(range(100, 130), rnd.randint(0, 6)):
            tids = [pid * 10 + k for k in range(rnd.randint(1, 4))]
            if rnd.random() < 0.8:
                vms[pid] = VmIdentity(pid, f"vm{pid}", rnd.choice([1, 2]),
                                      {t: k for k, t in enumerate(tids) if rnd.random() < 0.8},
                                      {t: f"CPU {k}/KVM" for k, t in enumerate(tids)}, exited=rnd.random() < 0.2)
            for t in tids:
                if rnd.random() < 0.2:
                    continue
                reasons = {}
                for _ in range(rnd.randint(0, 6)):
                    key = (rnd.choice([1, 2]), rnd.choice([1, 12, 30, 48, 0x7B, 0x80000021]))
                    vals = [rnd.randint(1, 10**7) for _ in range(rnd.randint(0, 5))]
                    reasons[key] = Stat(rnd.choice([len(vals), len(vals) + 1, 3, 0]), Latency.from_values(vals),
                                        rnd.choice([0, 0, 0, 2]))
                userspace = {c: Stat(rnd.randint(0, 4), Latency.from_values(
                    [rnd.randint(1, 10**6) for _ in range(rnd.randint(0, 3))]), rnd.choice([0, 0, 1]))
                    for c in rnd.sample([2, 6, 30, 0x80000004], rnd.randint(0, 3))}
                hypercalls = {c: Stat(rnd.randint(1, 3), Latency.from_values([rnd.randint(1, 10**5)]))
                              for c in rnd.sample([5, 10, 11], rnd.randint(0, 2))}
                requests = {b: rnd.randint(1, 5) for b in rnd.sample([0, 2, 14, 40], rnd.randint(0, 3))}
                lost = {b: rnd.randint(1, 3) for b in rnd.sample([2, 14, 50], rnd.randint(0, 1))}
                flight = InFlight(rnd.choice([2, 6]), rnd.randint(1, 5 * 10**9)) if rnd.random() < 0.3 else None
                threads.append(ThreadInterval(pid=pid, tid=t, vcpu_id=rnd.choice([None, t % 7]), reasons=reasons,
                                              userspace=userspace, hypercalls=hypercalls, requests=requests,
                                              requests_lost=lost, in_userspace=flight))
        out.append(Interval(time=1000.0 + i, interval_s=rnd.choice([0.5, 1.0, 2.0]), threads=tuple(threads),
                            vms=vms, kernel="6.18.0"))
    return out


def shown(intervals: list[Interval]) -> list[str]:
    """What every snapshot of these intervals shows, one line each."""
    builder = SnapshotBuilder(history_len=12)
    lines = []
    for iv in intervals:
        snap = builder.build(iv)
        for text in FILTERS:
            s = ReasonFilter.parse(text).apply(snap) if text else snap
            lines.append(snapshot_to_json(s))
            hist = [s.host.history, s.host.userspace_history, [s.host.reason_history(r.key) for r in s.host.reasons]]
            for vm in s.vms:
                hist.append([vm.pid, vm.history, vm.userspace_history, [vm.reason_history(r.key) for r in vm.reasons],
                             [(c.tid, c.history, c.userspace_history) for c in vm.vcpus],
                             vm.latency.to_json(), vm.userspace_latency.to_json(),
                             vm.top_reason.name if vm.top_reason else None, vm.top_reason_share, vm.exited,
                             vm.lost, [(v.in_userspace.code, v.in_userspace.ns) if v.in_userspace else None
                                       for v in vm.vcpus]])
            lines.append(json.dumps(hist))
        lines.append(json.dumps([render(snap), snapshot_to_csv(snap)]))
    return lines


def cases() -> dict[str, list[Interval]]:
    demo = DemoSource(vms=5, seed=3, churn=2)
    idle = DemoSource(vms=3, seed=1, exits=False)
    return {**{f"random{seed}": random_intervals(seed) for seed in range(3)},
            "demo": [demo.next_interval() for _ in range(4)], "demo_no_exits": [idle.next_interval() for _ in range(4)]}


def main() -> None:
    for name, intervals in cases().items():
        with RecordingWriter(str(HERE / f"{name}.kvmrec"), {"source": "golden"}) as w:
            for iv in intervals:
                w.write(iv)
        with gzip.open(HERE / f"{name}.expected.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(shown(intervals)) + "\n")


if __name__ == "__main__":
    main()
