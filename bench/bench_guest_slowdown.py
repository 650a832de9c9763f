"""How much slower an exit-heavy guest runs with kvmtop attached, in one run.

The test guest (kvmtop.testing.kvm_guest.run_exit_loop: a vCPU thread in this process doing PIO
exits, each handled by a Python VMM) runs alternately without and with kvmtop's probes
attached, many short rounds (ABBA order, so drift falls on both sides alike). kvmtop is a
LiveSource in a child process, as it is in real use (its polls never hold this process's
GIL), polled once a second throughout; between rounds only its probes are attached or
detached. Each round gives a with/without ratio; the median ratio is the slowdown. On
this host every PIO exit costs kvmtop two probes (kvm_userspace_exit and the KVM_RUN
ioctl); where kvm_exit/kvm_entry fire, add those.

    sudo python bench/bench_guest_slowdown.py [--exits N] [--rounds R] [--classic]

--classic also times kvmtop with classic tracepoints only (as before raw tracepoints),
alternated within the same rounds.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import threading

from kvmtop.testing.kvm_guest import run_exit_loop

TARGET_PCT = 5.0
POLL_S = 1.0


def collector(conn, raw: bool, target_pid: int) -> None:
    """Child: a LiveSource polled every POLL_S; commands attach/detach its probes.

    ``detach`` answers with the userspace exits of ``target_pid`` counted since ``attach``."""
    from kvmtop.sources.collector import LiveSource

    src = LiveSource(raw=raw)
    try:
        src.open()
    except Exception as e:
        conn.send(("error", str(e)))
        return
    src.program.detach()
    lock, seen, stop = threading.Lock(), [0], threading.Event()

    def take() -> None:
        iv = src.next_interval()
        n = sum(s.count for t in iv.threads if t.pid == target_pid for s in t.userspace.values())
        with lock:
            seen[0] += n

    def poll() -> None:
        while not stop.wait(POLL_S):
            take()

    threading.Thread(target=poll, daemon=True).start()
    conn.send(("ready", src.program.probes, src.program.fallback))
    try:
        while True:
            cmd = conn.recv()
            if cmd == "attach":
                take()
                with lock:
                    seen[0] = 0
                src.program.attach()
                conn.send("ok")
            elif cmd == "detach":
                src.program.detach()
                take()
                with lock:
                    conn.send(seen[0])
            else:
                break
    finally:
        stop.set()
        src.close()


class Collector:
    def __init__(self, ctx, raw: bool):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=collector, args=(child, raw, os.getpid()), daemon=True)
        self.proc.start()
        msg = self.conn.recv()
        if msg[0] != "ready":
            raise SystemExit(f"bench_guest_slowdown: the collector failed: {msg[1]}")
        _, self.probes, self.fallback = msg

    def timed(self, exits: int) -> tuple[float, int]:
        self.conn.send("attach")
        self.conn.recv()
        try:
            secs = run_exit_loop(exits)
        finally:
            self.conn.send("detach")
            seen = self.conn.recv()
        return secs, seen

    def close(self) -> None:
        self.conn.send("quit")
        self.proc.join(30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exits", type=int, default=50_000, help="PIO exits per run")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--classic", action="store_true", help="also time classic tracepoints only")
    args = ap.parse_args(argv)
    if os.geteuid() != 0 or not os.path.exists("/dev/kvm"):
        print("bench_guest_slowdown: needs root and /dev/kvm", file=sys.stderr)
        return 1
    ctx = mp.get_context("spawn")
    variants = {"kvmtop": Collector(ctx, raw=True)}
    if args.classic:
        variants["kvmtop classic"] = Collector(ctx, raw=False)
    try:
        run_exit_loop(10_000)  # warm up
        times: dict[str, list[float]] = {"baseline": [], **{k: [] for k in variants}}
        ratios: dict[str, list[float]] = {k: [] for k in variants}
        for r in range(args.rounds):
            base = []
            order = [None, *variants] if r % 2 == 0 else [*variants, None]
            traced = {}
            for name in order:
                if name is None:
                    secs = run_exit_loop(args.exits)
                    base.append(secs)
                    times["baseline"].append(secs)
                    continue
                secs, seen = variants[name].timed(args.exits)
                traced[name] = secs
                times[name].append(secs)
                if seen != args.exits + 1:
                    print(f"guest_slowdown: warning: {name} counted {seen} userspace exits, "
                          f"expected {args.exits + 1}")
            for name, secs in traced.items():
                ratios[name].append(secs / base[0])
        per_exit = {k: statistics.median(v) / args.exits * 1e6 for k, v in times.items()}
        print(f"guest_slowdown baseline: {per_exit['baseline']:.2f} µs/exit (median of {args.rounds} rounds "
              f"of {args.exits} PIO exits, with and without kvmtop alternated)")
        for name, c in variants.items():
            raw = sorted(e.split(":")[1] for e, k in c.probes.items() if k == "raw_tracepoint")
            how = f"raw tracepoints: {', '.join(raw)}" if raw else "classic tracepoints only"
            if c.fallback:
                how += f"; {c.fallback}"
            ratio = statistics.median(ratios[name])
            q = statistics.quantiles(ratios[name], n=4) if len(ratios[name]) > 1 else [ratio] * 3
            print(f"guest_slowdown {name}: {per_exit[name]:.2f} µs/exit, median ratio {ratio:.3f} = "
                  f"{(ratio - 1) * 100:+.1f}% (quartiles {(q[0] - 1) * 100:+.1f}%..{(q[2] - 1) * 100:+.1f}%) "
                  f"(target ≤ {TARGET_PCT:.0f}%) [{how}]")
    finally:
        for c in variants.values():
            c.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
