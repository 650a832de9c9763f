"""Rows whose events a full BPF map cut, and vCPUs stuck in their VMM, are marked on the row
in the JSON, the text tables and the dashboard (issue 8 §2, issue 12)."""

from __future__ import annotations

from kvmtop import marks
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.model import CollectorStatus, InFlight, Interval, Latency, Stat, ThreadInterval, VmIdentity
from kvmtop.snapshot_json import snapshot_to_dict
from kvmtop.stepped_feed import SteppedFeed
from kvmtop.text import render
from kvmtop.ui.app import make_app
from kvmtop.ui.screens.guest import GuestScreen
from kvmtop.ui.widgets.reason_table import ReasonTable, reason_cells
from kvmtop.ui.widgets.userspace_table import UserspaceTable
from kvmtop.ui.widgets.vm_table import VmTable, vm_cells, vm_key

KVM_EXIT_IO, KVM_EXIT_MMIO = 2, 6
STUCK = 3_200_000_000


def interval(stuck_ns: int = STUCK) -> Interval:
    """VM 10 ("cut"): a full map cut 97 of its IO exits, an EPT row and a request bit; its
    vCPU 0 has had an MMIO exit for ``stuck_ns``. VM 20 ("whole"): nothing cut."""
    lat = Latency.from_values([5_000] * 263)
    cut = ThreadInterval(
        pid=10, tid=11,
        reasons={(1, 48): Stat(20, Latency.from_values([800] * 20), lost=4)},
        userspace={KVM_EXIT_IO: Stat(263, lat, lost=97), KVM_EXIT_MMIO: Stat(0, lost=5)},
        requests={14: 3}, requests_lost={14: 2, 40: 1},
        in_userspace=InFlight(KVM_EXIT_MMIO, stuck_ns))
    cut2 = ThreadInterval(pid=10, tid=12, userspace={KVM_EXIT_IO: Stat(10, Latency.from_values([4_000] * 10))},
                          in_userspace=InFlight(KVM_EXIT_IO, 20_000))  # in flight, but briefly
    whole = ThreadInterval(pid=20, tid=21, userspace={KVM_EXIT_IO: Stat(50, Latency.from_values([5_000] * 50))})
    vms = {10: VmIdentity(10, "cut", 1, {11: 0, 12: 1}), 20: VmIdentity(20, "whole", 1, {21: 0})}
    status = CollectorStatus(drops=109, drops_by_kind={"exits": 4, "userspace": 102, "requests": 3},
                             drops_by_map={"stats": 106, "requests": 3})
    return Interval(time=1_700_000_000.0, interval_s=1.0, threads=(cut, cut2, whole), vms=vms, status=status)


def snapshot(stuck_ns: int = STUCK):
    return SnapshotBuilder().build(interval(stuck_ns))


def test_json_marks_the_rows_and_says_what_is_in_flight():
    d = snapshot_to_dict(snapshot())
    vm = next(v for v in d["vms"] if v["pid"] == 10)
    io = next(u for u in vm["userspace_exits"] if u["code"] == KVM_EXIT_IO)
    assert (io["count"], io["lost"], io["latency_ns"]["count"]) == (273, 97, 273)
    mmio = next(u for u in vm["userspace_exits"] if u["code"] == KVM_EXIT_MMIO)
    assert (mmio["count"], mmio["lost"]) == (0, 5)  # a row that lost every event still shows
    assert vm["reasons"][0]["lost"] == 4
    assert {r["bit"]: (r["count"], r["lost"]) for r in vm["requests"]} == {14: (3, 2), 40: (0, 1)}
    assert vm["lost"] == 4 + 97 + 5 + 3
    v0 = next(v for v in vm["vcpus"] if v["tid"] == 11)
    assert v0["lost"] == vm["lost"]
    assert v0["in_userspace"] == {"code": KVM_EXIT_MMIO, "name": "KVM_EXIT_MMIO", "ns": STUCK}
    assert next(v for v in vm["vcpus"] if v["tid"] == 12)["in_userspace"]["ns"] == 20_000
    assert vm["in_userspace"] == {"tid": 11, "index": 0, "code": KVM_EXIT_MMIO, "name": "KVM_EXIT_MMIO",
                                  "ns": STUCK}
    other = next(v for v in d["vms"] if v["pid"] == 20)
    assert other["lost"] == 0 and other["in_userspace"] is None
    assert all(u["lost"] == 0 for u in other["userspace_exits"])
    assert d["host"]["lost"] == vm["lost"]
    assert d["collector"]["drops"] == 109
    assert d["collector"]["drops_by_kind"] == {"exits": 4, "userspace": 102, "requests": 3}


def test_text_marks_the_rows_and_the_stuck_vcpu():
    out = render(snapshot())
    lines = out.splitlines()
    header = next(ln for ln in lines if ln.startswith("VM cut"))
    assert "! 109 lost: BPF map full" in header
    assert "! vCPU 0 in userspace for 3.20s (KVM_EXIT_MMIO)" in header
    io = next(ln for ln in lines if ln.strip().startswith("KVM_EXIT_IO") and "≥" in ln)
    assert "≥273" in io and io.endswith("! 97 lost: BPF map full")
    assert any("≥0" in ln and "! 5 lost" in ln for ln in lines if "KVM_EXIT_MMIO" in ln)
    assert "drops 109 (exits 4, userspace 102, requests 3)" in out
    whole = out[out.index("VM whole"):]
    assert "≥" not in whole and "lost" not in whole and "in userspace" not in whole


def test_a_short_round_trip_in_flight_is_not_called_stuck():
    snap = snapshot(stuck_ns=marks.STUCK_NS - 1)
    out = render(snap)
    assert "in userspace for" not in out
    vm = snap.vm(10)
    assert marks.stuck_vcpu(vm) is None and vm.longest_in_userspace.tid == 11
    assert snapshot_to_dict(snap)["vms"][0]["in_userspace"]["ns"] == marks.STUCK_NS - 1  # still said in JSON


def test_dashboard_cells_mark_cut_figures_and_the_stuck_vcpu():
    snap = snapshot()
    cut, whole = snap.vm(10), snap.vm(20)
    keys = [c.key for c in VmTable.COLUMNS]  # the exit layout: every column
    cells = dict(zip(keys, vm_cells(cut, snap.collector)))
    assert cells["user"].plain == "3.20s!" and "red" in str(cells["user"].style)
    assert cells["exits"].plain.startswith("≥") and "red" in str(cells["exits"].style)
    cells = dict(zip(keys, vm_cells(snapshot(stuck_ns=1000).vm(10), snap.collector)))
    assert cells["user"].plain.startswith("≥")  # not stuck: the rate, marked as a lower bound
    cells = dict(zip(keys, vm_cells(whole, snap.collector)))
    assert not any(c.plain.startswith("≥") for c in cells.values()) and not cells["user"].plain.endswith("!")
    ept = cut.reasons[0]
    assert reason_cells(ept, cut.exits)[1].plain == "≥20"


class OneInterval:
    name, paced = "test", True

    def open(self): ...
    def close(self): ...
    def reset(self): ...

    def next_interval(self):
        return interval()


async def test_guest_screen_says_what_was_cut_and_who_is_stuck():
    app = make_app(SteppedFeed(OneInterval(), warmup=1))
    async with app.run_test(size=(140, 42)) as pilot:
        while app.snapshot is None:
            await pilot.pause(0.02)
        await pilot.pause()
        table = app.screen.query_one(VmTable)
        table.move_cursor(row=table.order.index(vm_key(app.snapshot.vm(10))))
        await pilot.press("enter")
        while not isinstance(app.screen, GuestScreen):
            await pilot.pause(0.02)
        await pilot.pause()
        title = str(app.screen.query_one("#guest-title").render())
        assert "109 lost: BPF map full" in title and "vCPU 0 in userspace for 3.20s (KVM_EXIT_MMIO)" in title
        reasons = app.screen.query_one(ReasonTable)
        assert reasons.get_row_at(0)[1].plain == "≥20"
        userspace = app.screen.query_one(UserspaceTable)
        shown = dict(zip((c.key for c in userspace.shown_columns), userspace.get_row_at(0)))
        assert shown["rate"].plain == "≥273"  # the rate: a column every width shows
