"""Charts that can be read: the latency distribution's y scale and labelled percentile
markers, the rate chart's whole-second time axis and legend off the data, and table
sparklines on one shared scale or each row's own (`s`)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from ui_helpers import column, first_snapshot, open_guest, region_text, wait_for

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.histogram import bucket_bounds
from kvmtop.model import Latency
from kvmtop.sources.demo import DemoSource
from kvmtop.stepped_feed import demo_feed
from kvmtop.ui import format as fmt
from kvmtop.ui.app import make_app
from kvmtop.ui.prepare import VmView, prepare
from kvmtop.ui.screens.guest import GuestScreen
from kvmtop.ui.widgets.charts import LatencyChart, RateChart, density, share_ticks, time_ticks
from kvmtop.ui.widgets.vcpu_table import VcpuTable
from kvmtop.ui.widgets.vm_table import VmTable, cells_of, trend_top_of, trend_window, vm_key

LARGE = (200, 50)


# --------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize("span", [9, 59, 119, 599, 3599])
def test_time_ticks_are_whole_seconds_on_a_round_step(span):
    ticks, labels = time_ticks(span)
    assert ticks[-1] == 0 and labels[-1] == "now" and 2 <= len(ticks) <= 6
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert len(steps) == 1 and all(t == int(t) for t in ticks)
    assert -ticks[0] <= span


def test_latency_density_is_a_share_per_doubling():
    lat = Latency.from_values([800] * 50 + [1_500] * 30 + [40_000] * 20)
    xs, ys = density(lat)
    total = sum(y * (math.log2(bucket_bounds(i)[1]) - math.log2(bucket_bounds(i)[0]))
                for (i, _), y in zip(lat.buckets, ys))
    assert total == pytest.approx(100.0)  # the areas add up to every event
    assert xs == sorted(xs)


def test_share_ticks_are_round_percentages():
    assert share_ticks(43.2) == ([0.0, 20.0, 40.0], ["0%", "20%", "40%"])
    ticks, labels = share_ticks(7.5)
    assert ticks[0] == 0 and labels[-1].endswith("%") and ticks[-1] <= 7.5


def test_a_shared_sparkline_scale_keeps_small_rows_low():
    small, big = [10.0] * 8, [1000.0] * 8
    top = fmt.spark_top([small, big], 8)
    assert top == 1000.0
    assert fmt.spark(small, 8, top=top) == "▁" * 8
    assert fmt.spark(small, 8) == "█" * 8  # on its own, a steady row looks maxed out
    assert fmt.spark(big, 8, top=top) == "█" * 8


def test_the_rows_sparklines_drawn_at_once_are_each_rows_own():
    """fmt.sparks (every row of the guests table in one pass) gives each row the characters
    fmt.spark gives it alone: float32 history values, rounding edges, zeros and a short window."""
    rng = np.random.default_rng(7)
    top = 1000.0
    window = rng.uniform(0, top, (40, 16)).astype(np.float32)
    window[0] = np.float32(top) * (np.arange(16) + 0.5) / 7  # values on the .5 rounding edges
    window[1] = 0.0
    window[2, :5] = np.float32(top) * 2  # above the scale
    for width, cols, scale in ((16, 16, top), (16, 5, top), (8, 16, top), (16, 16, 0.0), (16, 0, top)):
        part = window[:, :cols]
        assert fmt.sparks(part, width, scale) == [fmt.spark(row.tolist(), width, top=scale) for row in part]


def test_the_prepared_rows_trends_are_the_rows_own():
    """The rows the feed worker prepares (their TRENDs drawn at once) are the rows made one by one,
    with a history shorter than the TREND column and a full one."""
    builder, source = SnapshotBuilder(), DemoSource(vms=12)
    for steps in (10, 20):
        for _ in range(steps):
            snap = builder.build(source.next_interval())
        assert trend_window(snap, snap.collector) is not None  # drawn at once, not row by row
        prepared = prepare(snap, None, True, VmView())[1]
        one_by_one = cells_of(snap, list(range(len(snap.vms))), trend_top_of(snap, snap.collector))
        assert prepared.sigs == one_by_one.sigs and len(prepared) == 12


# --------------------------------------------------------------------------- on screen


@pytest.mark.ui
async def test_latency_chart_has_a_y_scale_and_labelled_percentiles():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=LARGE) as pilot:
        await first_snapshot(pilot)
        guest = await open_guest(pilot)
        chart = guest.query_one(LatencyChart)
        text = region_text(app, chart)
        assert "p50" in text.split("n=")[1] and "p99" in text.split("n=")[1]  # markers, past the title
        assert re.search(r"\d+%┤", text) and "0%┤" in text  # a y scale in percent
        assert "% of events per 2×" in str(chart.border_subtitle)


@pytest.mark.ui
async def test_rate_chart_time_axis_and_legend_off_the_data():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=LARGE) as pilot:
        await first_snapshot(pilot)
        guest = await open_guest(pilot)
        chart = guest.query_one(RateChart)
        vm = next(v for v in app.snapshot.vms if vm_key(v) == guest.vm_key)
        names = [r.name for r in vm.reasons[:4]]
        legend = str(chart.border_subtitle)
        assert all(n in legend for n in names)
        inside = region_text(app, chart).splitlines()[1:-1]  # the border rows hold title and legend
        assert not any(n in line for n in names for line in inside)
        axis = next(line for line in inside if "now" in line)
        assert re.findall(r"-\d+s", axis) and not re.search(r"\d\.\d", axis)  # whole seconds


@pytest.mark.ui
async def test_s_toggles_shared_and_per_row_trend_scales():
    app = make_app(demo_feed(vms=8))
    async with app.run_test(size=LARGE) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        shared = dict(zip(column(app, "name"), column(app, "trend")))
        smallest = min(app.snapshot.vms, key=lambda v: max(v.history[-16:]))
        assert set(shared[smallest.name]) <= set("▁▂▃ ")  # low on the shared scale
        assert table.columns["trend"].label.plain.strip() == "TREND"
        await pilot.press("s")
        await wait_for(pilot, lambda: not app.view.trends_shared)
        await pilot.pause()
        own = dict(zip(column(app, "name"), column(app, "trend")))
        assert "█" in own[smallest.name]  # its own maximum reaches the top
        assert table.columns["trend"].label.plain.strip() == "TREND row"
        # the guest screen's vCPU table follows
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        vcpus = app.screen.query_one(VcpuTable)
        assert vcpus.columns["trend"].label.plain.strip() == "TREND row"
        await pilot.press("s")
        await wait_for(pilot, lambda: app.view.trends_shared)
        await pilot.pause()
        assert vcpus.columns["trend"].label.plain.strip() == "TREND"

