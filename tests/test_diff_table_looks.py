"""The guests table keeps what its rows look like (styles, widths, cell shapes) between repaints:
whatever changes that look must draw the rows again, as DataTable itself would draw them."""

from __future__ import annotations

from rich.segment import Segment
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from ui_helpers import first_snapshot

from kvmtop.stepped_feed import demo_feed
from kvmtop.ui.app import make_app
from kvmtop.ui.widgets.vm_table import VmTable


def looks(strips) -> list[list[tuple]]:
    """Each cell of these lines: its character and its style (mouse metadata included)."""
    return [[(ch, seg.style) for seg in strip for ch in seg.text] for strip in strips]


def fast_lines(table: VmTable) -> list[list[tuple]]:
    """The lines the table sends (its own drawing, with the look it kept)."""
    return looks(table.render_lines(Region(0, 0, *table.size)))


def datatable_lines(table: VmTable) -> list[list[tuple]]:
    """DataTable's own drawing of the same lines, through StylesCache, read afresh."""
    table._styles_cache.clear()
    return looks(Widget.render_lines(table, Region(0, 0, *table.size)))


async def test_a_change_of_look_draws_the_rows_again():
    app = make_app(demo_feed(vms=60, vcpus=2))
    async with app.run_test(size=(150, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        assert table.has_focus
        before = fast_lines(table)
        assert before == datatable_lines(table)
        assert fast_lines(table) == before  # nothing changed: the same lines

        table.styles.background = "darkred"  # the table's own (inline) style
        await pilot.pause()
        after = fast_lines(table)
        assert after != before and after == datatable_lines(table)

        table.styles.color = "yellow"
        await pilot.pause()
        assert fast_lines(table) == datatable_lines(table)

        # the cursor's colours alone (a component style: the table's own rules stay as they are)
        app.stylesheet.add_source("VmTable > .datatable--cursor { background: red; }", read_from=("test", ""))
        app.refresh_css()
        await pilot.pause()
        red = fast_lines(table)
        assert red == datatable_lines(table)
        assert any(style.bgcolor and style.bgcolor.triplet == (255, 0, 0) for line in red for _, style in line)

        app.screen.set_focus(None)  # the cursor loses its focused colours (a pseudo class)
        await pilot.pause()
        unfocused = fast_lines(table)
        assert unfocused == datatable_lines(table)

        app.theme = "textual-light"  # every style of the app: the stylesheet updates every widget
        await pilot.pause()
        light = fast_lines(table)
        assert light != unfocused and light == datatable_lines(table)

        await pilot.resize_terminal(110, 30)  # narrower: fewer columns, other widths
        await pilot.pause()
        narrow = fast_lines(table)
        assert len(narrow[1]) == 110 and narrow == datatable_lines(table)


async def test_a_short_table_without_scrollbar():
    app = make_app(demo_feed(vms=3, vcpus=2))
    async with app.run_test(size=(150, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        assert not table.show_vertical_scrollbar
        assert fast_lines(table) == datatable_lines(table)
        await pilot.press("down")
        await pilot.pause()
        assert fast_lines(table) == datatable_lines(table)


async def test_the_lines_come_divided_where_the_scrollbar_covers_them():
    """Each row's line carries its pieces either side of the scrollbar, as the compositor would
    cut them (the screen then shows the rows as DataTable's lines would)."""
    app = make_app(demo_feed(vms=60, vcpus=2))
    async with app.run_test(size=(150, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        assert table.show_vertical_scrollbar
        width = table.size.width
        cut = width - table.scrollbar_size_vertical
        rows = table.render_lines(Region(0, 0, *table.size))[1:]
        for strip in rows:
            pieces = strip._divide_cache.get((cut, width))
            assert pieces is not None
            fresh = Strip(list(strip), strip.cell_length).divide([cut, width])
            assert [list(p) for p in pieces] == [list(p) for p in fresh]
            assert [p.cell_length for p in pieces] == [cut, width - cut]
            assert all(isinstance(s, Segment) and s.text for p in pieces for s in p)
        table._styles_cache.clear()
        datatable_row = Widget.render_lines(table, Region(0, 1, width, 1))[0]
        screen_row = app.screen._compositor.render_strips()[table.region.y + 1]
        assert looks([screen_row.crop(0, cut)]) == looks([datatable_row.crop(0, cut)])


def test_lean_strips_behave_as_strips():
    """A row's line made without Strip's caches (fast_cells.LeanStrip) gives what a Strip of the
    same segments gives, for everything Textual does with a line."""
    from rich.console import Console
    from rich.style import Style
    from textual.color import Color
    from textual.filter import Monochrome
    from textual.strip import Strip

    from kvmtop.ui.widgets import fast_cells

    assert fast_cells._LEAN  # this Textual's Strip has the slots LeanStrip fills in
    bold, cyan = Style(bold=True, meta={"column": 0}), Style(color="cyan", bgcolor="black", meta={"column": 1})
    segments = [Segment(" ab ", bold), Segment("cdef", cyan), Segment("   ", Style(bgcolor="black"))]
    console = Console(color_system="truecolor", force_terminal=True)
    for _ in range(2):  # (asked twice: what a Strip caches, a lean one works out again)
        lean, plain = fast_cells.lean_strip(list(segments), 11), Strip(list(segments), 11)
        assert isinstance(lean, fast_cells.LeanStrip)
        for op in (lambda s: s.divide([5, 11]), lambda s: [s.crop(2, 9)], lambda s: [s.adjust_cell_length(14)],
                   lambda s: [s.apply_style(Style(italic=True))], lambda s: [s.simplify()],
                   lambda s: [s.discard_meta()], lambda s: [s.apply_filter(Monochrome(), Color(0, 0, 0))],
                   lambda s: [s.crop_extend(1, 13, None)], lambda s: [s.apply_offsets(3, 4)],
                   lambda s: [Strip.join([s, s])]):
            assert [list(x) for x in op(lean)] == [list(x) for x in op(plain)]
        assert lean.render(console) == plain.render(console) and lean.text == plain.text
        assert lean.cell_length == plain.cell_length == 11
    divided = fast_cells.lean_strip(list(segments), 11, {(5, 11): ["pieces"]})
    assert divided.divide([5, 11]) == ["pieces"]  # the pieces made beforehand


async def test_the_cursor_follows_its_guest_out_of_view():
    """Rows re-sort under the cursor: it stays on its guest, and the view scrolls to it only
    when that row went out of view."""
    app = make_app(demo_feed(vms=60, vcpus=2))
    async with app.run_test(size=(150, 30)) as pilot:
        await first_snapshot(pilot)
        table = app.screen.query_one(VmTable)
        await pilot.press("down", "down")
        key = table.cursor_key
        assert table.cursor_row == 2 and table.scroll_y == 0
        await pilot.press("I")  # inverted: the guest goes near the end, far below the view
        await pilot.pause()
        top, height = table.view_rows()
        assert table.cursor_key == key and table.cursor_row == len(table.order) - 3
        assert top > 0 and top <= table.cursor_row < top + height
        assert fast_lines(table) == datatable_lines(table)  # the cursor drawn where it now is
        await pilot.press("up", "up", "up")  # another guest, still in view: no scrolling
        key, row = table.cursor_key, table.cursor_row
        await pilot.press("I")  # back: that guest comes near the top, out of view again
        await pilot.pause()
        top, height = table.view_rows()
        assert table.cursor_key == key and table.cursor_row == len(table.order) - 1 - row
        assert top <= table.cursor_row < top + height
        assert fast_lines(table) == datatable_lines(table)


def test_the_cells_kept_per_column_are_bounded_and_never_stale():
    from rich.style import Style
    from rich.text import Text

    from kvmtop.ui.widgets.fast_cells import ColumnCells, RowStyles, row_segments

    columns = ColumnCells(("a",), (8,), 1)
    styles = RowStyles((Style(bgcolor="black"),), Style.null(), None)
    for n in range(3 * ColumnCells.LIMIT):
        cell = Text(str(n), justify="right")  # a new cell each time (the last one freed)
        line = row_segments({"a": cell}, columns, styles)
        assert line is not None and "".join(s.text for s in line) == f" {n:>6} "
        assert len(columns.shapes[0]) <= ColumnCells.LIMIT + 1
    shared = Text("x", style="bold")
    for n in range(3 * RowStyles.LIMIT):  # cells of ever new styles
        row_segments({"a": Text("y", style=f"color({n % 256}) on color({n // 256})")}, columns, styles)
        assert len(styles.styles[0]) <= RowStyles.LIMIT + 1
    assert "".join(s.text for s in row_segments({"a": shared}, columns, styles) or []) == " x      "
