"""UI benchmark: applying one snapshot of 1,000 VMs x 8 vCPUs, and memory after 10 minutes.

    python bench/bench_ui.py [--vms 1000] [--vcpus 8] [--updates 600]

Snapshots come from the demo source through the real SnapshotBuilder, one after the
other (the app does build+prepare on its feed thread; here they run in turn so each
figure is clean). For each update we time, separately:
  * build   — SnapshotBuilder.build (the feed's thread; not UI work),
  * prepare — filter + VM-table cells (the feed worker thread, off the UI thread),
  * apply   — the UI thread: SnapshotReady handling, the DataTable diff, the header,
              and the repaint (until the app is idle again).
Targets: apply <= 100 ms per update (median; p95 and max are printed too); RSS <= 250 MB
after 600 updates (10 min at 1 s), run as fast as possible. The app is headless
(Textual's test driver), 160x50; the driver's own wait-until-idle (about 20 ms, printed)
is included in the apply figure. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from pathlib import Path

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.feed import Feed
from kvmtop.sources.demo import DemoSource
from kvmtop.ui.app import make_app
from kvmtop.ui.messages import SnapshotReady
from kvmtop.ui.prepare import prepare
from kvmtop.ui.widgets.vm_table import VmTable

TARGET_APPLY_MS = 100.0
TARGET_RSS_MB = 250.0


class IdleFeed(Feed):
    """A feed the app's worker waits on forever: the benchmark posts snapshots itself."""

    def next_snapshot(self):
        self._stopped.wait()
        return None


def rss_mb() -> tuple[float, float]:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            key, value = line.split(":", 1)
            fields[key] = int(value.split()[0]) / 1024
    return fields.get("VmRSS", 0.0), fields.get("VmHWM", 0.0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class GcWatch:
    """Counts and times full (generation 2) collections."""

    def __init__(self) -> None:
        self.full = 0
        self.full_ms: list[float] = []
        self._t0 = 0.0
        gc.callbacks.append(self)

    def __call__(self, phase: str, info: dict) -> None:
        if info.get("generation") != 2:
            return
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.full += 1
            self.full_ms.append((time.perf_counter() - self._t0) * 1e3)


async def run(vms: int, vcpus: int, updates: int, quiet: bool) -> dict:
    source = DemoSource(vms=vms, vcpus=vcpus)
    builder = SnapshotBuilder(120)
    base_rss, _ = rss_mb()
    warm = builder.build(source.next_interval())
    prepare(warm, None)
    gc.collect()
    model_rss, _ = rss_mb()  # the builder's rings + one snapshot, before any UI
    del warm
    watch = GcWatch()
    app = make_app(IdleFeed(source))
    build_ms: list[float] = []
    prepare_ms: list[float] = []
    apply_ms: list[float] = []

    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(VmTable)
        idle_ms = []
        for _ in range(5):  # what the test driver's "wait until idle" costs with nothing to do
            t0 = time.perf_counter()
            await pilot.pause()
            idle_ms.append((time.perf_counter() - t0) * 1e3)
        started = time.perf_counter()
        for i in range(updates):
            # The feed worker's part (a thread in the app; sequential here, so timings are clean).
            t0 = time.perf_counter()
            app.gc_policy.drain()  # the feed thread frees what the UI let go of
            raw = builder.build(source.next_interval())
            t1 = time.perf_counter()
            shown, cells = prepare(raw, None)
            app.gc_policy.after_snapshot(raw.host.vcpu_count)  # as the app's feed worker does
            t2 = time.perf_counter()
            build_ms.append((t1 - t0) * 1e3)
            prepare_ms.append((t2 - t1) * 1e3)
            message = SnapshotReady(raw, shown, None, cells)
            del raw, shown, cells
            # The UI thread's part.
            t0 = time.perf_counter()
            app.post_message(message)
            await pilot.pause()  # handled, diffed and repainted
            apply_ms.append((time.perf_counter() - t0) * 1e3)
            del message
            assert table.row_count == vms
            if not quiet and (i + 1) % 50 == 0:
                rss, _ = rss_mb()
                print(f"  {i + 1:4d}/{updates}  apply p50 {statistics.median(apply_ms[-50:]):6.1f} ms  "
                      f"max {max(apply_ms[-50:]):6.1f} ms  build p50 {statistics.median(build_ms[-50:]):6.0f} ms  "
                      f"RSS {rss:6.1f} MB", flush=True)
        elapsed = time.perf_counter() - started
        # A few interactions at full size, for the record.
        t0 = time.perf_counter()
        await pilot.press("I")
        await pilot.pause()
        resort_ms = (time.perf_counter() - t0) * 1e3
        gc.collect()
        rss, hwm = rss_mb()
    return {
        "vms": vms, "vcpus": vms * vcpus, "updates": updates, "elapsed_s": elapsed,
        "apply_ms_first": apply_ms[0], "apply_ms_p50": statistics.median(apply_ms[1:] or apply_ms),
        "apply_ms_p95": pct(apply_ms[1:] or apply_ms, 0.95), "apply_ms_max": max(apply_ms[1:] or apply_ms),
        "prepare_ms_p50": statistics.median(prepare_ms), "build_ms_p50": statistics.median(build_ms),
        "resort_ms": resort_ms, "rss_mb": rss, "peak_rss_mb": hwm,
        "base_rss_mb": base_rss, "model_rss_mb": model_rss,
        "idle_ms": statistics.median(idle_ms), "gc_full": watch.full, "gc_full_ms_max": max(watch.full_ms, default=0.0),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--vcpus", type=int, default=8)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    r = asyncio.run(run(args.vms, args.vcpus, args.updates, args.quiet))
    ok_apply = r["apply_ms_p50"] <= TARGET_APPLY_MS
    ok_rss = r["rss_mb"] <= TARGET_RSS_MB
    print(f"bench_ui: {r['vms']} VMs x {args.vcpus} vCPUs ({r['vcpus']} vCPUs), {r['updates']} updates "
          f"in {r['elapsed_s']:.0f} s")
    print(f"  apply to UI (UI thread, incl. repaint): first {r['apply_ms_first']:.1f} ms, "
          f"p50 {r['apply_ms_p50']:.1f} ms, p95 {r['apply_ms_p95']:.1f} ms, max {r['apply_ms_max']:.1f} ms "
          f"(target <= {TARGET_APPLY_MS:.0f} ms: {'OK' if ok_apply else 'MISSED'})")
    print(f"  (of which the test driver's idle wait: {r['idle_ms']:.0f} ms)")
    print(f"  prepare (feed worker thread): p50 {r['prepare_ms_p50']:.1f} ms; "
          f"SnapshotBuilder.build: p50 {r['build_ms_p50']:.0f} ms")
    print(f"  re-sort 1,000 rows (I): {r['resort_ms']:.1f} ms")
    print(f"  RSS after {r['updates']} updates: {r['rss_mb']:.1f} MB (peak {r['peak_rss_mb']:.1f} MB; "
          f"target <= {TARGET_RSS_MB:.0f} MB: {'OK' if ok_rss else 'MISSED'})")
    print(f"  for scale: interpreter + imports {r['base_rss_mb']:.0f} MB; + SnapshotBuilder and one snapshot "
          f"(no UI) {r['model_rss_mb']:.0f} MB")
    print(f"  full GC collections: {r['gc_full']} (longest {r['gc_full_ms_max']:.0f} ms)")
    return 0 if ok_apply and ok_rss else 1


if __name__ == "__main__":
    raise SystemExit(main())
