"""The guests table of a big host: sorted on the columns, cells made for the rows in view."""

from __future__ import annotations

import json
import random

import pytest
from rich.console import Console
from rich.padding import Padding
from rich.style import Style
from rich.text import Text
from textual.geometry import Region
from textual.renderables.styled import Styled
from textual.widget import Widget
from ui_helpers import first_snapshot, wait_for

from kvmtop import cli
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.filtering import ReasonFilter
from kvmtop.sources.demo import DemoSource
from kvmtop.stepped_feed import demo_feed
from kvmtop.ui.app import make_app
from kvmtop.ui.widgets.fast_cells import cell_segments
from kvmtop.ui.widgets.vm_table import ASCENDING, EXIT_COLUMNS, SORTS, USER_COLUMNS, VmTable, column_order


def snapshots(vms: int, exits: bool = True, steps: int = 12):
    builder = SnapshotBuilder()
    src = DemoSource(vms=vms, exits=exits, churn=5)
    for _ in range(steps):
        snap = builder.build(src.next_interval())
    return snap


@pytest.mark.parametrize("exits", [True, False])
def test_every_column_sorts_as_its_key_sorts_the_objects(exits):
    snap = snapshots(40, exits)
    for shown in (snap, ReasonFilter.parse("HLT,KVM_EXIT_IO").apply(snap)):
        vms = shown.vms
        for col in (EXIT_COLUMNS if exits else USER_COLUMNS):
            for reverse in (False, True):
                descending = (col.key not in ASCENDING) != reverse
                expected = sorted(range(len(vms)), key=lambda i: SORTS[col.key](vms[i]), reverse=descending)
                got = column_order(shown, col.key, descending)
                keys = [SORTS[col.key](vms[i]) for i in got]
                assert keys == [SORTS[col.key](vms[i]) for i in expected], col.key
                if col.key not in ("trend", "utrend"):  # float sums may tie differently in the last bit
                    assert got == expected, col.key


async def test_rows_get_cells_when_they_come_into_view():
    app = make_app(demo_feed(vms=300, vcpus=2))
    async with app.run_test(size=(140, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        assert table.row_count == 300
        snap = app.snapshot
        by_exits = [f"{v.pid}:{v.start_time}" for v in sorted(snap.vms, key=lambda v: v.exits_per_s, reverse=True)]
        assert table.order == by_exits
        exits_col = [c.key for c in table.shown_columns].index("exits")

        def filled(key: str) -> bool:
            return table.get_row(key)[exits_col].plain != ""

        assert filled(table.order[0]) and not filled(table.order[-1])  # far below: not made yet
        made = sum(filled(k) for k in table.order)
        assert made < 100
        await pilot.press("end")
        await wait_for(pilot, lambda: table.cursor_row == 299)
        await pilot.pause()
        last = snap.vm(int(table.order[-1].split(":")[0]))
        from kvmtop.ui import format as fmt

        assert table.get_row(table.order[-1])[exits_col].plain == fmt.rate(last.exits_per_s)


def test_the_fast_cells_are_what_rich_renders():
    console = Console(width=200, color_system="truecolor")
    rnd = random.Random(7)
    words = ["", "ab", "12.5k", "EPT_VIOLATION", "▁▂▃▄▅▆▇█", "x" * 30, "—", "db-postgres-01 (exited)"]
    for _ in range(300):
        width, padding = rnd.randint(3, 24), rnd.choice([0, 1, 2])
        cell = Text(rnd.choice(words), style=rnd.choice(["", "bold", "cyan", "dim bold", "bold red"]),
                    justify=rnd.choice([None, "right", "left"]), no_wrap=True,
                    overflow=rnd.choice([None, "ellipsis"]))
        pre = Style(bgcolor=rnd.choice(["black", "blue"])) + Style.from_meta({"row": 1, "column": 2})
        post = rnd.choice([Style.null(), Style(color="red"), Style(italic=True)])
        fast = cell_segments(cell, width, padding, pre, post)
        if fast is None:
            continue
        opts = console.options.update_dimensions(width, 1).update(no_wrap=True)
        rich = console.render_lines(Styled(Padding(cell, (0, padding)), pre_style=pre, post_style=post), opts)[0]

        def chars(segments):
            return [(ch, seg.style) for seg in segments for ch in seg.text]

        assert chars(fast) == chars(rich), (cell.plain, width, padding, cell.justify, cell.overflow)


def looks(strips) -> list[list[tuple]]:
    """Each cell of these lines: its character and its style (mouse metadata included)."""
    return [[(ch, seg.style) for seg in strip for ch in seg.text] for strip in strips]


@pytest.mark.parametrize("vms", [60, 3])
async def test_the_fast_lines_are_what_datatable_draws(vms):
    """The table's rows drawn straight into one Strip each (DiffTable.render_line), and the
    widget's lines sent without StylesCache (DiffTable.render_lines), have the characters and
    styles (mouse metadata included) of DataTable's own drawing through StylesCache, with the
    cursor on a row in view, on a scrolled table and below the last row."""
    app = make_app(demo_feed(vms=vms, vcpus=2))
    async with app.run_test(size=(150, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        whole = Region(0, 0, *table.size)
        assert table._plain_box()  # the dashboard's table goes out without StylesCache...
        assert table._paint_state().restyle is not None  # ...its rows with their styles filtered

        def lines(fast: bool):
            table._pseudo_class_state = table.get_pseudo_class_state()
            table._paint = table._paint_state() if fast else None
            assert (table._paint is not None) == fast
            try:
                return looks(filtered(table.render_line(y)) for y in range(table.size.height))
            finally:
                table._paint = None

        def filtered(strip):  # as the terminal gets it (the fast rows come with their styles filtered)
            for line_filter in table.get_line_filters():
                strip = strip.apply_filter(line_filter, table.background_colors[1])
            return strip

        def widget_lines(fast: bool):
            table._styles_cache.clear()
            if fast:
                return looks(table.render_lines(whole))
            return looks(Widget.render_lines(table, whole))  # StylesCache over DataTable's lines

        for move in ("down", "down", "pagedown", "down"):
            await pilot.press(move)
            await pilot.pause()
            fast, slow = lines(True), lines(False)
            assert any(ch == "█" or ch.isdigit() for ch, _ in fast[1])  # rows with figures, not blanks
            assert fast == slow, move
            assert widget_lines(True) == widget_lines(False), move
        assert (table.scroll_y > 0 and table.cursor_row > 2) if vms == 60 else table.cursor_row == 2
        lines(True)  # the labels' line is kept while they stay as they are...
        table.set_labels({"exits": "NEWLAB"})
        fast = lines(True)
        assert "NEWLAB" in "".join(ch for ch, _ in fast[0])  # ...and drawn again when one changes
        assert fast == lines(False)


def test_demo_of_any_size(capsys):
    assert cli.main(["--demo", "--vms", "30", "--vcpus", "3", "--json", "-n", "1"]) == 0
    snap = json.loads(capsys.readouterr().out)
    assert len(snap["vms"]) == 30 and {len(v["vcpus"]) for v in snap["vms"]} == {3}
    assert snap["host"]["vcpus"] == 90
    with pytest.raises(SystemExit) as exc:
        cli.main(["--vms", "30", "--once"])
    assert exc.value.code == 2
    assert "--demo" in capsys.readouterr().err
