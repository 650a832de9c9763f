"""Hosts where kvm_exit never fires are first-class: userspace exits take the exits' place,
the charts follow the table in use, and "no source" reads n/a the same way live and in replay."""

from __future__ import annotations

import dataclasses

import pytest
from fake_sources import make_interval
from ui_helpers import column, first_snapshot, header_text, open_guest, wait_for

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.feed import Feed
from kvmtop.model import CollectorStatus
from kvmtop.sources.demo import DemoSource
from kvmtop.stepped_feed import demo_feed
from kvmtop.text import render
from kvmtop.ui.app import make_app
from kvmtop.ui.widgets.charts import LatencyChart, RateChart
from kvmtop.ui.widgets.userspace_table import UserspaceTable
from kvmtop.ui.widgets.vcpu_table import VcpuTable
from kvmtop.ui.widgets.vm_table import VmTable, vm_key

SIZE = (140, 42)
PVM = {"exits": False, "requests": False, "hypercalls": True, "userspace": True}  # as the live collector says


def test_request_bits_and_hypercalls_have_no_source_where_exits_have_none():
    status = CollectorStatus(features=PVM)
    assert not status.has("exits") and not status.has("requests") and not status.has("hypercalls")
    assert status.has("userspace")
    assert CollectorStatus(features={"hypercalls": True}).has("hypercalls")
    assert not CollectorStatus(features={"exits": True, "hypercalls": False}).has("hypercalls")


def test_text_output_says_na_for_hypercalls_without_a_source():
    interval = dataclasses.replace(make_interval(2), status=CollectorStatus(features=PVM))
    text = render(SnapshotBuilder().build(interval))
    assert "hypercalls n/a" in text and "hypercalls 0/s" not in text  # the header and every VM
    assert "hypercalls 0/s" in render(SnapshotBuilder().build(make_interval(2)))


class RecordedPvm:
    """A recording made on a host where kvm_exit never fires."""

    name = "recording"
    paced = False

    def __init__(self, n: int) -> None:
        src = DemoSource(vms=3, exits=False)
        self.intervals = [dataclasses.replace(src.next_interval(), status=CollectorStatus(features=PVM))
                          for _ in range(n)]

    def open(self): ...
    def close(self): ...
    def reset(self): ...
    def next_interval(self): return None


@pytest.mark.ui
@pytest.mark.parametrize("replay", [False, True])
async def test_hypercalls_read_na_live_and_in_replay_alike(replay):
    feed = Feed(RecordedPvm(5), speed=1000.0) if replay else demo_feed(vms=3, exits=False)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and (not replay or app.snapshot.seq == 5))
        await pilot.pause()
        assert "Hypercalls n/a" in header_text(app)
        keys = [c.key for c in app.screen.query_one(VmTable).shown_columns]
        assert "hcall" not in keys and "user" in keys  # the userspace layout
        await open_guest(pilot)
        assert "hypercalls n/a" in app.screen.query_one("#guest-title").render().plain
        assert "kvm_exit" in str(app.screen.query_one("#hypercalls").render())


@pytest.mark.ui
async def test_latency_chart_follows_the_table_in_use():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await open_guest(pilot)
        guest = app.screen
        vm = next(v for v in app.snapshot.vms if vm_key(v) == guest.vm_key)
        chart, rates = guest.query_one(LatencyChart), guest.query_one(RateChart)
        top_reason = max(vm.reasons, key=lambda r: r.count)
        assert str(chart.border_title).endswith(top_reason.name)
        assert "top reasons" in str(rates.border_title)

        await pilot.press("tab")  # vCPUs: the highlighted vCPU's exit latency
        await pilot.pause()
        assert app.focused is guest.query_one(VcpuTable)
        assert str(chart.border_title).endswith(f"{vm.vcpus[0].label} exits")
        await pilot.press("down")
        await pilot.pause()
        assert str(chart.border_title).endswith(f"{vm.vcpus[1].label} exits")

        await pilot.press("tab")  # userspace exits: the round trip of the highlighted KVM_EXIT_*
        await pilot.pause()
        userspace = guest.query_one(UserspaceTable)
        assert app.focused is userspace
        first = max(vm.userspace_exits, key=lambda u: u.count)
        assert str(chart.border_title).endswith(f"{first.name} round trip")
        assert "Userspace exit rate" in str(rates.border_title)
        assert chart.shown is first.latency


@pytest.mark.ui
async def test_without_kvm_exit_the_charts_show_the_vmm_round_trip():
    app = make_app(demo_feed(vms=4, exits=False))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await open_guest(pilot)
        guest = app.screen
        vm = next(v for v in app.snapshot.vms if vm_key(v) == guest.vm_key)
        userspace = guest.query_one(UserspaceTable)
        assert app.focused is userspace
        assert column(app, "name", UserspaceTable) == [u.name.removeprefix("KVM_EXIT_")
                                                      for u in sorted(vm.userspace_exits, key=lambda u: -u.count)]
        chart = guest.query_one(LatencyChart)
        second = sorted(vm.userspace_exits, key=lambda u: -u.count)[1]
        await pilot.press("down")
        await pilot.pause()
        assert str(chart.border_title).endswith(f"{second.name} round trip")
        assert chart.shown is second.latency
        # the vCPU table's layout: userspace columns instead of n/a exit columns
        vcpus = guest.query_one(VcpuTable)
        assert [c.key for c in vcpus.shown_columns][:4] == ["vcpu", "tid", "user", "utop"]
