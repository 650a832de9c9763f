"""A DataTable that mirrors a list of keyed rows by diffing, never by clearing.

Each tick, ``sync(rows)`` removes rows whose key is gone, adds new keys, updates only
the cells that changed (text or style), reorders to the given order and puts the cursor back on the
row it was on (not the index). Column widths are fixed, so updates never re-measure.

``show_rows`` does the same for long tables whose cells are made only for the rows in view,
and rows of simple cells are drawn without Rich's layout (fast_cells).

Rows carry one cell per column of the table's *layout*; the table shows the columns of
the layout that fit its width, dropping the least important first (``Col.priority``), and
rebuilds itself only when that set (or the layout) changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.actions import SkipAction
from textual.color import Color
from textual.coordinate import Coordinate
from textual.filter import ANSIToTruecolor, LineFilter
from textual.geometry import Region
from textual.strip import Strip
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

from .fast_cells import ColumnCells, Restyle, RowStyles, lean_strip, row_segments

Cells = tuple[Text, ...]


def signature(cells: Cells) -> tuple:
    """What a row looks like (text and style of each cell): rows are diffed by this."""
    return tuple((c.plain, c.style) for c in cells)


class KeyedText(Text):
    """The first cell of a row: carries the row's key so the table can be ordered by it."""

    def __init__(self, text: str, key: str, style: str = "", justify=None) -> None:
        super().__init__(text, style=style, justify=justify, no_wrap=True, overflow="ellipsis")
        self.row_key = key


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    width: int
    justify: str = "right"  # "left" for text columns
    tooltip: str = ""
    priority: int = 0  # when the table is too narrow, the highest priority goes first; 0 stays


def fit_columns(columns: Sequence[Col], width: int, padding: int = 1) -> tuple[int, ...]:
    """Indices of the columns shown in ``width`` cells: the least important go first."""
    need = [c.width + 2 * padding for c in columns]
    shown = set(range(len(columns)))
    total = sum(need)
    # highest priority first; among equals the rightmost first
    for i in sorted(range(len(columns)), key=lambda i: (-columns[i].priority, -i)):
        if total <= width or columns[i].priority == 0:
            break
        shown.discard(i)
        total -= need[i]
    return tuple(sorted(shown))


class DiffTable(DataTable):
    """DataTable + ``sync``: the owner passes rows already filtered and sorted."""

    COLUMNS: tuple[Col, ...] = ()
    # Above this many stale rows, one clear() beats O(n) remove_row calls.
    CLEAR_THRESHOLD = 64
    MARGIN = 8  # rows above and below the view that ``show_rows`` keeps fresh too
    VIEW_GUESS = 60  # rows in view before the table has a size

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)
        # Set by the owner: Home/End are not this table's but go up to the bindings above it
        # (a replay seeks to its first/last interval with them).
        self.edges_to_owner = False
        self._cells: dict[str, Cells] = {}
        self._sigs: dict[str, tuple] = {}
        self._order: list[str] = []
        self.layout_columns: tuple[Col, ...] = self.COLUMNS  # what each row's cells are
        self._shown: tuple[int, ...] | None = None  # indices of layout_columns on screen
        self._labels: dict[str, str] = {}
        self._cursor_hint: str | None = None  # the cursor's row across a rebuild
        self._make: Callable[[Sequence[str]], Mapping[str, Cells]] | None = None  # cells of rows, on demand
        self._fresh: set[str] = set()  # rows whose cells come from the latest ``make``
        self._paint: _Paint | None = None  # while a repaint renders lines
        self._strips: dict = {}  # rows' lines drawn for ``_strips_key`` (content, width, look)
        self._strips_key: tuple | None = None
        self._header_line: tuple[_Look, tuple, Strip] | None = None  # (what it was drawn for, the labels' line)
        self._restyle: Restyle | None = None
        self._look: _Look | None = None  # what the rows look like besides their content

    def on_mount(self) -> None:
        self._refit()

    def on_resize(self) -> None:
        self._refit()
        if self._make is not None:
            self._fill(self.in_view())

    # ------------------------------------------------------------------ columns
    @property
    def shown_columns(self) -> tuple[Col, ...]:
        shown = self._shown if self._shown is not None else range(len(self.layout_columns))
        return tuple(self.layout_columns[i] for i in shown)

    def set_layout(self, columns: tuple[Col, ...]) -> None:
        """Rows will carry cells for ``columns`` from now on (the rows so far are dropped)."""
        if columns == self.layout_columns:
            return
        self._cursor_hint = self.cursor_key or self._cursor_hint
        self.layout_columns = columns
        self._cells.clear()
        self._sigs.clear()
        self._order = []
        self._shown = None
        self._refit()

    def _available_width(self) -> int:
        """The content width less a vertical scrollbar, whether one shows now or not (so a
        scrollbar appearing as rows are added never drops a column)."""
        width = self.size.width
        if self.show_vertical_scrollbar:
            width += self.scrollbar_size_vertical
        return width - self.styles.scrollbar_size_vertical

    def _refit(self) -> None:
        """Show the columns that fit; rebuild the table when that set changed."""
        width = self._available_width()
        columns = self.layout_columns
        shown = fit_columns(columns, width, self.cell_padding) if width > 0 else tuple(range(len(columns)))
        if shown == self._shown:
            return
        self._shown = shown
        cursor = self.cursor_key or self._cursor_hint
        with self.app.batch_update():
            self.clear(columns=True)
            for i in shown:
                col = columns[i]
                self.add_column(self._label(col), key=col.key, width=col.width)
            for key in self._order:
                self.add_row(*self._visible(self._cells[key]), key=key)
            self._restore_cursor(cursor)

    def _visible(self, cells: Cells) -> Cells:
        shown = self._shown
        if shown is None or len(shown) == len(cells):
            return cells
        return tuple(cells[i] for i in shown)

    def _restore_cursor(self, cursor: str | None) -> None:
        if cursor is not None and cursor in self._sigs:
            row = self.get_row_index(RowKey(cursor))
            if row != self.cursor_row:
                self._follow(row)
            self._cursor_hint = None

    def _follow(self, row: int) -> None:
        """Put the cursor on ``row``, where the row it was on went. The highlighted row is the
        same, so none of what ``move_cursor`` does for a new one (RowHighlighted, scrolling to
        where the cursor was, then to where it goes): the view scrolls only when the row is out
        of it."""
        self.set_reactive(DataTable.cursor_coordinate, Coordinate(row, self.cursor_coordinate.column))
        self.refresh()
        top, height = self.view_rows()
        if self._require_update_dimensions:
            self.call_after_refresh(self._scroll_cursor_into_view)
        elif not top <= row < top + height:
            self._scroll_cursor_into_view()

    # ------------------------------------------------------------------ Home/End
    def action_scroll_home(self) -> None:
        """Home: the first row (as in htop), unless the owner takes Home (``edges_to_owner``)."""
        if self.edges_to_owner:
            raise SkipAction()
        self.action_scroll_top()

    def action_scroll_end(self) -> None:
        """End: the last row (as in htop), unless the owner takes End (``edges_to_owner``)."""
        if self.edges_to_owner:
            raise SkipAction()
        self.action_scroll_bottom()

    # ------------------------------------------------------------------ labels
    def _label(self, col: Col) -> Text:
        text = self._labels.get(col.key, col.label)
        return Text(text.rjust(col.width) if col.justify == "right" else text, no_wrap=True)

    def set_labels(self, labels: dict[str, str]) -> None:
        """Change column labels (sort marks, "no source" marks); only repaints on change."""
        if labels == self._labels:
            return  # (the columns were labelled from these: ``_refit`` labels them as it makes them)
        self._labels = dict(labels)
        changed = False
        for col in self.layout_columns:
            label = self._label(col)
            column = self.columns.get(ColumnKey(col.key))
            if column is not None and column.label != label:
                column.label = label
                changed = True
        if changed:
            self.notify_style_update()

    # ------------------------------------------------------------------ rows
    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def sync(self, rows: Sequence[tuple[str, Cells]], sigs: dict[str, tuple] | None = None) -> None:
        """Mirror ``rows`` (key, cells) in this order; ``sigs`` may carry precomputed signatures."""
        cells = dict(rows)
        self._mirror([key for key, _ in rows], lambda wanted: {k: cells[k] for k in wanted},
                     lambda key: cells[key], sigs, every=True)

    def show_rows(self, keys: Sequence[str], make: Callable[[Sequence[str]], Mapping[str, Cells]],
                  placeholder: Callable[[str], Cells], sigs: Mapping[str, tuple] | None = None) -> None:
        """Mirror the rows ``keys`` in this order, asking ``make`` for the cells of the rows in
        view (and a margin) only; the others keep what they showed, or ``placeholder``, until
        they scroll into view (then ``make`` is asked again): a long table costs what its
        screenful costs."""
        self._mirror(list(keys), make, placeholder, sigs, every=False)

    def _mirror(self, keys: list[str], make, placeholder, sigs, every: bool) -> None:
        cursor = self.cursor_key
        scroll_y = self.scroll_y
        wanted = set(keys)
        stale = [k for k in self._order if k not in wanted]
        if self._shown is None:
            self._refit()
        self._make = make  # before anything scrolls: rows scrolled into view get these cells
        self._fresh = set()
        with self.app.batch_update():
            if len(stale) > self.CLEAR_THRESHOLD:
                self.clear()
                self._cells.clear()
                self._sigs.clear()
                self._order = []
            else:
                for key in stale:
                    self.remove_row(key)
                    del self._cells[key]
                    del self._sigs[key]
                if stale:
                    gone = set(stale)
                    self._order = [k for k in self._order if k not in gone]
            for key in keys:
                if key not in self._sigs:
                    cells = placeholder(key)
                    self.add_row(*self._visible(cells), key=key)
                    self._order.append(key)
                    self._cells[key] = cells
                    self._sigs[key] = signature(cells)
            if self._order != keys:
                # what DataTable.sort ends with, without sorting every row's cells by a key
                self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(keys)})
                self._new_content()
                self._order = keys
            cursor = cursor or self._cursor_hint
            row = None
            if cursor is not None and cursor in wanted:
                row = self.get_row_index(RowKey(cursor))
                self._restore_cursor(cursor)  # scrolls after the refresh
            elif cursor is not None and self.row_count:
                self.scroll_y = scroll_y
            self._fill(keys if every else self.in_view(row), sigs)

    def _new_content(self) -> None:
        """Cells changed or rows moved: what DataTable does then (its caches are keyed by the
        update count; evicting rather than clearing them keeps their nodes acyclic garbage)."""
        self._update_count += 1
        self.refresh()

    # ------------------------------------------------------------------ rows in view

    def view_rows(self) -> tuple[int, int]:
        """(first row on screen, how many rows fit)."""
        height = self.scrollable_content_region.height - self.header_height
        return int(self.scroll_y), height if height > 0 else self.VIEW_GUESS

    def in_view(self, cursor_row: int | None = None) -> list[str]:
        """Keys of the rows on screen, and a margin above and below; with ``cursor_row``, of the
        rows on screen once the table has scrolled (as little as it does) to show that row."""
        top, height = self.view_rows()
        if cursor_row is not None and not top <= cursor_row < top + height:
            top = cursor_row if cursor_row < top else cursor_row - height + 1
        return self._order[max(0, top - self.MARGIN):top + height + self.MARGIN]

    def _fill(self, keys: Sequence[str], sigs: Mapping[str, tuple] | None = None) -> None:
        """Fresh cells for these rows (from the last ``make``); unchanged cells are left alone."""
        make = self._make
        if make is None:
            return
        want = [k for k in keys if k not in self._fresh]
        if not want:
            return
        columns = self.layout_columns
        shown = self._shown if self._shown is not None else tuple(range(len(columns)))
        col_keys = [columns[i].key for i in shown]
        project = len(shown) != len(columns)
        data = getattr(self, "_data", None)
        # the keys of the rows' cells as the rows hold them: a row holding just these, in this
        # order, is updated in place by them (a lookup by string costs a comparison in Python)
        held = tuple(column.key for column in self.ordered_columns)
        in_place = held == tuple(col_keys)
        fresh, old_sigs, own_cells = self._fresh, self._sigs, self._cells
        changed = 0
        for key, cells in make(want).items():
            fresh.add(key)
            sig = sigs.get(key) if sigs is not None else None
            if sig is None:
                sig = signature(cells)
            old = old_sigs.get(key)
            if old is not None and old != sig:
                row = data.get(key) if data is not None else None  # (a row key matches its string)
                cells_: Sequence = [cells[i] for i in shown] if project else cells
                sig_: Sequence = [sig[i] for i in shown] if project else sig
                old_: Sequence = [old[i] for i in shown] if project else old
                if in_place and row is not None and tuple(row) == held:
                    for held_key, new, now, was in zip(held, cells_, sig_, old_):
                        if now != was:  # update_cell() without its per-call refresh: one refresh below
                            row[held_key] = new
                            changed += 1
                else:
                    for ck, new, now, was in zip(col_keys, cells_, sig_, old_):
                        if now != was:
                            if row is not None and ck in row:
                                row[ck] = new
                                changed += 1
                            else:
                                self.update_cell(key, ck, new)
            own_cells[key] = cells
            old_sigs[key] = sig
        if changed:
            self._new_content()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._make is not None and int(old_value) != int(new_value):
            self._fill(self.in_view())

    # ------------------------------------------------------------------ rendering

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._look = None  # CSS, theme or pseudo classes changed: read the look again

    def render_lines(self, crop: Region) -> list[Strip]:
        """DataTable's, with what every line of this repaint shares read once (``_paint``); on a
        table without border, padding, outline, tint or opacity, the lines go out as drawn,
        without StylesCache's pass that would only copy them."""
        self._paint = None
        self._pseudo_class_state = self.get_pseudo_class_state()
        self._paint = self._paint_state()
        try:
            paint = self._paint
            if paint is None or not paint.look.plain:
                return super().render_lines(crop)
            look = paint.look
            filters = look.filters
            background = look.background
            width = look.width
            line = self._line
            strips = []
            for y in crop.line_range:
                strip, restyled = line(y)
                if strip.cell_length != width:
                    strip = strip.adjust_cell_length(width, look.base_style)
                if not restyled:
                    for line_filter in filters:
                        strip = strip.apply_filter(line_filter, background)
                strips.append(strip)
            if crop.column_span != (0, width):
                x1, x2 = crop.column_span
                strips = [strip.crop(x1, x2) for strip in strips]
            return strips
        finally:
            self._paint = None

    def _plain_box(self) -> bool:
        """Whether StylesCache would add nothing to this table's lines (they go out as drawn)."""
        styles = self.styles
        return (not any(edge for edge, _ in styles.border) and not any(edge for edge, _ in styles.outline)
                and not any(styles.padding) and not styles.tint.a and self.opacity == 1.0
                and styles.text_opacity == 1.0 and (not styles.has_rule("hatch") or styles.hatch == "none")
                and not self.hover_style._link_id)

    def render_line(self, y: int) -> Strip:
        """A row of simple cells (fast_cells) straight into one Strip, cached until the table's
        content, the cursor on it or the style changes; anything else goes to DataTable."""
        return self._line(y)[0]

    def _line(self, y: int) -> tuple[Strip, bool]:
        """``render_line``'s line, and whether its styles already went through the line
        filters (the rows drawn here on a plain table: see ``_paint_state``)."""
        paint = self._paint
        if paint is None:
            return super().render_line(y), False
        look = paint.look
        if y < paint.header:  # the labels: drawn again only when they or their look change
            # (a row cursor highlights a label only when on the labels' row, -1: never, in fact)
            on_labels = paint.hover_row == -1
            key = (y, paint.cursor_row == -1, on_labels, on_labels and self.hover_coordinate.column,
                   tuple((c.label.plain, c.label.style, c.label.justify) for c in look.columns))
            drawn = self._header_line
            if drawn is None or drawn[0] is not look or drawn[1] != key:
                drawn = self._header_line = (look, key, super().render_line(y))
            return drawn[2], False
        index = y - paint.header + paint.scroll_y
        if index >= len(paint.offsets):  # below the last row: DataTable's blank line, kept
            blank = paint.strips.get(None)
            if blank is None:
                blank = paint.strips[None] = Strip.blank(look.width, look.base_style)
            return blank, False
        row_key = paint.offsets[index][0]
        cursor, hover = index == paint.cursor_row, index == paint.hover_row
        cache_key = (row_key, index, cursor, hover)
        strip = paint.strips.get(cache_key)
        if strip is None:
            strip = self._row_strip(row_key, index, cursor, hover, paint)
            if strip is None:
                return super().render_line(y), False
            paint.strips[cache_key] = strip
        return strip, look.restyle is not None

    def _paint_state(self) -> _Paint | None:
        """What the lines of one repaint share, or None where DataTable must draw (cursor not
        by row, fixed rows or columns, labels, rows taller than one line, scrolled sideways,
        columns wider than the table)."""
        scroll_x, scroll_y = self.scroll_offset
        if (self.cursor_type != "row" or self.fixed_rows or self.fixed_columns or self._labelled_row_exists
                or self.zebra_stripes or scroll_x):
            return None
        offsets = self._y_offsets
        if len(offsets) != self.row_count:
            return None
        look = self._current_look()
        if look is None:
            return None
        drawn = self._strips_key
        if drawn is None or drawn[0] != self._update_count or drawn[1] is not look:  # another content or look
            self._strips_key = (self._update_count, look)
            self._strips = {}
        bar = self.scrollbar_size_vertical if self.show_vertical_scrollbar else 0
        return _Paint(look, self.header_height if self.show_header else 0, scroll_y, offsets,
                      self.cursor_coordinate.row, self.hover_coordinate.row, self._strips,
                      look.width - bar if 0 < bar < look.width else 0)

    def _current_look(self) -> _Look | None:
        """The look of the rows (``_Look``), read again only when what it is made of changed:
        the table's own styles (as Textual's ``visual_style`` does), a style update (CSS, theme,
        pseudo classes), the line filters, the size, the columns and their widths, the cursor's
        settings. None where the columns are wider than the table."""
        columns = self.ordered_columns
        widths = tuple(column.get_render_width(self) for column in columns)
        key = (self.size.width, widths, tuple(columns), self.styles._cache_key, tuple(self.get_line_filters()),
               self._pseudo_class_state, self.show_cursor, self._show_hover_cursor, self.cell_padding,
               self.cursor_foreground_priority, self.cursor_background_priority, self.show_header)
        look = self._look
        if look is not None and look.key == key:
            return look
        width, _, _, _, filters = key[:5]
        if sum(widths) > width:
            return None
        plain = self._plain_box()
        background = self.background_colors[1]
        restyle = self._restyler(filters, background) if plain else None
        look = self._look = _Look(key, self.rich_style, width, columns, widths, plain, filters, background, restyle,
                                  ColumnCells([c.key for c in columns], widths, self.cell_padding), {})
        return look

    def _restyler(self, filters: tuple[LineFilter, ...], background: Color) -> Restyle | None:
        """The line filters as a map of styles, where each of them is one (the rows drawn here
        then carry filtered styles, made once per cell style, not once per segment and line)."""
        if not all(type(f) is ANSIToTruecolor for f in filters):
            return None
        key = (filters, background)
        if self._restyle is None or self._restyle.key != key:
            self._restyle = Restyle(key, [f.truecolor_style for f in filters], background.rich_color)  # type: ignore[attr-defined]
        return self._restyle

    def _row_styles(self, look: _Look, row_index: int, cursor: bool, hover: bool) -> tuple[RowStyles, Segment | None]:
        """How a row at ``row_index`` is drawn in this look: its cells' styles, and the segment
        that carries the table's background on to the right edge (as DataTable does)."""
        got = look.rows.get((row_index, cursor, hover))
        if got is not None:
            return got
        if len(look.rows) > 256:  # (rows at as many places: one scroll through a long table)
            look.rows.clear()
        row_style = look.base_style
        component, post = self._get_styles_to_render_cell(
            False, False, False, hover, cursor, self.show_cursor, self._show_hover_cursor,
            self.cursor_foreground_priority == "css", self.cursor_background_priority == "css")
        pres = [row_style + Style.from_meta({"row": row_index, "column": column_index}) + component
                for column_index in range(len(look.widths))]
        tail = None
        rest = look.width - sum(look.widths)
        if rest > 0:
            extend, _ = self._get_styles_to_render_cell(False, False, False, hover, cursor, self.show_cursor,
                                                        self._show_hover_cursor, False, False)
            extend = row_style + extend + Style.from_meta({"row": row_index, "column": 0, "out_of_bounds": True})
            if look.restyle is not None:
                extend = look.restyle(extend)
            tail = Segment(" " * rest, extend)
        got = look.rows[(row_index, cursor, hover)] = (RowStyles(pres, post, look.restyle), tail)
        return got

    def _row_strip(self, row_key: RowKey, row_index: int, cursor: bool, hover: bool, paint: _Paint) -> Strip | None:
        row = self._data.get(row_key)
        if row is None:
            return None
        look = paint.look
        styles, tail = self._row_styles(look, row_index, cursor, hover)
        line = row_segments(row, look.cells, styles)
        if line is None:
            return None
        width = look.width
        if tail is None:
            return lean_strip(line, width)
        whole = [*line, tail]
        cut = paint.cut
        covered = width - cut
        left = len(tail.text) - covered
        if not cut or left < 0:
            return lean_strip(whole, width)
        # The compositor divides each line where the scrollbar covers it: the pieces made here,
        # where the cut falls in the tail, spare it a pass over every segment.
        if left:
            line.append(Segment(tail.text[:left], tail.style))
        pieces = [lean_strip(line, cut), lean_strip([Segment(" " * covered, tail.style)], covered)]
        return lean_strip(whole, width, {(cut, width): pieces})


class _Look(NamedTuple):
    """What a DiffTable's rows look like besides their content, read again only when it changes
    (see ``DiffTable._current_look``)."""

    key: tuple
    base_style: Style
    width: int
    columns: list
    widths: tuple[int, ...]
    plain: bool  # no border, padding, outline, tint or opacity: lines go out without StylesCache
    filters: tuple  # the app's line filters
    background: Color
    restyle: Restyle | None  # the filters as a map of styles, applied as rows are drawn
    cells: ColumnCells  # each column's cells' shapes
    rows: dict  # (row index, cursor, hover) -> DiffTable._row_styles


class _Paint(NamedTuple):
    """What the lines of one repaint of a DiffTable share (read once, not once a line)."""

    look: _Look
    header: int  # lines above the rows
    scroll_y: int
    offsets: list  # (row key, line in row) of each line
    cursor_row: int
    hover_row: int
    strips: dict  # (row key, row index, cursor, hover) -> Strip, while content and look hold
    cut: int  # where the vertical scrollbar starts covering the lines (0: none)

    @property
    def restyle(self) -> Restyle | None:
        return self.look.restyle
