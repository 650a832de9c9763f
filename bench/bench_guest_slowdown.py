"""How much slower an exit-heavy guest runs with kvmtop attached, in one run.

The test guest (tests/kvm_guest.run_exit_loop: a vCPU thread in this process doing PIO
exits, each handled by a Python VMM) runs alternately without and with a LiveSource
attached and polled once a second, several rounds; the ratio of the medians is the
slowdown. On this host every PIO exit costs kvmtop two probes (kvm_userspace_exit and
the KVM_RUN ioctl); where kvm_exit/kvm_entry fire, add those.

    sudo python bench/bench_guest_slowdown.py [--exits N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from kvm_guest import run_exit_loop  # noqa: E402

from kvmtop.collector import LiveSource  # noqa: E402

TARGET_PCT = 5.0


class Poller(threading.Thread):
    def __init__(self, src: LiveSource, every_s: float = 1.0):
        super().__init__(daemon=True)
        self.src, self.every_s, self.stop = src, every_s, threading.Event()
        self.intervals = []

    def run(self):
        while not self.stop.wait(self.every_s):
            self.intervals.append(self.src.next_interval())


def timed_with_collector(exits: int) -> tuple[float, int]:
    src = LiveSource()
    src.open()
    poller = Poller(src)
    poller.start()
    try:
        secs = run_exit_loop(exits)
    finally:
        poller.stop.set()
        poller.join()
        last = src.next_interval()
        src.close()
    seen = sum(s.count for iv in poller.intervals + [last] for t in iv.threads if t.pid == os.getpid()
               for s in t.userspace.values())
    return secs, seen


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exits", type=int, default=200_000, help="PIO exits per run")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)
    if os.geteuid() != 0 or not os.path.exists("/dev/kvm"):
        print("bench_guest_slowdown: needs root and /dev/kvm", file=sys.stderr)
        return 1
    run_exit_loop(10_000)  # warm up
    base, traced = [], []
    for _ in range(args.rounds):
        base.append(run_exit_loop(args.exits))
        secs, seen = timed_with_collector(args.exits)
        traced.append(secs)
        if seen != args.exits + 1:
            print(f"guest_slowdown: warning: the collector counted {seen} userspace exits, "
                  f"expected {args.exits + 1}")
    b, t = statistics.median(base), statistics.median(traced)
    pct = (t / b - 1) * 100
    print(f"guest_slowdown baseline: {b / args.exits * 1e6:.2f} µs/exit ({args.exits} PIO exits, median of "
          f"{args.rounds})")
    print(f"guest_slowdown with kvmtop: {t / args.exits * 1e6:.2f} µs/exit")
    print(f"guest_slowdown ratio: {t / b:.3f} = {pct:+.1f}% (target ≤ {TARGET_PCT:.0f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
