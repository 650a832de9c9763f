"""What kvmtop's BPF programs cost per event, from the kernel's own accounting.

BPF_ENABLE_STATS makes the kernel time every program run (run_time_ns / run_cnt); that
timing itself reads the clock twice around each run (the "stats floor", ~50 ns here, in
every figure below; an empty program shows it).

* The exit/entry/hypercall handlers, whose tracepoints never fire on this host, are timed
  over many BPF_PROG_TEST_RUN calls of the -DKVMTOP_TEST build (same handler bodies; the
  wrappers read pid_tgid/time from ctx instead of calling two helpers), in steady state
  (4 vCPU threads, 8 reasons, latencies over a dozen buckets), for each scenario: a plain
  exit -> entry pair, with 2 request bits set at the exit, with a hypercall made during
  the exit, and with both (the target's scenario).
* Programs that fire here (kvm_userspace_exit, sys_enter_ioctl, and kvm_pio, which the
  I/O panel's probes count only while a screen shows them or with --io) are timed over real
  events: an exit-heavy guest (kvmtop.testing.kvm_guest.run_exit_loop, vCPU in a thread of
  this process) with the real program attached, with classic tracepoints and with the
  raw ones kvmtop uses where it can. sys_enter_ioctl also counts every other ioctl on the
  host, which leave at the KVM_RUN filter. What a classic tracepoint spends before the
  program (filling its trace record) is not in these figures: bench_guest_slowdown.py's are
  the whole cost.

* What the parts cost on this host, each in its own tiny program on kvm_userspace_exit during
  the same real exits: reading the thread id, reading the clock, and updating a hash row of a
  20-byte key (as kvmtop's `stats`), each less an empty program. A round trip needs the first
  two at both of its probes, whatever tool times it; the row update is what aggregating in
  the kernel adds.

``--baseline FILE`` times another kvmtop.bpf.c too (e.g. ``git show
main:kvmtop/bpf/kvmtop.bpf.c > /tmp/base.bpf.c``), interleaved with this one in the same
rounds, and prints both.

    sudo python bench/bench_bpf_cost.py [--events N] [--rounds R] [--exits N] [--baseline FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys

from kvmtop.testing.bpf_testrun import TestProgram, bpf_stats, prog_stats

TARGET_PAIR_NS = 250
KVM_RUN = 0xAE80
FLOOR_PROGRAM = b"RAW_TRACEPOINT_PROBE(kvm_userspace_exit) { return 0; }"
EMPTY_TEST_PROGRAM = b"int test_empty(struct bpf_raw_tracepoint_args *ctx) { return 0; }"


def _per_run(fds: dict[str, int], names, fn, n: int) -> float:
    """Sum over ``names`` of the mean run time of each program while ``fn(i)`` runs n times."""
    before = {k: prog_stats(fds[k]) for k in names}
    for i in range(n):
        fn(i)
    total = 0.0
    for k in names:
        ns, cnt = prog_stats(fds[k])
        runs = cnt - before[k][1]
        total += (ns - before[k][0]) / runs if runs else float("nan")
    return total


SCENARIOS = ("exit+entry", "exit (2 request bits)+entry", "exit+entry, hypercall pending",
             "exit (2 request bits)+entry, hypercall pending", "hypercall", "userspace_exit+KVM_RUN ioctl (test runs)")


def scenario(tp: TestProgram, name: str, n: int) -> float:
    """ns per event (or pair) of one scenario, over n runs of one loaded test build."""
    fds, run = tp.program.test_fds, tp.run
    ex, en, hc = run["test_exit"], run["test_entry"], run["test_hypercall"]
    ue, io = run["test_userspace_exit"], run["test_ioctl"]
    pid, tids = 1000, [1001 + i for i in range(4)]
    clock = [1_000_000]
    reqs = (1 << 0) | (1 << 14) if "request bits" in name else 0
    hypercall = "hypercall" in name

    def pair(i: int) -> None:
        tid = tids[i & 3]
        ptid, t = (pid << 32) | tid, clock[0]
        ex(ptid, t, 1, 30 + (i >> 2 & 7), reqs, tid)
        if hypercall:
            hc(ptid, t + 10, 5)
        en(ptid, t + 700 + (i & 1023))
        clock[0] += 20_000

    def round_trip(i: int) -> None:
        ptid, t = (pid << 32) | tids[i & 3], clock[0]
        ue(ptid, t, 2, 0)
        io(ptid, t + 5000 + (i & 1023) * 4, KVM_RUN)
        clock[0] += 20_000

    if name.startswith("userspace"):
        return _per_run(fds, ("test_userspace_exit", "test_ioctl"), round_trip, n)
    return _per_run(fds, ("test_hypercall",) if name == "hypercall" else ("test_exit", "test_entry"), pair, n)


def synthetic(events: int, rounds: int, baseline: str | None) -> None:
    from bcc import BPF

    from kvmtop.testing.bpf_testrun import Runner

    builds = {"kvmtop": TestProgram()}
    if baseline:  # the same features as kvmtop's test build (a test_io the source has must build)
        builds["baseline"] = TestProgram(source=baseline)
    empty = BPF(text=EMPTY_TEST_PROGRAM)
    empty_fd = empty.load_func(b"test_empty", BPF.RAW_TRACEPOINT).fd
    empty_run = Runner(empty_fd)
    results: dict[str, dict[str, list[float]]] = {k: {s: [] for s in SCENARIOS} for k in builds}
    floor: list[float] = []
    try:
        empty_run = Runner(empty_fd)
        with bpf_stats():
            for r in range(rounds):  # interleaved: each scenario on each build, in turn
                for name in SCENARIOS:
                    for build in (builds if r % 2 == 0 else dict(reversed(builds.items()))):
                        results[build][name].append(scenario(builds[build], name, events))
                floor.append(_per_run({"e": empty_fd}, ("e",), lambda i: empty_run(), events))
    finally:
        empty.cleanup()
        for tp in builds.values():
            tp.close()
    print(f"bpf_cost stats floor (an empty program, test runs): {statistics.median(floor):.0f} ns/run, "
          f"in every figure below")
    for name in SCENARIOS:
        now = statistics.median(results["kvmtop"][name])
        was = f" (baseline {statistics.median(results['baseline'][name]):.0f})" if baseline else ""
        target = f" (target ≤ {TARGET_PAIR_NS})" if "entry" in name else ""
        print(f"bpf_cost {name}: {now:.0f} ns{was}{target}   [median of {rounds} rounds of {events}]")


PARTS_PROGRAM = b"""
struct row_key { u32 a, b, c, d, e; };
struct row_val { u64 count, sum, min, max; };
BPF_HASH(rows, struct row_key, struct row_val, 1024);
BPF_ARRAY(sink, u64, 1);
static __always_inline void keep(u64 v)
{
    u32 zero = 0;
    u64 *s = sink.lookup(&zero);
    if (s)
        *s += v;
}
int part_empty(struct bpf_raw_tracepoint_args *ctx) { keep(1); return 0; }
int part_thread_id(struct bpf_raw_tracepoint_args *ctx) { keep(bpf_get_current_pid_tgid()); return 0; }
int part_clock(struct bpf_raw_tracepoint_args *ctx) { keep(bpf_ktime_get_ns()); return 0; }
int part_row_update(struct bpf_raw_tracepoint_args *ctx)
{
    struct row_key k = {.a = 1, .b = 2, .c = (u32)ctx->args[0], .e = 5};
    struct row_val *v = rows.lookup(&k);
    if (v) {
        v->count++;
        v->sum += 700;
        if (700 > v->max)
            v->max = 700;
        return 0;
    }
    struct row_val init = {.count = 1, .sum = 700, .min = 700, .max = 700};
    rows.insert(&k, &init);
    return 0;
}
"""
PARTS = ("thread_id", "clock", "row_update")


def parts(exits: int) -> None:
    """ns each part adds to a program, on real kvm_userspace_exit events (less an empty program)."""
    from bcc import BPF
    from bcc.libbcc import lib

    from kvmtop.bpf.headers import prepare_headers
    from kvmtop.testing.kvm_guest import run_exit_loop

    tree = prepare_headers(verbose=False)
    if tree:
        os.environ["BCC_KERNEL_SOURCE"] = tree
    bpf = BPF(text=PARTS_PROGRAM)
    links: list[int] = []  # BCC attaches one program per raw tracepoint: these go through libbcc
    try:
        fds = {}
        for name in ("empty", *PARTS):
            fn = bpf.load_func(f"part_{name}".encode(), BPF.RAW_TRACEPOINT)
            link = lib.bpf_attach_raw_tracepoint(fn.fd, b"kvm_userspace_exit")
            if link < 0:
                raise OSError(f"could not attach part_{name} to kvm_userspace_exit")
            links.append(link)
            fds[name] = fn.fd
        with bpf_stats():
            before = {n: prog_stats(fd) for n, fd in fds.items()}
            run_exit_loop(exits)
            per = {}
            for n, fd in fds.items():
                ns, cnt = prog_stats(fd)
                per[n] = (ns - before[n][0]) / max(cnt - before[n][1], 1)
    finally:
        for link in links:
            os.close(link)
        bpf.cleanup()
    each = ", ".join(f"{n.replace('_', ' ')} {per[n] - per['empty']:.0f} ns" for n in PARTS)
    print(f"bpf_cost parts, on {exits} real kvm_userspace_exit events: {each} "
          f"(an empty program: {per['empty']:.0f} ns/run with the stats floor)")


def _short(name: str) -> str:
    if name.startswith("raw_tracepoint__"):
        return f"{name[len('raw_tracepoint__'):]} raw"
    return name[len("tracepoint__"):].split("__", 1)[1]


def real(exits: int, raw: bool, baseline: str | None) -> None:
    from bcc import BPF

    from kvmtop.bpf.program import RAW, Program, detect_features
    from kvmtop.testing.kvm_guest import run_exit_loop

    programs = {"kvmtop": Program(raw=raw).load()}
    if baseline:
        old = dataclasses.replace(detect_features(), thread_exit=False)
        programs["baseline"] = Program(raw=raw, source=baseline, features=old).load()
    for p in programs.values():
        p.detach()
    floor = BPF(text=FLOOR_PROGRAM)
    floor_fd = next(iter(floor.funcs.values())).fd
    try:
        for label, p in programs.items():
            p.io = True  # time the I/O probes too (attach() then includes them)
            p.attach()
            fds = {**p.prog_fds(), "floor": floor_fd}
            with bpf_stats():
                before = {name: prog_stats(fd) for name, fd in fds.items()}
                secs = run_exit_loop(exits)
                after = {name: (prog_stats(fd)[0] - before[name][0], prog_stats(fd)[1] - before[name][1])
                         for name, fd in fds.items()}
            p.detach()
            how = "raw" if p.probes.get("kvm:kvm_userspace_exit") == RAW else "classic"
            print(f"bpf_cost {label}, {how} tracepoints where possible: {exits} PIO exits in {secs:.2f} s "
                  f"({secs / exits * 1e6:.1f} µs/exit incl. the Python VMM)"
                  + (f"; {p.fallback}" if p.fallback else ""))
            per = {}
            for name, (ns, cnt) in sorted(after.items()):
                if name == "floor":
                    continue
                if cnt:
                    per[name] = ns / cnt
                    print(f"bpf_cost   {_short(name)} (real events): {ns / cnt:.0f} ns/event   [{cnt} runs]")
                else:
                    print(f"bpf_cost   {_short(name)} (real events): never fired here")
            run = next((v for n, v in per.items() if n.endswith("sys_enter_ioctl")), None)
            us = next((v for n, v in per.items() if n.endswith("kvm_userspace_exit")), None)
            if us is not None and run is not None:
                print(f"bpf_cost   userspace round trip (kvm_userspace_exit + KVM_RUN ioctl): {us + run:.0f} ns")
            ns, cnt = after["floor"]
            print(f"bpf_cost   stats floor (empty program on kvm_userspace_exit): {ns / max(cnt, 1):.0f} ns/run")
    finally:
        floor.cleanup()
        for p in programs.values():
            p.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=5_000, help="synthetic events (or pairs) per scenario and round")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--exits", type=int, default=100_000, help="real PIO exits of the test guest")
    ap.add_argument("--baseline", metavar="FILE", help="another kvmtop.bpf.c to time in the same rounds")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("bench_bpf_cost: needs root", file=sys.stderr)
        return 1
    synthetic(args.events, args.rounds, args.baseline)
    if os.path.exists("/dev/kvm"):
        real(args.exits, False, args.baseline)
        real(args.exits, True, args.baseline)
        parts(args.exits)
    else:
        print("bpf_cost real events: skipped, /dev/kvm is absent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
