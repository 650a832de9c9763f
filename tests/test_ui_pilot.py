"""Pilot tests of the dashboard on the demo source (no root, no KVM)."""

from __future__ import annotations

import asyncio
import re
import time
import weakref

import pytest
from rich.text import Text
from textual.command import CommandList, CommandPalette
from ui_helpers import column, first_snapshot, header_text, rows, wait_for

from kvmtop.errors import SourceError
from kvmtop.feed import Feed
from kvmtop.filtering import ReasonFilter
from kvmtop.model import Interval, ThreadInterval, VmIdentity
from kvmtop.pacing import MAX_INTERVAL
from kvmtop.sources.demo import DemoSource
from kvmtop.stepped_feed import SteppedFeed, demo_feed
from kvmtop.ui import format as fmt
from kvmtop.ui.app import make_app
from kvmtop.ui.screens.filter import FilterScreen
from kvmtop.ui.screens.guest import GuestScreen
from kvmtop.ui.screens.help import HelpScreen
from kvmtop.ui.screens.main import MainScreen
from kvmtop.ui.widgets.meters import Meters
from kvmtop.ui.widgets.reason_table import ReasonTable
from kvmtop.ui.widgets.userspace_table import UserspaceTable
from kvmtop.ui.widgets.vcpu_table import VcpuTable
from kvmtop.ui.widgets.vm_table import VmTable, vm_key

SIZE = (140, 42)


async def wait_plain(cond, timeout: float = 10.0) -> None:
    """Wait without the pilot (for an app that is about to exit on its own)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)



# --------------------------------------------------------------------------- main screen


async def test_main_screen_lists_every_guest_sorted_by_exits():
    app = make_app(demo_feed(vms=6))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        assert isinstance(app.screen, MainScreen)
        snap = app.snapshot
        names = column(app, "name")
        expected = [vm.name for vm in sorted(snap.vms, key=lambda v: -v.exits_per_s)]
        assert names == expected
        first = snap.vm(int(app.screen.query_one(VmTable).order[0].split(":")[0]))
        assert column(app, "exits")[0] == fmt.rate(first.exits_per_s)
        assert "VMs 6" in header_text(app)
        assert "EXITS/s ▼" in header_text(app)


async def test_sort_by_two_columns_changes_the_order():
    app = make_app(demo_feed(vms=8))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        snap = app.snapshot
        by_exits = column(app, "name")

        # F6 picker -> NAME (first option): ascending names
        await pilot.press("f6")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "SortScreen")
        await pilot.press("home", "enter")
        await pilot.pause()
        by_name = column(app, "name")
        assert by_name == sorted(by_name, key=str.lower) and by_name != by_exits
        assert "NAME ▲" in header_text(app)

        # I inverts
        await pilot.press("I")
        await pilot.pause()
        assert column(app, "name") == list(reversed(by_name))

        # > moves to the next column (PID), clicking the P99 header sorts by p99
        await pilot.press("greater_than_sign")
        await pilot.pause()
        pids = [int(p) for p in column(app, "pid")]
        assert pids == sorted(pids)
        table = app.screen.query_one(VmTable)
        x = sum(c.get_render_width(table) for c in table.ordered_columns[:7]) + 2
        await pilot.click(VmTable, offset=(x, 0))
        await pilot.pause()
        order = [vm.name for vm in sorted(snap.vms, key=lambda v: (-v.latency.p99, v.pid))]
        assert column(app, "name") == order != by_name
        assert "P99 ▼" in header_text(app)


async def test_cursor_stays_on_the_same_vm_when_rows_resort():
    app = make_app(demo_feed(vms=8))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        await pilot.press("down", "down")
        key = table.cursor_key
        assert table.cursor_row == 2
        await pilot.press("I")  # inverted: the VM moves to another row
        await pilot.pause()
        assert table.cursor_key == key and table.cursor_row == len(table.order) - 3


async def test_rows_of_exited_vms_disappear():
    feed = SteppedFeed(DemoSource(vms=4, churn=3), warmup=2)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        before = set(app.screen.query_one(VmTable).order)
        feed.step()
        await wait_for(pilot, lambda: app.snapshot.seq == 3)
        await pilot.pause()
        after = set(app.screen.query_one(VmTable).order)
        assert len(after) == 4 and len(before - after) == 1
        assert after == {vm_key(v) for v in app.snapshot.vms}


async def test_find_moves_the_cursor_to_a_vm():
    app = make_app(demo_feed(vms=8))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("slash", *"redis")
        await pilot.pause()
        table = app.screen.query_one(VmTable)
        assert table.get_row(table.cursor_key)[0].plain.startswith("redis")
        await pilot.press("escape")
        assert app.focused is table
        await pilot.press("slash", *"win11", "enter")
        await pilot.pause()
        assert app.focused is table
        assert table.get_row(table.cursor_key)[0].plain.startswith("win11")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))


# --------------------------------------------------------------------------- guest screen


async def test_drill_into_guest_and_vcpu_and_back():
    app = make_app(demo_feed(vms=6))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        key = table.cursor_key
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        guest = app.screen
        assert guest.vm_key == key and guest.tid is None
        vm = next(v for v in app.snapshot.vms if vm_key(v) == key)
        reasons = guest.query_one(ReasonTable)
        assert reasons.row_count == len(vm.reasons)
        vcpus = guest.query_one(VcpuTable)
        assert vcpus.row_count == len(vm.vcpus)

        await pilot.press("tab")
        assert app.focused is vcpus
        await pilot.press("down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen) and app.screen.tid is not None)
        scoped = app.screen
        assert scoped.tid == vm.vcpus[1].tid
        assert not scoped.query(VcpuTable)
        assert scoped.query_one(ReasonTable).row_count == len(vm.vcpus[1].reasons)

        await pilot.press("escape")
        assert app.screen is guest
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)


async def test_reason_highlight_drives_the_latency_chart():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        guest = app.screen
        from kvmtop.ui.widgets.charts import LatencyChart

        chart = guest.query_one(LatencyChart)
        vm = next(v for v in app.snapshot.vms if vm_key(v) == guest.vm_key)
        assert vm.reasons[0].name in str(chart.border_title)
        await pilot.press("down")
        await pilot.pause()
        assert vm.reasons[1].name in str(chart.border_title)


# --------------------------------------------------------------------------- filter


async def test_filter_applies_to_tables_and_header_and_clears():
    app = make_app(demo_feed(vms=6))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        total = app.snapshot.host.exits_per_s
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.press(*"hlt")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        assert app.reason_filter == ReasonFilter.of(["HLT"])
        assert set(column(app, "top")) == {"HLT"}
        assert {r.name for r in app.snapshot.host.reasons} == {"HLT"}
        assert app.snapshot.host.exits_per_s < total
        assert "Reasons HLT" in header_text(app)
        assert f"Exits {fmt.rate(app.snapshot.host.exits_per_s)}/s" in _rate_line(app)

        # the filter follows into the guest screen
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        assert app.screen.query_one(ReasonTable).row_count == 1
        await pilot.press("escape", "c")
        await pilot.pause()
        assert app.reason_filter is None
        assert len(set(column(app, "top"))) > 1
        assert "Selection all" in header_text(app)
        assert app.snapshot.host.exits_per_s == total


def _rate_line(app) -> str:
    return str(app.screen.query_one(Meters).query_one("#meter-rate").render())


async def test_filter_picker_exclude_several():
    app = make_app(demo_feed(vms=6))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        picker = app.screen
        await pilot.press(*"ept")
        await pilot.pause()
        shown = picker.matching("ept")  # seen first, then those the ISA can produce
        assert shown[:2] == ["EPT_MISCONFIG", "EPT_VIOLATION"] and "EXCEPTION_NMI" in shown[2:]
        await pilot.press("down", "space", "down", "space", "ctrl+x", "ctrl+s")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        assert app.reason_filter == ReasonFilter.of(["EPT_MISCONFIG", "EPT_VIOLATION"], exclude=True)
        names = {r.name for r in app.snapshot.host.reasons}
        assert "EPT_VIOLATION" not in names and "EPT_MISCONFIG" not in names and "HLT" in names
        assert "not EPT_MISCONFIG,EPT_VIOLATION" in header_text(app)


async def test_filter_from_the_command_line():
    app = make_app(demo_feed(vms=6), reason_filter=ReasonFilter.parse("MSR_WRITE"))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        assert set(column(app, "top")) == {"MSR_WRITE"}
        assert "Reasons MSR_WRITE" in header_text(app)


# --------------------------------------------------------------------------- pause, reset, interval


async def test_pause_freezes_display_and_reset_restarts_counts():
    feed = Feed(DemoSource(vms=3), interval_s=0.1)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.seq >= 3)
        await pilot.press("space")
        frozen = app.snapshot
        cells = rows(app)
        await asyncio.sleep(0.5)
        await pilot.pause()
        assert app.snapshot is frozen and rows(app) == cells
        assert app.raw.seq > frozen.seq  # collection went on
        assert "PAUSED" in header_text(app)
        await pilot.press("space")
        await wait_for(pilot, lambda: app.snapshot.seq > frozen.seq)
        assert "PAUSED" not in header_text(app)

        seq = app.snapshot.seq
        await pilot.press("r")
        await wait_for(pilot, lambda: app.snapshot.seq < seq)
        assert len(app.snapshot.host.history) < seq


async def test_the_snapshot_replaced_on_screen_is_freed_while_the_feed_waits():
    """Once the UI shows a new snapshot, the one it replaced is freed before the next interval
    (not held through the wait)."""
    feed = Feed(DemoSource(vms=3), interval_s=0.1)
    app = make_app(feed)
    frames = []
    take = app._take

    def spy(message):
        frames.append(weakref.ref(message.raw.frame))
        take(message)

    app._take = spy
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(frames) >= 3)
        feed.interval_s = MAX_INTERVAL  # the next one is a minute away
        await wait_for(pilot, lambda: frames[-1]() is app.raw.frame and all(f() is None for f in frames[:-1]))


async def test_interval_keys_change_the_feed():
    feed = demo_feed(vms=2)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("plus")
        assert feed.interval_s == 2.0
        await pilot.press("minus", "minus")
        assert feed.interval_s == 0.5
        assert "Interval 0.5s" in header_text(app)


async def test_help_and_quit_stops_the_feed():
    feed = demo_feed(vms=2)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, MainScreen)
        await pilot.press("q")
        await pilot.pause()
    assert feed.stopped
    assert app.return_code == 0


def palette_titles(app) -> set[str]:
    return {str(option.prompt).splitlines()[0] for option in app.screen.query_one(CommandList).options}


async def test_command_palette_lists_the_bindings_and_runs_them():
    app = make_app(demo_feed(vms=2))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette) and len(palette_titles(app)) > 10)
        titles = palette_titles(app)
        assert {"Pause / resume", "Filter by exit reason", "Clear filter", "Reset counters",
                "Longer interval", "Shorter interval", "Sort by…", "Find a VM", "Open guest", "Keys",
                "Quit"} <= titles
        assert not any(t.startswith("Replay:") for t in titles)  # live: no replay commands
        await pilot.press(*"pause")
        await wait_for(pilot, lambda: "Pause / resume" in palette_titles(app))
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.display_paused)
        assert isinstance(app.screen, MainScreen)


async def test_command_palette_offers_replay_commands_for_a_replay():
    feed = Feed(Recorded(5))
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette) and len(palette_titles(app)) > 10)
        assert {"Replay: step", "Replay: start", "Replay: end", "Replay: faster"} <= palette_titles(app)


# --------------------------------------------------------------------------- no kvm_exit, names, errors


async def test_without_kvm_exit_userspace_columns_take_the_exit_columns_place():
    app = make_app(demo_feed(vms=4, exits=False))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        keys = [c.key for c in table.shown_columns]
        assert keys == ["name", "pid", "vcpus", "user", "utop", "ushare", "up50", "up99", "umax", "utrend"]
        assert not any(cell == "n/a" for row in rows(app) for cell in row)
        snap = app.snapshot
        by_name = {v.name: v for v in snap.vms}
        for name, user, top, p99 in zip(column(app, "name"), column(app, "user"), column(app, "utop"),
                                         column(app, "up99")):
            vm = by_name[name]
            assert user == fmt.rate(vm.userspace_per_s) != "0"
            assert "KVM_EXIT_" + top == vm.userspace_exits[0].name
            assert p99 == fmt.duration(vm.userspace_latency.p99)
        assert column(app, "user") == [fmt.rate(v.userspace_per_s)
                                       for v in sorted(snap.vms, key=lambda v: -v.userspace_per_s)]
        await wait_for(pilot, lambda: "Sort USER/s ▼" in header_text(app))
        notice = app.screen.query_one("#meter-notice")
        assert notice.display and "kvm_exit" in str(notice.render())
        assert table.columns["utrend"].label.plain.strip() == "USER TREND"

        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        reasons = app.screen.query_one(ReasonTable)
        assert reasons.row_count == 0 and "kvm_exit" in str(reasons.border_subtitle)
        userspace = app.screen.query_one(UserspaceTable)
        vm = next(v for v in app.snapshot.vms if vm_key(v) == app.screen.vm_key)
        assert app.focused is userspace and userspace.row_count == len(vm.userspace_exits)
        hyper = app.screen.query_one("#hypercalls")
        assert "kvm_exit" in str(hyper.render())
        assert "hypercalls n/a" in app.screen.query_one("#guest-title").render().plain


class NamedSource:
    """One VM with a hostile name."""

    name = "test"
    paced = True

    def __init__(self, vm_name: str):
        self.vm_name = vm_name
        self.seq = 0

    def open(self): ...
    def close(self): ...
    def reset(self): ...

    def next_interval(self):
        self.seq += 1
        from kvmtop.model import Latency, Stat

        st = Stat(10, Latency.from_values([1000] * 10))
        return Interval(time=1000.0 + self.seq, interval_s=1.0,
                        threads=(ThreadInterval(pid=42, tid=43, reasons={(1, 12): st}, userspace={2: st}),),
                        vms={42: VmIdentity(pid=42, name=self.vm_name, vcpu_index={43: 0},
                                            comms={43: "CPU 0/KVM"})})


@pytest.mark.parametrize("name,shown", [
    ("[b]x[/b]", "[b]x[/b]"),
    ("[red]evil[/red]\x1b[2J", "[red]evil[/red]\\x1b[2J"),
    ("bell\x07tab\tnl\n", "bell\\x07tab\\x09nl\\x0a"),
])
async def test_untrusted_names_are_shown_literally(name, shown):
    app = make_app(SteppedFeed(NamedSource(name), warmup=1))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        assert column(app, "name") == [shown]
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        title = app.screen.query_one("#guest-title").render()
        assert shown in (title.plain if isinstance(title, Text) else str(title))


async def test_long_names_are_truncated():
    app = make_app(SteppedFeed(NamedSource("x" * 500), warmup=1))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        (name,) = column(app, "name")
        assert len(name) <= 40 and name.endswith("…")


class FailingSource(NamedSource):
    def next_interval(self):
        if self.seq >= 1:
            raise SourceError("kvm_exit tracepoint vanished [detached]")
        return super().next_interval()


async def test_source_error_ends_the_app_with_one_line():
    feed = Feed(FailingSource("vm"), interval_s=0.1)
    app = make_app(feed)
    async with app.run_test(size=SIZE):
        await wait_plain(lambda: app.error is not None and app.return_code == 1)
    assert app.return_code == 1
    assert app.error == "kvm_exit tracepoint vanished [detached]"
    assert feed.stopped


class CrashingSource(NamedSource):
    def next_interval(self):
        raise RuntimeError("boom\nsecond line")


async def test_unexpected_error_is_one_line_too():
    app = make_app(Feed(CrashingSource("vm"), interval_s=0.1))
    async with app.run_test(size=SIZE):
        await wait_plain(lambda: app.error is not None and app.return_code == 1)
    assert app.return_code == 1 and app.error == "RuntimeError: boom"


# --------------------------------------------------------------------------- replay


class Recorded:
    name = "recording"
    paced = False

    def __init__(self, n: int):
        src = DemoSource(vms=3)
        self.intervals = [src.next_interval() for _ in range(n)]

    def open(self): ...
    def close(self): ...
    def reset(self): ...

    def next_interval(self):
        return None


async def test_replay_keys_step_seek_and_speed():
    feed = Feed(Recorded(30), speed=1000.0)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.seq == 30)
        await pilot.pause()
        assert "Replay 30/30" in header_text(app)
        await pilot.press("space")  # pause advancing
        assert feed.paused and "⏸" in header_text(app)
        await pilot.press("left_square_bracket")
        await wait_for(pilot, lambda: app.snapshot.seq == 20)
        await pilot.press("full_stop")
        await wait_for(pilot, lambda: app.snapshot.seq == 21)
        await pilot.press("comma")
        await wait_for(pilot, lambda: app.snapshot.seq == 20)
        await pilot.press("home")
        await wait_for(pilot, lambda: feed.position == 1)
        await pilot.press("end")
        await wait_for(pilot, lambda: feed.position == 30)
        await pilot.press("left_curly_bracket")
        assert feed.speed == 64.0
        await pilot.press("right_curly_bracket")
        assert feed.speed == 64.0 * 1  # 1000 was off the ladder: down to 64, back up to 64 max


async def test_replay_keys_are_inactive_for_live_feeds():
    feed = demo_feed(vms=2)
    app = make_app(feed)
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        assert app.check_action("step", ()) is False
        await pilot.press("full_stop", "right_square_bracket")
        assert "Replay" not in header_text(app)


# --------------------------------------------------------------------------- formatting


def test_number_and_duration_formats():
    assert [fmt.rate(x) for x in (0, 0.5, 5, 12.4, 950, 12_345, 4_560_000)] == \
        ["0", "0.5", "5.0", "12", "950", "12.3k", "4.56M"]
    assert [fmt.duration(x) for x in (0, 850, 12_300, 4_560_000, 1_230_000_000)] == \
        ["0", "850ns", "12.3µs", "4.56ms", "1.23s"]
    assert [fmt.share(x) for x in (0, 0.004, 0.5)] == ["0%", "<1%", "50%"]
    assert fmt.count(9_876) == "9,876" and fmt.count(12_345) == "12.3k"
    assert fmt.spark([], 4) == ""
    assert fmt.spark([1, 2, 3, 4], 4) == "▁▃▆█"
    assert fmt.spark([0, 0], 4) == "  ▁▁"
    assert fmt.bar(0.5, 4) == "██  "


async def test_no_kvm_exit_sort_default_does_not_override_the_user():
    app = make_app(demo_feed(vms=4, exits=False))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        assert table.sort_column == "user"
        await pilot.press("less_than_sign", "less_than_sign")
        assert table.sort_column == "pid"
        app.feed.step()
        await wait_for(pilot, lambda: app.snapshot.seq == 61)
        await pilot.pause()
        assert table.sort_column == "pid"
        pids = [int(p) for p in column(app, "pid")]
        assert pids == sorted(pids)


async def test_home_end_scroll_the_table_when_not_replaying():
    app = make_app(demo_feed(vms=60))
    async with app.run_test(size=(140, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == 59 and table.scroll_y > 0)
        await pilot.press("home")
        await wait_for(pilot, lambda: table.cursor_row == 0 and table.scroll_y == 0)


# --------------------------------------------------------------------------- spacing


def leading_space_runs(app, rows: range) -> list[str]:
    """Text runs on ``rows`` of the SVG screenshot that start with spaces before text.

    SVG renderers (rsvg) drop such leading spaces, gluing the run to the one before it
    ("Collector0.4 ms"), so header and title lines must never produce them.
    """
    svg = app.export_screenshot()
    hits = re.findall(r'-line-(\d+)\)">((?:&#160;)+(?!&#160;|</text>)[^<]*)</text>', svg)
    return [f"row {row}: {text}" for row, text in hits if int(row) in rows]


async def test_header_and_guest_title_keep_their_spaces():
    app = make_app(demo_feed(vms=6))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        assert "Collector 0" in header_text(app)
        assert leading_space_runs(app, range(0, 3)) == []
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await pilot.pause()
        title = app.screen.query_one("#guest-title").render()
        plain = title.plain if isinstance(title, Text) else str(title)
        assert " pid 2973" in plain or re.search(r"\S  pid \d+", plain)
        assert leading_space_runs(app, range(0, 4)) == []


async def test_header_without_kvm_exit_keeps_its_spaces():
    app = make_app(demo_feed(vms=6, exits=False))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.pause(0.2)
        assert leading_space_runs(app, range(0, 4)) == []
