"""Dashboard cost at 50 x 4, 1,000 x 8 and 4,000 x 8 (VMs x vCPUs), in a few minutes.

    python bench/bench_ui.py [--sizes 50x4 1000x8 4000x8] [--cpu-seconds 20] [--quick]

For each size, two measurements:

1. In process, headless (Textual's test driver, 160x50), snapshots from the demo source
   through the real SnapshotBuilder, one after the other so each figure is clean:
     * build   — the demo source's interval + SnapshotBuilder.build (the feed thread),
     * prepare — filter + header figures + the VM table's cells in view (the feed thread),
     * apply   — the UI thread: SnapshotReady handling, the table diff, the header and the
                 repaint, until the app is idle again (includes the driver's own idle wait,
                 printed);
   wall-clock p50/p95 and CPU p50 of each, and RSS after the run. At 1,000 x 8 the run is
   600 updates: the snapshots of 10 minutes at -d 1, run as fast as possible (the running
   dashboard's RSS after 10 real minutes is higher: it also holds the terminal's caches).
2. From outside: ``kvmtop --demo --vms N --vcpus M`` in a real terminal (tmux, 160x50),
   the whole process's CPU (every thread: utime + stime from /proc) over ``--cpu-seconds``
   after a warm-up, on the main screen (and at 50 x 4 on the guest screen too, with its
   charts), and its RSS.

Targets (issue 13) are printed with OK or MISSED; the exit status is 1 when one is missed.
CPU figures depend on the machine and on what else runs on it: compare runs on the same host.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.feed import Feed
from kvmtop.sources.demo import DemoSource
from kvmtop.ui.app import make_app
from kvmtop.ui.messages import SnapshotReady
from kvmtop.ui.prepare import prepare
from kvmtop.ui.widgets.vm_table import VmTable

ROOT = Path(__file__).resolve().parent.parent
SIZE = (160, 50)
UPDATES = {(50, 4): 120, (1000, 8): 600, (4000, 8): 60}
TARGETS = {  # (VMs, vCPUs) -> name -> limit
    (1000, 8): {"build_ms_p50": 100.0, "apply_ms_p50": 50.0, "apply_ms_p95": 100.0, "rss_mb": 200.0, "cpu_main": 15.0},
    (50, 4): {"cpu_main": 2.0, "cpu_guest": 5.0},
}


class IdleFeed(Feed):
    """A feed the app's worker waits on forever: the benchmark posts snapshots itself."""

    def next_snapshot(self):
        self._stopped.wait()
        return None


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --------------------------------------------------------------------------- in process


async def in_process(vms: int, vcpus: int, updates: int) -> dict:
    source = DemoSource(vms=vms, vcpus=vcpus)
    builder = SnapshotBuilder(120)
    app = make_app(IdleFeed(source))
    wall: dict[str, list[float]] = {"build": [], "prepare": [], "apply": []}
    cpu: dict[str, list[float]] = {"build": [], "prepare": [], "apply": []}
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        table = app.screen.query_one(VmTable)
        idle = []
        for _ in range(5):  # what the driver's "wait until idle" costs with nothing to do
            t0 = time.perf_counter()
            await pilot.pause()
            idle.append((time.perf_counter() - t0) * 1e3)
        for _ in range(updates):
            # the feed worker's part (a thread in the app; in turn here, so timings are clean)
            w0, c0 = time.perf_counter(), time.thread_time()
            app.gc_policy.drain()  # the feed thread frees what the UI let go of
            raw = builder.build(source.next_interval())
            w1, c1 = time.perf_counter(), time.thread_time()
            shown, cells = prepare(raw, None, True, app.vm_view)
            app.gc_policy.after_snapshot(raw.host.vcpu_count)  # as the app's feed worker does
            app.trimmer.tick()
            w2, c2 = time.perf_counter(), time.thread_time()
            message = SnapshotReady(raw, shown, None, cells, True)
            del raw, shown, cells
            # the UI thread's part
            w3, c3 = time.perf_counter(), time.process_time()
            app.post_message(message)
            await pilot.pause()  # handled, diffed and repainted
            w4, c4 = time.perf_counter(), time.process_time()
            del message
            for name, w, c in (("build", w1 - w0, c1 - c0), ("prepare", w2 - w1, c2 - c1), ("apply", w4 - w3, c4 - c3)):
                wall[name].append(w * 1e3)
                cpu[name].append(c * 1e3)
            assert table.row_count == vms
        gc.collect()
        rss, hwm = rss_mb()
    out = {"updates": updates, "idle_ms": statistics.median(idle), "rss_mb": rss, "peak_rss_mb": hwm}
    for name in wall:
        steady = wall[name][1:] or wall[name]
        out[f"{name}_ms_p50"] = statistics.median(steady)
        out[f"{name}_ms_p95"] = pct(steady, 0.95)
        out[f"{name}_cpu_ms_p50"] = statistics.median(cpu[name][1:] or cpu[name])
    return out


# --------------------------------------------------------------------------- from outside


def _ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime of every thread


def dashboard_cpu(vms: int, vcpus: int, seconds: float, keys: tuple[str, ...] = (), warmup: float = 10.0) -> dict:
    """Whole-process CPU of the running dashboard, measured from /proc."""
    session = f"kvmtop-bench-{os.getpid()}"
    kvmtop = ROOT / ".venv" / "bin" / "kvmtop"
    command = f"{kvmtop}" if kvmtop.exists() else f"{sys.executable} -m kvmtop"
    env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "NO_COLOR")}
    env["TERM"] = "xterm-256color"
    subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(SIZE[0]), "-y", str(SIZE[1]),
                    "sh", "-c", f"exec {command} --demo --vms {vms} --vcpus {vcpus} -d 1"],
                   check=True, env=env, cwd=ROOT)
    try:
        pid = int(subprocess.run(["tmux", "display", "-p", "-t", session, "#{pane_pid}"], check=True,
                                 capture_output=True, text=True).stdout.strip())
        deadline = time.monotonic() + 60
        while "Collector" not in _screen(session):  # the first snapshot is on screen
            if time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start:\n{_screen(session)}")
            time.sleep(0.2)
        for key in keys:
            subprocess.run(["tmux", "send-keys", "-t", session, key], check=True)
        time.sleep(warmup)
        hz = os.sysconf("SC_CLK_TCK")
        t0, c0 = time.monotonic(), _ticks(pid)
        time.sleep(seconds)
        t1, c1 = time.monotonic(), _ticks(pid)
        return {"cpu": 100.0 * (c1 - c0) / hz / (t1 - t0), "rss_mb": rss_mb(pid)[0], "seconds": t1 - t0}
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)


def _screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


# --------------------------------------------------------------------------- report


def _mark(size: tuple[int, int], name: str, value: float) -> str:
    limit = TARGETS.get(size, {}).get(name)
    if limit is None:
        return ""
    return f" (target <= {limit:g}: {'OK' if value <= limit else 'MISSED'})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["50x4", "1000x8", "4000x8"], metavar="VMSxVCPUS")
    parser.add_argument("--cpu-seconds", type=float, default=20.0, help="CPU measuring window per screen")
    parser.add_argument("--quick", action="store_true", help="a tenth of the updates (no 10-minute RSS figure)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the whole-process CPU of the running dashboard")
    args = parser.parse_args(argv)
    missed = []
    tmux = shutil.which("tmux") is not None
    for text in args.sizes:
        vms, vcpus = (int(x) for x in text.lower().split("x"))
        size = (vms, vcpus)
        updates = UPDATES.get(size, 60)
        if args.quick:
            updates = max(10, updates // 10)
        r = asyncio.run(in_process(vms, vcpus, updates))
        print(f"bench_ui {vms} VMs x {vcpus} vCPUs ({vms * vcpus} vCPUs), {updates} updates, in process:")
        for name, label in (("build", "build (source + SnapshotBuilder)"), ("prepare", "prepare (feed thread)"),
                            ("apply", "apply (UI thread, incl. repaint)")):
            p50, p95, c50 = r[f"{name}_ms_p50"], r[f"{name}_ms_p95"], r[f"{name}_cpu_ms_p50"]
            print(f"  {label:34} p50 {p50:7.1f} ms{_mark(size, f'{name}_ms_p50', p50)}, "
                  f"p95 {p95:7.1f} ms{_mark(size, f'{name}_ms_p95', p95)}, CPU p50 {c50:6.1f} ms")
            missed += [f"{text} {name}" for key in (f"{name}_ms_p50", f"{name}_ms_p95")
                       if "MISSED" in _mark(size, key, r[key])]
        print(f"  (apply includes the test driver's idle wait: {r['idle_ms']:.0f} ms)")
        print(f"  RSS after {updates} updates: {r['rss_mb']:.0f} MB (peak {r['peak_rss_mb']:.0f} MB)"
              f"{_mark(size, 'rss_mb', r['rss_mb']) if updates >= 600 else ''}")
        if updates >= 600 and "MISSED" in _mark(size, "rss_mb", r["rss_mb"]):
            missed.append(f"{text} rss")
        if args.no_cpu or not tmux:
            continue
        screens = [("main", ())] + ([("guest", ("Enter",))] if size == (50, 4) else [])
        for screen, keys in screens:
            c = dashboard_cpu(vms, vcpus, args.cpu_seconds, keys)
            mark = _mark(size, f"cpu_{screen}", c["cpu"])
            print(f"  running dashboard, {screen} screen: {c['cpu']:.1f}% of a core (all threads, "
                  f"{c['seconds']:.0f} s), RSS {c['rss_mb']:.0f} MB{mark}")
            if "MISSED" in mark:
                missed.append(f"{text} cpu {screen}")
    if missed:
        print("missed: " + ", ".join(missed))
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
