"""htop's keys in the dashboard: Ctrl+C and F10 quit, F1 help, F3 find, F4 filter, F5 tree,
F6 sort (in every table), the footer's function keys, replay-only and live-only keys."""

from __future__ import annotations

import pytest
from fake_sources import RecordedList
from textual.command import CommandList, CommandPalette
from ui_helpers import column, first_snapshot, footer_keys, header_text, rows, wait_for

from kvmtop.feed import Feed
from kvmtop.stepped_feed import demo_feed
from kvmtop.ui.app import make_app
from kvmtop.ui.screens.guest import GuestScreen
from kvmtop.ui.screens.help import HelpScreen
from kvmtop.ui.screens.main import MainScreen
from kvmtop.ui.screens.sort import SortScreen
from kvmtop.ui.widgets.reason_table import ReasonTable
from kvmtop.ui.widgets.vcpu_table import VcpuTable
from kvmtop.ui.widgets.vm_table import VmTable, vm_key

pytestmark = pytest.mark.ui

SIZE = (140, 42)


@pytest.mark.parametrize("key", ["ctrl+c", "f10", "q"])
async def test_ctrl_c_f10_and_q_quit(key):
    feed = demo_feed(vms=2)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("enter")  # from a guest screen too
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.press(key)
        await pilot.pause()
    assert app.return_code == 0 and feed.stopped


async def test_ctrl_c_quits_while_typing_in_the_find_box():
    app = make_app(demo_feed(vms=2))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("f3", "w")
        assert app.focused.id == "find"
        await pilot.press("ctrl+c")
        await pilot.pause()
    assert app.return_code == 0


async def test_f1_opens_help_and_the_footer_shows_function_keys_first():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        keys = footer_keys(app)
        assert keys[:6] == ["F1", "F3", "F4", "F5", "F6", "F10"]
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        keys = footer_keys(app)
        assert keys[:3] == ["F1", "F6", "F10"]


async def test_f3_finds_and_f3_again_finds_the_next_match():
    app = make_app(demo_feed(vms=12))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        names = column(app, "name")
        matches = [i for i, n in enumerate(names) if "-0" in n]
        assert len(matches) >= 2
        await pilot.press("f3", "-", "0")
        await pilot.pause()
        assert table.cursor_row == matches[0]
        await pilot.press("f3")
        await pilot.pause()
        assert table.cursor_row == matches[1]
        assert len(table.order) == 12  # find hides nothing
        await pilot.press("enter")
        assert app.focused is table


async def test_f4_hides_rows_that_do_not_match_and_escape_clears():
    app = make_app(demo_feed(vms=12))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        everyone = column(app, "name")
        await pilot.press("f4", *"db-*")
        await pilot.pause()
        assert column(app, "name") == [n for n in everyone if n.startswith("db-")] != []
        await pilot.press("enter")  # keep it
        await pilot.pause()
        assert app.focused is app.screen.query_one(VmTable)
        assert "Rows db-*" in header_text(app)
        # the header's host figures stay whole (htop's filter hides rows only)
        assert f"VMs {len(everyone)}" in header_text(app)
        # still filtered after the next interval
        app.feed.step()
        await wait_for(pilot, lambda: app.snapshot.seq == 61)
        await pilot.pause()
        assert all(n.startswith("db-") for n in column(app, "name"))
        await pilot.press("backslash")  # htop's other filter key reopens the box
        await pilot.press("escape")
        await pilot.pause()
        assert sorted(column(app, "name")) == sorted(everyone)
        assert "Rows" not in header_text(app)


async def test_f4_takes_regular_expressions():
    app = make_app(demo_feed(vms=12))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("f4", *"^(redis|nginx)")
        await pilot.pause()
        shown = column(app, "name")
        assert shown and all(n.startswith(("redis", "nginx")) for n in shown)


async def test_f5_shows_vcpus_under_their_guest_and_opens_a_vcpu():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("f5")
        await pilot.pause()
        snap = app.snapshot
        table = app.screen.query_one(VmTable)
        assert len(table.order) == len(snap.vms) + sum(len(v.vcpus) for v in snap.vms)
        first = next(v for v in snap.vms if vm_key(v) == table.order[0])
        branch = rows(app)[1 : 1 + len(first.vcpus)]
        assert [r[0].strip()[:2] for r in branch] == ["├─"] * (len(first.vcpus) - 1) + ["└─"]
        # under the guest, vCPUs sort by the same column (exits/s, descending)
        by_rate = sorted(first.vcpus, key=lambda v: -v.exits_per_s)
        assert [r[0].split("─ ")[1] for r in branch] == [v.label for v in by_rate]
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        assert app.screen.tid == by_rate[0].tid
        await pilot.press("escape", "t")  # htop's other tree key
        await pilot.pause()
        assert len(table.order) == len(snap.vms)


async def test_sort_keys_work_in_the_guest_screens_tables():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await wait_for(pilot, lambda: "Sort RATE/s ▼" in header_text(app))
        guest = app.screen
        vm = next(v for v in app.snapshot.vms if vm_key(v) == guest.vm_key)

        def reasons():
            return column(app, "name", ReasonTable)

        assert reasons() == [r.name for r in sorted(vm.reasons, key=lambda r: -r.count)]
        await pilot.press("I")
        await pilot.pause()
        assert reasons() == [r.name for r in sorted(vm.reasons, key=lambda r: r.count)]
        await pilot.press("f6")
        await wait_for(pilot, lambda: isinstance(app.screen, SortScreen))
        await pilot.press("home", "enter")  # EXIT REASON, A to Z
        await wait_for(pilot, lambda: app.screen is guest)
        await pilot.pause()
        assert reasons() == sorted(r.name for r in vm.reasons)
        await wait_for(pilot, lambda: "Sort EXIT REASON ▲" in header_text(app))
        await pilot.press("greater_than_sign", "greater_than_sign")  # COUNT, then RATE/s
        await pilot.pause()
        assert guest.query_one(ReasonTable).sort_column == "rate"

        # the vCPU table: by vCPU number first, then by exits/s with `>`
        await pilot.press("tab")
        vcpus = guest.query_one(VcpuTable)
        assert app.focused is vcpus
        await wait_for(pilot, lambda: "Sort vCPU ▲" in header_text(app))
        assert column(app, "vcpu", VcpuTable) == [str(v.index) for v in vm.vcpus]
        await pilot.press("greater_than_sign", "greater_than_sign")
        await pilot.pause()
        assert vcpus.sort_column == "exits"
        expected = [str(v.index) for v in sorted(vm.vcpus, key=lambda v: -v.exits_per_s)]
        assert column(app, "vcpu", VcpuTable) == expected
        await wait_for(pilot, lambda: "Sort EXITS/s ▼" in header_text(app))

        # back on the main screen, the header describes the guest table's sort again
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await wait_for(pilot, lambda: "Sort EXITS/s ▼" in header_text(app))


async def test_clicking_a_reason_header_sorts_by_it():
    app = make_app(demo_feed(vms=2))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        table = app.screen.query_one(ReasonTable)
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:6]) + 2  # P99
        await pilot.click(ReasonTable, offset=(x, 1))
        await pilot.pause()
        assert table.sort_column == "p99"
        vm = next(v for v in app.snapshot.vms if vm_key(v) == app.screen.vm_key)
        expected = [r.name for r in sorted(vm.reasons, key=lambda r: -r.latency.p99)]
        assert column(app, "name", ReasonTable) == expected


async def test_interval_keys_are_not_offered_in_a_replay():
    feed = Feed(RecordedList(5), speed=1000.0)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.seq == 5)
        before = header_text(app)
        await pilot.press("plus", "plus")
        await pilot.pause()
        assert feed.interval_s == 1.0 and "Interval 1s" in header_text(app) and "Interval 1s" in before
        assert app.check_action("interval", (1,)) is False
        titles = await palette_titles(pilot)
        assert "Longer interval" not in titles and "Replay: step" in titles


async def test_live_offers_interval_keys_and_not_replay_keys_and_keys_once():
    app = make_app(demo_feed(vms=2))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        titles = await palette_titles(pilot)
        assert "Longer interval" in titles and "Replay: step" not in titles
        assert titles.count("Keys") == 1
        assert {"Sort by…", "Invert sort order", "Tree view", "Filter guests by name", "Find a VM"} <= set(titles)


async def palette_titles(pilot) -> list[str]:
    """The command palette's entries (opened with Ctrl+P, closed again)."""
    app = pilot.app
    await pilot.press("ctrl+p")
    await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette)
                   and len(app.screen.query_one(CommandList).options) > 10)
    titles = [str(o.prompt).splitlines()[0] for o in app.screen.query_one(CommandList).options]
    await pilot.press("escape")
    return titles
