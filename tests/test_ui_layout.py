"""The dashboard fits the terminals people have: useful at 80x24 (tables and panels take
turns, charts hide first), everything shown at 200x50, readable without colour in every
theme, help titles whole, and the header's notice one line that fits."""

from __future__ import annotations

import pytest
from rich.console import Console
from ui_helpers import first_snapshot, footer_keys, illegible_text, open_guest, screen_lines, wait_for

from kvmtop.model import NOTE_NO_EXITS, CollectorStatus
from kvmtop.stepped_feed import demo_feed
from kvmtop.ui.app import KvmtopApp, make_app
from kvmtop.ui.screens.filter import FilterScreen
from kvmtop.ui.screens.guest import GuestScreen
from kvmtop.ui.screens.help import KEYS, HelpScreen, help_text
from kvmtop.ui.widgets.charts import LatencyChart
from kvmtop.ui.widgets.meters import NO_EXITS_LINE, notice_line
from kvmtop.ui.widgets.reason_table import ReasonTable
from kvmtop.ui.widgets.userspace_table import UserspaceTable
from kvmtop.ui.widgets.vcpu_table import VcpuTable
from kvmtop.ui.widgets.vm_table import VmTable

pytestmark = pytest.mark.ui

SMALL = (80, 24)
LARGE = (200, 50)


def data_rows(table) -> int:
    """Rows of data the table has room to show."""
    return max(0, table.content_region.height - 1)  # less the header row


# --------------------------------------------------------------------------- 80x24


async def test_main_screen_at_80x24_shows_the_figures_that_matter():
    app = make_app(demo_feed(vms=12))
    async with app.run_test(size=SMALL) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        keys = [c.key for c in table.shown_columns]
        assert keys[:2] == ["name", "exits"] and {"top", "p99", "user"} <= set(keys)
        assert sum(c.get_render_width(table) for c in table.ordered_columns) <= 80
        assert data_rows(table) >= 14
        lines = screen_lines(app)
        assert "max " in lines[0] and all(len(line.rstrip()) <= 80 for line in lines)
        assert footer_keys(app)[:6] == ["F1", "F3", "F4", "F5", "F6", "F10"]
        assert "Reasons" in lines[-1]  # the whole footer fits


async def test_guest_screen_at_80x24_tables_take_turns_and_charts_hide():
    app = make_app(demo_feed(vms=4))
    async with app.run_test(size=SMALL) as pilot:
        await first_snapshot(pilot)
        guest = await open_guest(pilot)
        assert guest.has_class("-narrow", "-short")
        assert not guest.query_one("#guest-charts").display or \
            guest.query_one(LatencyChart).region.height == 0
        reasons, vcpus = guest.query_one(ReasonTable), guest.query_one(VcpuTable)
        others = [vcpus, guest.query_one(UserspaceTable), guest.query_one("#requests"),
                  guest.query_one("#hypercalls")]
        assert data_rows(reasons) >= 8  # the focused table gets the space
        assert all(w.region.height == 1 for w in others)  # the others: their title line
        titles = "\n".join(screen_lines(app))
        for title in ("vCPUs", "Userspace exits", "Requests pending at exit", "Hypercalls"):
            assert title in titles
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is vcpus and data_rows(vcpus) >= 8 and reasons.region.height == 1
        for _ in range(3):
            await pilot.press("tab")
        await pilot.pause()
        hyper = guest.query_one("#hypercalls")
        assert app.focused is hyper and hyper.region.height >= 8
        assert "KICK_CPU" in "\n".join(screen_lines(app))


async def test_vcpu_screen_at_80x24():
    app = make_app(demo_feed(vms=3))
    async with app.run_test(size=SMALL) as pilot:
        await first_snapshot(pilot)
        await open_guest(pilot)
        await pilot.press("tab", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen) and app.screen.tid is not None)
        await pilot.pause(0.1)
        reasons = app.screen.query_one(ReasonTable)
        assert app.focused is reasons and data_rows(reasons) >= 8
        assert reasons.row_count >= 3


async def test_no_kvm_exit_guest_at_80x24_starts_on_the_userspace_exits():
    app = make_app(demo_feed(vms=4, exits=False))
    async with app.run_test(size=SMALL) as pilot:
        await first_snapshot(pilot)
        guest = await open_guest(pilot)
        userspace = guest.query_one(UserspaceTable)
        assert app.focused is userspace and data_rows(userspace) >= 8
        assert guest.query_one(ReasonTable).region.height == 1
        assert NO_EXITS_LINE in "\n".join(screen_lines(app))


async def test_filter_picker_and_help_at_80x24():
    app = make_app(demo_feed(vms=4))
    async with app.run_test(size=SMALL) as pilot:
        await first_snapshot(pilot)
        await pilot.press("f")
        await wait_for(pilot, lambda: isinstance(app.screen, FilterScreen))
        await pilot.pause()
        box = app.screen.query_one("#filter-box")
        assert box.region.width <= 80 and app.screen.query_one("#filter-list").region.height >= 5
        await pilot.press("escape", "f1")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        await pilot.pause()
        help_box = app.screen.query_one("#help-box")
        assert help_box.region.right <= 80 and help_box.region.x >= 0


def test_help_group_titles_are_never_cut():
    console = Console(width=40, record=True)  # narrower than any terminal kvmtop fits
    console.print(help_text(("a note",)))
    lines = console.export_text().splitlines()
    for group, _ in KEYS:
        assert group in lines
    assert "This host" in lines and "⚠ a note" in lines


# --------------------------------------------------------------------------- 200x50


async def test_guest_screen_at_200x50_shows_everything_at_once():
    app = make_app(demo_feed(vms=4))
    async with app.run_test(size=LARGE) as pilot:
        await first_snapshot(pilot)
        guest = await open_guest(pilot)
        assert not guest.has_class("-narrow") and not guest.has_class("-short")
        widgets = [guest.query_one(ReasonTable), guest.query_one(VcpuTable), guest.query_one(UserspaceTable),
                   guest.query_one("#requests"), guest.query_one("#hypercalls"), guest.query_one(LatencyChart),
                   guest.query_one("#rates")]
        assert all(w.region.height >= 4 for w in widgets)
        for i, a in enumerate(widgets):
            for b in widgets[i + 1:]:
                assert not a.region.overlaps(b.region)
        reasons = guest.query_one(ReasonTable)
        assert [c.key for c in reasons.shown_columns] == [c.key for c in reasons.layout_columns]


# --------------------------------------------------------------------------- without colour


@pytest.mark.parametrize("exits", [True, False])
async def test_no_colour_render_is_readable_in_every_theme(monkeypatch, exits):
    monkeypatch.setenv("NO_COLOR", "1")
    app = make_app(demo_feed(vms=6, exits=exits))
    async with app.run_test(size=(140, 42)) as pilot:
        await first_snapshot(pilot)
        for screen in ("main", "guest"):
            if screen == "guest":
                await open_guest(pilot)
            for theme in sorted(app.available_themes):
                app.theme = theme
                await pilot.pause(0.02)
                assert illegible_text(app) == [], (screen, theme)
        # the check can fail: Textual's own monochrome filter draws magenta figures in a
        # grey close to the background's
        monkeypatch.setattr(KvmtopApp, "get_line_filters", lambda self: self._filters)
        app.theme = "textual-dark"
        app.screen.refresh(repaint=True)
        for widget in app.screen.query("*"):
            widget._styles_cache.clear()
            widget.refresh()
        await pilot.pause(0.1)
        assert illegible_text(app) != []


# --------------------------------------------------------------------------- the notice line


def test_notice_is_one_line_that_fits_with_the_rest_in_the_help():
    notes = (NOTE_NO_EXITS, "kvm_exit has no requests field on this kernel (Linux 6.14+): request bits unavailable",
             "tracepoint syscalls:sys_enter_ioctl is missing: userspace round trips end at the next kvm_entry")
    line = notice_line(CollectorStatus(features={"exits": False}, notes=notes))
    assert line.plain == f"⚠ +2 notes (F1)  {NO_EXITS_LINE}"
    assert len(line.plain) <= 78  # fits 80 columns (the line has a one-column pad)
    assert notice_line(CollectorStatus(features={"exits": False}, notes=(NOTE_NO_EXITS,))).plain == \
        f"⚠ {NO_EXITS_LINE}"
    assert notice_line(CollectorStatus()) is None


@pytest.mark.parametrize("size", [SMALL, LARGE])
async def test_no_kvm_exit_banner_fits(size):
    app = make_app(demo_feed(vms=4, exits=False))
    async with app.run_test(size=size) as pilot:
        await first_snapshot(pilot)
        lines = screen_lines(app)
        banner = next(line for line in lines if "⚠" in line)
        assert NO_EXITS_LINE in banner and "…" not in banner
