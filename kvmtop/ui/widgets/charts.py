"""plotext charts of the guest screen: a latency distribution and rates over time.

Both say what their axes mean: the distribution's y axis is the share of the events per
doubling of latency (log-linear buckets are not equally wide on a log axis, so counts are
turned into a density), with the p50 and p99 marked and labelled; the rate chart's x axis
is in whole seconds before now and its legend sits in the border, off the data.
"""

from __future__ import annotations

import math

from rich.text import Text
from textual_plotext import PlotextPlot

from ... import history
from ...histogram import bucket_bounds
from ...model import Breakdown, CollectorStatus, Latency
from .. import format as fmt

SERIES_COLORS = ("cyan", "magenta", "green", "yellow", "blue", "red")
MAX_SERIES = 4
MARKERS = (("p50", "green"), ("p99", "yellow"))
TIME_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)  # seconds between x ticks
MAX_TIME_TICKS = 6


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


def share_ticks(top: float) -> tuple[list[float], list[str]]:
    """0 and one or two round percentages up to ``top`` (a percentage)."""
    step = next((s for s in (1, 2, 5, 10, 20, 25, 50, 100) if top / s <= 2.5), 100)
    ticks = [float(t) for t in range(0, int(top) + 1, step)] or [0.0]
    return ticks, [f"{t:g}%" for t in ticks]


def time_ticks(span_s: float) -> tuple[list[float], list[str]]:
    """Ticks at whole seconds (a round step) from ``-span_s`` to 0, labelled ``-30s`` … ``now``."""
    step = next((s for s in TIME_STEPS if span_s / s <= MAX_TIME_TICKS - 1), TIME_STEPS[-1])
    ticks = [-float(t) for t in range(0, int(span_s) + 1, step)][::-1]
    labels = ["now" if t == 0 else (f"{t:g}s" if step < 60 else f"{t / 60:g}m") for t in ticks]
    return ticks, labels


def density(latency: Latency) -> tuple[list[float], list[float]]:
    """(log10 of each bucket's middle, % of the events per doubling of latency there)."""
    xs: list[float] = []
    ys: list[float] = []
    for index, n in latency.buckets:
        lo, hi = bucket_bounds(index)
        xs.append(math.log10(max(1.0, (lo + hi) / 2)))
        doublings = max(1e-3, math.log2(hi) - math.log2(max(lo, 1)))
        ys.append(100.0 * n / latency.count / doublings)
    return xs, ys


class LatencyChart(PlotextPlot):
    """Distribution of one exit reason's (or round trip's) latency on a log10 time axis."""

    DEFAULT_CLASSES = "chart"

    shown: Latency | None = None  # the distribution on the chart

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

    def show(self, latency: Latency | None, name: str, why: str = "") -> None:
        self.shown = latency
        self.border_title = f"Latency distribution: {name}" if name else "Latency distribution"
        self.border_subtitle = "y: % of events per 2× of latency" if latency is not None and latency.count else ""
        if latency is None or not latency.count:
            self._empty(why or "no exits of this reason this interval")
            return
        xs, ys = density(latency)
        plt = self.plt
        plt.clear_figure()
        plt.plot(xs, ys, color="cyan", marker="hd", fillx=True)
        left, right = min(xs) - 0.1, max(xs) + 0.1
        plt.xlim(left, right)
        ticks, labels = _log_ticks(left, right)
        plt.xticks(ticks, labels)
        top = max(ys)
        plt.ylim(0, top * 1.25)  # head room for the markers' labels
        plt.yticks(*share_ticks(top))
        for label, color in MARKERS:
            q = getattr(latency, label)
            if q > 0:
                x = math.log10(q)
                plt.vline(x, color)
                plt.text(label, x, top * 1.15, color=color, alignment="center")
        plt.title(f"n={fmt.count(latency.count)}  p50 {fmt.duration(latency.p50)}  "
                  f"p99 {fmt.duration(latency.p99)}  max {fmt.duration(latency.max)}")
        self.refresh()


class RateChart(PlotextPlot):
    """Events per second of the top reasons (or userspace exits) over the history window."""

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
            self.border_subtitle = ""
            plt.title("no exits to plot")
            plt.xticks([], [])
            plt.yticks([], [])
            self.refresh()
            return
        n = max(len(s) for _, s in series)
        xs = [(i - n + 1) * interval_s for i in range(n)]
        top = 0.0
        legend = Text()
        for (name, values), color in zip(series, SERIES_COLORS):
            vals = list(values)
            top = max(top, max(vals, default=0.0))
            plt.plot(xs[-len(vals):], vals, color=color, marker="braille")
            legend.append("━ ", style=color).append(f"{name}  ")
        legend.rstrip()
        self.border_subtitle = legend
        left = min(xs[0], -interval_s)  # a single interval still spans one
        plt.xlim(left, 0)
        plt.xticks(*time_ticks(-left))
        if top > 0:
            ticks = [top * f for f in (0, 0.5, 1.0)]
            plt.yticks(ticks, [fmt.rate(t) for t in ticks])
        self.refresh()
