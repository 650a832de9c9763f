"""How much slower an exit-heavy guest runs with kvmtop attached, beside perf and bpftrace.

The test guest (kvmtop.testing.kvm_guest.run_exit_loop: a vCPU thread in this process doing
PIO exits, each handled by a Python VMM, ~11 µs a round trip) runs many short rounds. In
each round every observer watches one run, and every observed run sits between two
unobserved ones (B O1 B O2 B ...; the observers' order rotates from round to round); an
observed run's ratio is to the mean of its two neighbours, and each figure is the median of
those ratios over the rounds, so drift and noise from the rest of the host fall on both
sides alike. Two clocks: wall time, what the guest sees, and the CPU time of the vCPU
thread, which leaves out the time the rest of a busy host takes the CPU away (the observers'
own user-space work, e.g. kvmtop's poll or perf writing its file, shows only in wall time).

Observers (each attached only around the run it watches):
- kvmtop: a LiveSource in a child process, as in real use, polled once a second
  throughout; its probes are attached for the run, detached after.
- perf stat, counting only (what kvm_stat does):
  ``perf stat -e kvm:kvm_userspace_exit -e syscalls:sys_enter_ioctl -a``
- perf record of the same two events (``-a``, to a file).
- bpftrace: the same pairing as kvmtop's (kvm_userspace_exit -> the thread's next KVM_RUN
  ioctl) into a per-VM histogram.
- bpf-floor: the least any BPF tool timing that round trip does: the same two probes, each
  reading the thread id and the clock, the start kept in an array slot, a count and a sum of
  the round trips; no histogram, no per-VM rows. kvmtop's distance from it is what its
  aggregation costs; the floor's own distance from perf stat is the price of the two clock
  reads.
perf and bpftrace are started per run and enabled (perf: --control) or ready (bpftrace:
its BEGIN probe runs after every probe is attached) before the run starts. Every observer's
count of the run's userspace exits is checked.

On this host each PIO exit costs an observer two probes (kvm_userspace_exit and the KVM_RUN
ioctl entry); where kvm_exit/kvm_entry fire, kvmtop adds those.

    sudo python bench/bench_guest_slowdown.py [--exits N] [--rounds R] [--only kvmtop,perf-stat,...] [--wait-quiet S]
                                              [--baseline-tree DIR]

``--baseline-tree DIR``: also time the kvmtop collector of another source tree (e.g.
``git archive main | tar -x -C DIR``) in the same rounds, as "kvmtop (baseline)".
perf comes with Debian's linux-perf package, bpftrace with bpftrace (scripts/setup.sh
installs both); an observer whose tool is missing is skipped with a line saying so.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import re
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from kvmtop.testing.kvm_guest import run_exit_loop_timed

TARGET_PCT = 5.0
MOONSHOT = 1.5  # kvmtop's slowdown within this factor of counting-only perf stat
POLL_S = 1.0
EVENTS = ("kvm:kvm_userspace_exit", "syscalls:sys_enter_ioctl")
KVM_RUN = 0xAE80

BPFTRACE_SCRIPT = r"""
BEGIN { printf("ready\n"); }
tracepoint:kvm:kvm_userspace_exit { @start[tid] = nsecs; }
tracepoint:syscalls:sys_enter_ioctl /args->cmd == 0xAE80 && @start[tid]/ {
    @round_trip_ns[pid] = hist(nsecs - @start[tid]);
    @n[pid] = count();
    delete(@start[tid]);
}
"""


# --------------------------------------------------------------------------- kvmtop, in a child


def collector(conn, target_pid: int, tree: str | None) -> None:
    """Child: a LiveSource polled every POLL_S; "attach"/"detach" toggle its probes.

    ``detach`` answers with the userspace exits of ``target_pid`` counted since ``attach``."""
    if tree:  # this child imported kvmtop (with the bench module): import the tree's instead
        for name in [m for m in sys.modules if m == "kvmtop" or m.startswith("kvmtop.")]:
            del sys.modules[name]
        sys.path.insert(0, tree)
    from kvmtop.sources.collector import LiveSource

    src = LiveSource()
    try:
        src.open()
    except Exception as e:
        conn.send(("error", str(e)))
        return
    src.program.detach()
    lock, seen, stop = threading.Lock(), [0], threading.Event()

    def take() -> None:
        with lock:  # one lock over the read and the sum: a poll in progress is in the count
            iv = src.next_interval()
            seen[0] += sum(s.count for t in iv.threads if t.pid == target_pid for s in t.userspace.values())

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


class Kvmtop:
    def __init__(self, ctx, tree: str | None = None):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=collector, args=(child, os.getpid(), tree), daemon=True)
        self.proc.start()
        msg = self.conn.recv()
        if msg[0] != "ready":
            raise RuntimeError(f"the collector failed: {msg[1]}")
        _, probes, fallback = msg
        raw = sorted(e.split(":")[1] for e, k in probes.items() if k == "raw_tracepoint")
        self.how = f"raw tracepoints: {', '.join(raw)}" if raw else "classic tracepoints only"
        if fallback:
            self.how += f"; {fallback}"

    def start(self) -> None:
        self.conn.send("attach")
        self.conn.recv()

    def stop(self) -> int:
        self.conn.send("detach")
        return self.conn.recv()

    def expected(self, exits: int) -> int:
        return exits + 1  # the DONE_PORT exit too: in flight at its thread's exit, counted then

    def close(self) -> None:
        self.conn.send("quit")
        self.proc.join(30)


# --------------------------------------------------------------------------- perf, bpftrace


class Perf:
    """perf stat / perf record, started with its events disabled and enabled through --control."""

    def __init__(self, mode: str, workdir: str):
        self.mode, self.workdir = mode, workdir
        self.how = f"perf {mode} -e {' -e '.join(EVENTS)} -a"
        self.proc: subprocess.Popen | None = None
        self.ioctls = -1  # perf stat's count of sys_enter_ioctl in the last run

    def start(self) -> None:
        ctl_r, self.ctl_w = os.pipe()
        self.ack_r, ack_w = os.pipe()
        self.out = os.path.join(self.workdir, f"perf-{self.mode}.out")
        argv = ["perf", self.mode, *[a for e in EVENTS for a in ("-e", e)], "-a", "-D", "-1",
                "--control", f"fd:{ctl_r},{ack_w}", "-o", self.out]
        if self.mode == "stat":
            argv += ["-x", ","]
        self.proc = subprocess.Popen(argv, pass_fds=(ctl_r, ack_w), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        os.close(ctl_r)
        os.close(ack_w)
        try:
            self._command(b"enable")
        except RuntimeError:
            _reap(self.proc)
            raise

    def _command(self, cmd: bytes) -> None:
        os.write(self.ctl_w, cmd + b"\n")
        if not select.select([self.ack_r], [], [], 30)[0] or not os.read(self.ack_r, 64).startswith(b"ack"):
            raise RuntimeError(f"perf {self.mode} did not acknowledge {cmd.decode()}: "
                               f"{self.proc.stderr.read().decode(errors='replace')[:200]}")

    def stop(self) -> int:
        self._command(b"disable")
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(60)
        self.proc.stderr.close()
        for fd in (self.ctl_w, self.ack_r):
            os.close(fd)
        if self.mode != "stat":
            return -1
        counts = {}
        with open(self.out) as f:
            for line in f:
                fields = line.split(",")
                if len(fields) > 2 and fields[2] in EVENTS:
                    counts[fields[2]] = int(fields[0]) if fields[0].isdigit() else 0
        self.ioctls = counts.get(EVENTS[1], 0)
        return counts.get(EVENTS[0], 0)

    def expected(self, exits: int) -> int | None:
        return exits + 1 if self.mode == "stat" else None  # perf record's file is not parsed

    def close(self) -> None:
        _reap(self.proc)


def _reap(proc: subprocess.Popen | None) -> None:
    """Stop a tool this bench started, if a failed round left it running."""
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


class Bpftrace:
    def __init__(self, workdir: str):
        self.proc: subprocess.Popen | None = None
        self.script = os.path.join(workdir, "pairing.bt")
        with open(self.script, "w") as f:
            f.write(BPFTRACE_SCRIPT)
        self.how = "bpftrace: kvm_userspace_exit -> next KVM_RUN ioctl of the thread, hist() per pid"

    def start(self) -> None:
        self.proc = subprocess.Popen(["bpftrace", "-B", "line", self.script], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        line = b""
        while not line.startswith(b"ready"):
            if not select.select([self.proc.stdout], [], [], 60)[0]:
                self.proc.kill()
                self.proc.communicate()
                raise RuntimeError("bpftrace did not start within 60 s")
            line = self.proc.stdout.readline()
            if not line:
                err = self.proc.communicate()[1].decode(errors="replace")[:300]
                raise RuntimeError(f"bpftrace failed: {err}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        out, _ = self.proc.communicate(timeout=60)
        m = re.search(rf"@n\[{os.getpid()}\]: (\d+)", out.decode(errors="replace"))
        return int(m.group(1)) if m else 0

    def expected(self, exits: int) -> int:
        return exits  # round trips that ended: the DONE_PORT exit never sees its KVM_RUN

    def close(self) -> None:
        _reap(self.proc)


class BpfFloor:
    """The timing floor (see the module docstring), loaded once, attached around each run."""

    PROGRAM = b"""
    struct sums { u64 n; u64 ns; };
    BPF_ARRAY(start, u64, 4096);
    BPF_PERCPU_ARRAY(total, struct sums, 1);
    RAW_TRACEPOINT_PROBE(kvm_userspace_exit)
    {
        u32 i = (u32)bpf_get_current_pid_tgid() & 4095;
        u64 *s = start.lookup(&i);
        if (s)
            *s = bpf_ktime_get_ns();
        return 0;
    }
    TRACEPOINT_PROBE(syscalls, sys_enter_ioctl)
    {
        if (args->cmd != 0xAE80)
            return 0;
        u32 i = (u32)bpf_get_current_pid_tgid() & 4095, zero = 0;
        u64 *s = start.lookup(&i);
        struct sums *t = total.lookup(&zero);
        if (s && *s && t) {
            t->n++;
            t->ns += bpf_ktime_get_ns() - *s;
            *s = 0;
        }
        return 0;
    }
    """

    def __init__(self):
        from bcc import BPF

        from kvmtop.bpf.headers import prepare_headers

        tree = prepare_headers(verbose=False)
        if tree:
            os.environ["BCC_KERNEL_SOURCE"] = tree
        self.bpf = BPF(text=self.PROGRAM)
        self.how = "bpf-floor: pid_tgid + clock at both probes, count and sum only"
        self._detach()

    def _detach(self) -> None:
        self.bpf.detach_raw_tracepoint(b"kvm_userspace_exit")
        self.bpf.detach_tracepoint(b"syscalls:sys_enter_ioctl")

    def _count(self) -> int:
        return sum(v.n for v in self.bpf[b"total"][0])

    def start(self) -> None:
        self.before = self._count()
        self.bpf.attach_raw_tracepoint(tp=b"kvm_userspace_exit", fn_name=b"raw_tracepoint__kvm_userspace_exit")
        self.bpf.attach_tracepoint(tp=b"syscalls:sys_enter_ioctl", fn_name=b"tracepoint__syscalls__sys_enter_ioctl")

    def stop(self) -> int:
        self._detach()
        return self._count() - self.before

    def expected(self, exits: int) -> int:
        return exits  # round trips that ended, as bpftrace's

    def close(self) -> None:
        self.bpf.cleanup()


# --------------------------------------------------------------------------- rounds


def other_bpf_holders(mine: set[int]) -> list[str]:
    """Other processes holding BPF programs (another kvmtop, a test suite): they slow the guest too."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) in mine:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog" for fd in fds):
                with open(f"/proc/{pid}/comm") as f:
                    out.append(f"{pid} ({f.read().strip()})")
        except OSError:
            continue
    return out


def pct(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"


def median_ci(values: list[float], z: float = 1.96) -> tuple[float, float]:
    """A distribution-free 95% confidence interval of the median: the order statistics at
    the binomial's ranks n/2 -+ z*sqrt(n)/2."""
    s = sorted(values)
    half = z * math.sqrt(len(s)) / 2
    return s[max(math.floor(len(s) / 2 - half), 0)], s[min(math.ceil(len(s) / 2 + half), len(s) - 1)]


def summary(ratios: list[float]) -> str:
    med = statistics.median(ratios)
    lo, hi = median_ci(ratios)
    return f"{pct(med)} (95% CI of the median {pct(lo)}..{pct(hi)})"


def paired(a: dict[int, float], b: dict[int, float]) -> str:
    """a - b in percentage points, over the rounds that timed both: the noise of a round
    falls on both, so this is sharper than comparing two medians."""
    d = [(a[r] - b[r]) * 100 for r in a if r in b]
    if not d:
        return "n/a (no round timed both)"
    lo, hi = median_ci(d)
    return f"{statistics.median(d):+.1f} points (95% CI {lo:+.1f}..{hi:+.1f}, {len(d)} rounds)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exits", type=int, default=20_000, help="PIO exits per run")
    ap.add_argument("--rounds", type=int, default=25)
    ap.add_argument("--only", default="kvmtop,bpf-floor,perf-stat,perf-record,bpftrace",
                    help="observers to time, comma-separated")
    ap.add_argument("--baseline-tree", metavar="DIR", help="also time the kvmtop collector of this source tree")
    ap.add_argument("--wait-quiet", type=float, default=0.0, metavar="S",
                    help="first wait up to S seconds for no other process to hold BPF programs")
    args = ap.parse_args(argv)
    if os.geteuid() != 0 or not os.path.exists("/dev/kvm"):
        print("bench_guest_slowdown: needs root and /dev/kvm", file=sys.stderr)
        return 1
    wanted = args.only.split(",")
    deadline = time.monotonic() + args.wait_quiet
    while other_bpf_holders({os.getpid()}) and time.monotonic() < deadline:
        time.sleep(5)  # another kvmtop, perf or bpftrace would fire on this guest in every run
    workdir = tempfile.mkdtemp(prefix="kvmtop-bench-")
    ctx = mp.get_context("spawn")
    observers: dict = {}
    try:
        if "kvmtop" in wanted:
            observers["kvmtop"] = Kvmtop(ctx)
        if args.baseline_tree:
            observers["kvmtop (baseline)"] = Kvmtop(ctx, os.path.abspath(args.baseline_tree))
        if "bpf-floor" in wanted:
            observers["bpf-floor"] = BpfFloor()
        for name, make, tool, pkg in (("perf-stat", lambda: Perf("stat", workdir), "perf", "linux-perf"),
                                      ("perf-record", lambda: Perf("record", workdir), "perf", "linux-perf"),
                                      ("bpftrace", lambda: Bpftrace(workdir), "bpftrace", "bpftrace")):
            if name not in wanted:
                continue
            if shutil.which(tool) is None:
                print(f"guest_slowdown {name}: skipped, {tool} is not installed (apt-get install {pkg}, "
                      f"or make setup)")
                continue
            observers[name] = make()
        mine = {os.getpid(), *(o.proc.pid for o in observers.values() if isinstance(o, Kvmtop))}
        others = other_bpf_holders(mine)
        load0 = os.getloadavg()[0]

        run_exit_loop_timed(5_000)  # warm up
        names = list(observers)
        wall: dict[str, dict[int, float]] = {n: {} for n in names}  # round -> ratio to its neighbours
        cpu: dict[str, dict[int, float]] = {n: {} for n in names}
        base_wall, base_cpu, bad = [], [], []
        muted = 0  # perf stat runs whose sys_enter_ioctl count another BPF program suppressed
        crowded = 0  # rounds during which other processes held BPF programs
        for r in range(args.rounds):
            crowded += bool(other_bpf_holders(mine))
            order = names[r % len(names):] + names[:r % len(names)]
            prev = run_exit_loop_timed(args.exits)
            base_wall.append(prev[0])
            base_cpu.append(prev[1])
            for name in order:
                obs = observers[name]
                try:
                    obs.start()
                except RuntimeError as e:  # one observer failing one round does not end the rest
                    bad.append(f"{name}, round {r + 1}: {e}")
                    continue
                try:
                    t = run_exit_loop_timed(args.exits)
                finally:
                    counted = obs.stop()
                expect = obs.expected(args.exits)
                if expect is not None and counted < expect:
                    bad.append(f"{name} counted {counted} userspace exits, expected {expect}")
                if name == "perf-stat" and obs.ioctls < args.exits:
                    muted += 1
                nxt = run_exit_loop_timed(args.exits)
                base_wall.append(nxt[0])
                base_cpu.append(nxt[1])
                wall[name][r] = t[0] / ((prev[0] + nxt[0]) / 2)
                cpu[name][r] = t[1] / ((prev[1] + nxt[1]) / 2)
                prev = nxt
        others += [p for p in other_bpf_holders(mine) if p not in others]

        print(f"guest_slowdown baseline: {statistics.median(base_wall) / args.exits * 1e6:.2f} µs/exit wall, "
              f"{statistics.median(base_cpu) / args.exits * 1e6:.2f} µs/exit CPU of the vCPU thread "
              f"({args.rounds} rounds of {args.exits} PIO exits; load average {load0:.1f} -> {os.getloadavg()[0]:.1f})")
        for name in names:
            target = f" (target ≤ {TARGET_PCT:.0f}%)" if name == "kvmtop" else ""
            if not wall[name]:
                continue
            print(f"guest_slowdown {name}: wall {summary(list(wall[name].values()))}, "
                  f"CPU {summary(list(cpu[name].values()))}{target}   "
                  f"[{observers[name].how}]")
        for peer, what, goal in (("perf-stat", "perf stat (counting only)", f" (moonshot ≤ {MOONSHOT}×)"),
                                 ("bpf-floor", "the BPF timing floor", "")):
            if "kvmtop" not in names or peer not in names:
                continue
            for label, series in (("wall", wall), ("CPU", cpu)):
                if not series["kvmtop"] or not series[peer]:
                    continue
                k = statistics.median(series["kvmtop"].values()) - 1
                p = statistics.median(series[peer].values()) - 1
                ratio = f"{k / p:.2f}×" if p > 0 else f"n/a ({peer}'s slowdown is not above zero)"
                print(f"guest_slowdown kvmtop / {what}, {label}: {ratio}{goal}; kvmtop - {peer} in the "
                      f"same rounds: {paired(series['kvmtop'], series[peer])}")
        for line in bad:
            print(f"guest_slowdown: warning: {line}")
        if others:
            print(f"guest_slowdown: note: other processes held BPF programs in {crowded} of {args.rounds} rounds "
                  f"(their probes fire on this guest too, in every run alike): {', '.join(others[:8])}")
        if muted:
            print(f"guest_slowdown: note: in {muted} of {args.rounds} perf stat runs another BPF program on "
                  f"sys_enter_ioctl returned 0, which keeps the event from perf: those runs understate perf "
                  f"stat's cost")
    finally:
        for obs in observers.values():
            obs.close()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
