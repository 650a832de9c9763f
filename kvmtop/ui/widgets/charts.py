"""plotext charts of the guest screen: a latency distribution and rates over time."""

from __future__ import annotations

import math

from textual_plotext import PlotextPlot

from ... import history
from ...histogram import bucket_bounds
from ...model import Breakdown, CollectorStatus, Latency
from .. import format as fmt

SERIES_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "red")
MAX_SERIES = 4


def _log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Ticks at powers of ten (and the 3x in between when the range is narrow)."""
    ticks, labels = [], []
    for e in range(int(math.floor(lo)), int(math.ceil(hi)) + 1):
        for m in ((1, 3) if hi - lo < 3 else (1,)):
            x = e + math.log10(m)
            if lo - 0.05 <= x <= hi + 0.05:
                ticks.append(x)
                labels.append(fmt.duration(10 ** x))
    return ticks, labels


class LatencyChart(PlotextPlot):
    """Histogram of one exit reason's latency on a log10 time axis, with p50/p99 markers.

    Bar heights are exits per decade of latency (a density), since the log-linear buckets
    are not of equal width on a log axis.
    """

    DEFAULT_CLASSES = "chart"

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = "Latency distribution"
        self._empty("no data yet")

    def _empty(self, why: str) -> None:
        plt = self.plt
        plt.clear_figure()
        plt.title(why)
        plt.xticks([], [])
        plt.yticks([], [])
        self.refresh()

    shown: Latency | None = None  # the distribution on the chart

    def show(self, latency: Latency | None, name: str, why: str = "") -> None:
        self.shown = latency
        self.border_title = f"Latency distribution: {name}" if name else "Latency distribution"
        if latency is None or not latency.count:
            self._empty(why or "no exits of this reason this interval")
            return
        xs: list[float] = []
        ys: list[float] = []
        for index, n in latency.buckets:
            lo, hi = bucket_bounds(index)
            xs.append(math.log10(max(1.0, (lo + hi) / 2)))
            # Buckets are log-linear, not equal on a log axis: plot density per decade.
            ys.append(n / max(1e-3, math.log10(hi) - math.log10(max(lo, 1))))
        plt = self.plt
        plt.clear_figure()
        plt.plot(xs, ys, color="cyan", marker="hd", fillx=True)
        left, right = min(xs) - 0.1, max(xs) + 0.1
        plt.xlim(left, right)
        ticks, labels = _log_ticks(left, right)
        plt.xticks(ticks, labels)
        for q, color in ((latency.p50, "green"), (latency.p99, "yellow")):
            if q > 0:
                plt.vline(math.log10(q), color)
        plt.title(f"n={fmt.count(latency.count)}  p50 {fmt.duration(latency.p50)}  "
                  f"p99 {fmt.duration(latency.p99)}  max {fmt.duration(latency.max)}")
        plt.yticks([], [])
        self.refresh()


class RateChart(PlotextPlot):
    """Exits per second of the top reasons (or userspace exits) over the history window."""

    DEFAULT_CLASSES = "chart"

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = "Exit rate over time"

    def show(self, b: Breakdown, status: CollectorStatus, interval_s: float, userspace: bool = False) -> None:
        """Top exit reasons; top KVM_EXIT_* reasons with ``userspace`` or where exits have no source."""
        plt = self.plt
        plt.clear_figure()
        series: list[tuple[str, tuple[float, ...]]] = []
        if status.has("exits") and b.reasons and not userspace:
            self.border_title = "Exit rate over time (top reasons, /s)"
            for r in b.reasons[:MAX_SERIES]:
                series.append((r.name, b.reason_history(r.key)))
        elif b.userspace_exits:
            self.border_title = "Userspace exit rate over time (/s)"
            for u in b.userspace_exits[:MAX_SERIES]:
                series.append((u.name.removeprefix("KVM_EXIT_"),
                               b.hist.series(b.entity, history.USERSPACE, u.code)))
        if not series or not any(len(s) for _, s in series):
            plt.title("no exits to plot")
            plt.xticks([], [])
            plt.yticks([], [])
            self.refresh()
            return
        n = max(len(s) for _, s in series)
        xs = [(i - n + 1) * interval_s for i in range(n)]
        top = 0.0
        for (name, values), color in zip(series, SERIES_COLORS):
            vals = list(values)
            top = max(top, max(vals, default=0.0))
            plt.plot(xs[-len(vals):], vals, label=name, color=color, marker="braille")
        plt.xlabel("seconds ago")
        if top > 0:
            ticks = [top * f for f in (0, 0.5, 1.0)]
            plt.yticks(ticks, [fmt.rate(t) for t in ticks])
        self.refresh()
