"""What kvmtop's BPF programs cost per event, from the kernel's own accounting.

BPF_ENABLE_STATS makes the kernel time every program run (run_time_ns / run_cnt).

* Programs that fire on this host (kvm_userspace_exit, sys_enter_ioctl) are timed over
  real events: an exit-heavy guest (kvmtop.testing.kvm_guest.run_exit_loop, vCPU in a thread of
  this process) runs with the real program attached, once with the raw tracepoints kvmtop
  uses where it can and once with the classic ones only. sys_enter_ioctl also counts
  every other ioctl on the host, which leave at the KVM_RUN filter. BPF_ENABLE_STATS
  reads the clock twice around every run; an empty program attached alongside shows that
  floor, which every real-event figure includes. It times the programs only: what a
  classic tracepoint spends before (filling its trace record), which raw tracepoints
  save, is in bench_guest_slowdown.py's figures, not here.
* The exit/entry/hypercall handlers, whose tracepoints never fire here, are timed over
  many BPF_PROG_TEST_RUN calls of the -DKVMTOP_TEST build (same handler bodies; the
  wrappers read pid_tgid/time from ctx instead of calling two helpers).

    sudo python bench/bench_bpf_cost.py [--pairs N] [--exits N]
"""

from __future__ import annotations

import argparse
import os
import sys

from kvmtop.testing.bpf_testrun import TestProgram, bpf_stats, prog_stats

TARGET_PAIR_NS = 400


def _delta(fd: int, before: tuple[int, int]) -> tuple[int, int]:
    ns, cnt = prog_stats(fd)
    return ns - before[0], cnt - before[1]


def _line(label: str, ns: int, cnt: int, unit: str = "event", target: int | None = None) -> float:
    per = ns / cnt if cnt else float("nan")
    tail = f" (target ≤ {target})" if target else ""
    print(f"bpf_cost {label}: {per:.0f} ns/{unit}{tail}   [{cnt} runs]")
    return per


def synthetic(pairs: int) -> None:
    from kvmtop.bpf.program import KVM_RUN

    with TestProgram() as tp, bpf_stats():
        fds = tp.program.test_fds
        pid, tids = 1000, [1001 + i for i in range(4)]
        t = 1_000_000
        # steady state: the keys exist (as within an interval); 4 vCPUs, 8 reasons
        before = {name: prog_stats(fd) for name, fd in fds.items()}
        ex, en = tp.run["test_exit"], tp.run["test_entry"]
        for i in range(pairs):
            tid = tids[i & 3]
            ptid = (pid << 32) | tid
            ex(ptid, t, 1, 30 + (i & 7), 0, tid)
            en(ptid, t + 700 + (i & 1023))
            t += 2000
        d_exit, d_entry = _delta(fds["test_exit"], before["test_exit"]), _delta(fds["test_entry"], before["test_entry"])
        e = _line("exit", *d_exit)
        n = _line("entry", *d_entry)
        print(f"bpf_cost exit+entry: {e + n:.0f} ns/pair (target ≤ {TARGET_PAIR_NS})")

        # with two request bits set at each exit
        before = {name: prog_stats(fd) for name, fd in fds.items()}
        for i in range(pairs // 4):
            ptid = (pid << 32) | tids[i & 3]
            ex(ptid, t, 1, 30, (1 << 0) | (1 << 14), 0)
            en(ptid, t + 700)
            t += 2000
        _line("exit with 2 request bits", *_delta(fds["test_exit"], before["test_exit"]))

        # hypercall between exit and entry, and a userspace round trip
        before = {name: prog_stats(fd) for name, fd in fds.items()}
        hc, ue, io = tp.run["test_hypercall"], tp.run["test_userspace_exit"], tp.run["test_ioctl"]
        for i in range(pairs // 4):
            ptid = (pid << 32) | tids[i & 3]
            ex(ptid, t, 1, 18, 0, 0)
            hc(ptid, t + 10, 5)
            en(ptid, t + 900)
            ue(ptid, t + 1000, 2, 0)
            io(ptid, t + 5000, KVM_RUN)
            t += 10_000
        _line("hypercall", *_delta(fds["test_hypercall"], before["test_hypercall"]))
        _line("entry with hypercall", *_delta(fds["test_entry"], before["test_entry"]))
        _line("userspace_exit (test run)", *_delta(fds["test_userspace_exit"], before["test_userspace_exit"]))
        _line("ioctl KVM_RUN (test run)", *_delta(fds["test_ioctl"], before["test_ioctl"]))


FLOOR_PROGRAM = b"RAW_TRACEPOINT_PROBE(kvm_userspace_exit) { return 0; }"


def _short(name: str) -> str:
    if name.startswith("raw_tracepoint__"):
        return f"{name[len('raw_tracepoint__'):]} raw"
    return name[len("tracepoint__"):].split("__", 1)[1]


def real(exits: int, raw: bool) -> None:
    from bcc import BPF

    from kvmtop.bpf.program import RAW, Program
    from kvmtop.testing.kvm_guest import run_exit_loop

    p = Program(pid=None, raw=raw).load()
    floor = BPF(text=FLOOR_PROGRAM)
    try:
        fds = p.prog_fds()
        floor_fd = next(iter(floor.funcs.values())).fd
        with bpf_stats():
            before = {name: prog_stats(fd) for name, fd in fds.items()}
            floor_before = prog_stats(floor_fd)
            secs = run_exit_loop(exits)
            after = {name: _delta(fd, before[name]) for name, fd in fds.items()}
            floor_after = _delta(floor_fd, floor_before)
        label = "raw" if p.probes.get("kvm:kvm_userspace_exit") == RAW else "classic"
        if p.fallback:
            print(f"bpf_cost: {p.fallback}")
        print(f"bpf_cost guest ({label} tracepoints where possible): {exits} PIO exits in {secs:.2f} s "
              f"({secs / exits * 1e6:.1f} µs/exit incl. the Python VMM)")
        per = {}
        for name, (ns, cnt) in sorted(after.items()):
            if cnt:
                per[name] = _line(f"{_short(name)} (real events)", ns, cnt)
            else:
                print(f"bpf_cost {_short(name)} (real events): never fired here")
        kvm_run = [v for n, v in per.items() if n.endswith("sys_enter_ioctl")]
        us = [v for n, v in per.items() if n.endswith("kvm_userspace_exit")]
        if us and kvm_run:
            print(f"bpf_cost userspace round trip, {label} (kvm_userspace_exit + KVM_RUN ioctl): "
                  f"{us[0] + kvm_run[0]:.0f} ns/round trip (target ≤ {TARGET_PAIR_NS})")
        _line("stats floor (empty program on kvm_userspace_exit, in every figure above)", *floor_after,
              unit="run")
    finally:
        floor.cleanup()
        p.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=200_000, help="synthetic exit+entry pairs")
    ap.add_argument("--exits", type=int, default=100_000, help="real PIO exits of the test guest")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_bpf_cost: needs root", file=sys.stderr)
        return 1
    synthetic(args.pairs)
    if os.path.exists("/dev/kvm"):
        real(args.exits, raw=False)
        real(args.exits, raw=True)
    else:
        print("bpf_cost real events: skipped, /dev/kvm is absent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
