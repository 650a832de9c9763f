"""Segments of a one-line table cell without Rich's layout machinery.

Textual's DataTable renders every visible cell through ``console.render_lines`` (Padding,
Styled, Text wrapping and justifying) whenever any cell changed: a few hundred cells a
second cost tens of milliseconds. The dashboard's cells are plain single-style Texts of
single-width characters on one line, whose rendering is simple enough to do directly:

    pad | text (cropped, or cut with "…"; justified with spaces in its own style) | fill | pad

``row_segments`` draws a table row of such cells with the same characters and styles as Rich
would (``cell_segments``, one cell, is checked against Rich itself by tests/test_ui_big_host.py),
or gives None for any other cell (the caller falls back to Rich). What a cell's line is made
of is kept by cell identity (cells are shared, kvmtop.ui.format), the combined styles by row,
column and cell style.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

_STYLES: dict[str, Style] = {}


def _style(style: str | Style) -> Style | None:
    if isinstance(style, Style):
        return style
    got = _STYLES.get(style)
    if got is None:
        try:
            got = Style.parse(style) if style else Style.null()
        except Exception:
            return None
        if len(_STYLES) < 4096:
            _STYLES[style] = got
    return got


class Restyle:
    """Line filters that map each segment's style alone (Textual's ANSIToTruecolor), as one map
    of styles: applied to a cell's styles once, they spare a pass over every drawn line."""

    __slots__ = ("background", "key", "maps")

    def __init__(self, key: object, maps: Sequence[Callable[[Style, Color], Style]], background: Color):
        self.key = key
        self.maps = tuple(maps)
        self.background = background

    def __call__(self, style: Style) -> Style:
        for restyle in self.maps:
            style = restyle(style, self.background)
        return style


CellStyles = tuple[Style, Style, Segment]  # (text style, fill style, one-space padding segment)
_new_segment = tuple.__new__  # Segment(text, style) without its Python-level __new__


def cell_styles(pre: Style, post: Style, style: str | Style, restyle: Restyle | None = None) -> CellStyles | None:
    """(text style, fill style, one-space padding segment) of a cell of style ``style``: ``pre +
    style + post`` and ``pre + post`` (through ``restyle``); None if ``style`` does not parse. A
    cell without a style of its own gets the fill style itself, so its text and padding can be
    one segment."""
    parsed = _style(style)
    if parsed is None:
        return None
    fill = pre + post if post else pre
    text = fill if not parsed else (pre + parsed + post if post else pre + parsed)
    if restyle is not None:
        # (filtered styles can come out equal, even the same object: the cell keeps its three
        # segments, as Rich would give, so a screenshot's runs stay where they were)
        text, fill = (restyle(fill),) * 2 if text is fill else (restyle(text), restyle(fill).copy())
    return text, fill, _new_segment(Segment, (" ", fill, None))


Shape = tuple[str, tuple[tuple[str, bool], ...]]  # the whole line; between the pads, (piece, in the text's style)


def _shape(cell: Text, width: int, padding: int) -> Shape | None:
    """What a cell's line is made of, whatever its styles: the whole line (padding included),
    and between the two pads its pieces (text, whether in the text's own style); None if the
    cell is not simple."""
    if cell._spans or cell.justify not in (None, "default", "left", "right"):
        return None
    plain = cell.plain
    inner = width - 2 * padding
    if inner < 1 or not plain.isprintable() or cell_len(plain) != len(plain):
        return None
    if len(plain) > inner:
        plain = plain[: inner - 1] + "…" if cell.overflow == "ellipsis" else plain[:inner]
    gap = inner - len(plain)
    pad = " " * padding
    if cell.justify == "right":
        return pad + " " * gap + plain + pad, ((" " * gap + plain, True),)
    if cell.justify == "left":  # Rich pads a left-justified text in its own style
        return pad + plain + " " * gap + pad, ((plain + " " * gap, True),)
    return pad + plain + " " * gap + pad, ((plain, True), (" " * gap, False)) if gap else ((plain, True),)


def cell_shape(cell: object, width: int, padding: int) -> Shape | None:
    """``_shape`` of a plain Text (or a subclass that renders as one), None for anything else."""
    if type(cell) is not Text and not (isinstance(cell, Text)
                                       and type(cell).__rich_console__ is Text.__rich_console__):
        return None
    return _shape(cell, width, padding)


def cell_segments(cell: object, width: int, padding: int, pre: Style, post: Style,
                  restyle: Restyle | None = None) -> list[Segment] | None:
    """One line of ``cell`` in ``width`` columns with ``padding`` on each side, as
    ``Styled(Padding(cell, (0, padding)), pre, post)`` renders it (its styles through
    ``restyle``), or None if not simple: a row of one cell (``row_segments``)."""
    return row_segments({0: cell}, ColumnCells((0,), (width,), padding), RowStyles((pre,), post, restyle))


class ColumnCells:
    """A table's columns as drawn in one look: each one's cell key and width, and the shapes of
    the cells it showed, by cell identity (a cell keeps its shape as long as it lives)."""

    __slots__ = ("keys", "padding", "shapes", "widths")

    LIMIT = 512  # cells remembered per column (the rows in view hold one each, most kept from update to update)

    def __init__(self, keys: Sequence[object], widths: Sequence[int], padding: int) -> None:
        self.keys = tuple(keys)
        self.widths = tuple(widths)
        self.padding = padding
        self.shapes: list[dict[int, tuple[object, Shape | None]]] = [{} for _ in self.keys]


class RowStyles:
    """The styles of one row's cells in one look: before each column's cell style (``pres``:
    the row's, its position for the mouse, the cursor's), after it (``post``), through
    ``restyle``; and, made as cells ask for them, each column's ``cell_styles`` by cell style."""

    __slots__ = ("post", "pres", "restyle", "styles")

    LIMIT = 256  # cell styles remembered per column

    def __init__(self, pres: Sequence[Style], post: Style, restyle: Restyle | None) -> None:
        self.pres = tuple(pres)
        self.post = post
        self.restyle = restyle
        self.styles: list[dict[object, CellStyles]] = [{} for _ in self.pres]


def row_segments(row: Mapping[Any, object], columns: ColumnCells, look: RowStyles) -> list[Segment] | None:
    """The segments of one table row (``row``: its cells by column key), each cell as
    ``cell_segments`` draws it; None if a cell is missing or not simple."""
    keys = columns.keys
    # (a table's rows keep their cells in the columns' order: their values then need no lookups)
    cells = row.values() if tuple(row) == keys else [row.get(key) for key in keys]
    line: list[Segment] = []
    append = line.append
    padding = columns.padding
    post, restyle = look.post, look.restyle
    for cell, width, shapes, pre, styles in zip(cells, columns.widths, columns.shapes, look.pres, look.styles):
        got = shapes.get(id(cell))
        if got is None or got[0] is not cell:
            if cell is None:
                return None
            if len(shapes) > ColumnCells.LIMIT:
                shapes.clear()
            got = shapes[id(cell)] = (cell, cell_shape(cell, width, padding))  # the cell kept: its id stays its own
        shape = got[1]
        if shape is None:
            return None
        style = cell.style  # type: ignore[attr-defined]
        combined = styles.get(style)
        if combined is None:
            combined = cell_styles(pre, post, style, restyle)
            if combined is None:
                return None
            if len(styles) > RowStyles.LIMIT:
                styles.clear()
            styles[style] = combined
        text_style, fill_style, space = combined
        if text_style is fill_style:  # one style from edge to edge
            append(_new_segment(Segment, (shape[0], text_style, None)))
            continue
        pad = space if padding == 1 else _new_segment(Segment, (" " * padding, fill_style, None))
        append(pad)
        for piece, own in shape[1]:
            append(_new_segment(Segment, (piece, text_style if own else fill_style, None)))
        append(pad)
    return line


class _NoCache:
    """A Strip cache that keeps nothing (what it would keep is worked out again if asked)."""

    __slots__ = ()

    def get(self, key: object) -> None:
        return None

    def __setitem__(self, key: object, value: object) -> None:
        pass


_NO_CACHE = _NoCache()
_LEAN = set(Strip.__slots__) == {
    "_segments", "_cell_length", "_divide_cache", "_crop_cache", "_style_cache", "_filter_cache", "_render_cache",
    "_line_length_cache", "_crop_extend_cache", "_offsets_cache", "_link_ids", "_cell_count"}


class LeanStrip(Strip):
    """A Strip of a table's row, made without the seven caches each Strip carries: a row's line
    lives for one update, is divided once by the compositor (``divided``: those pieces made
    beforehand, where known) and its pieces rendered once. Making and freeing those caches cost
    more than the line itself. (Where Textual's Strip has other slots than those known here,
    ``lean_strip`` makes plain Strips.)"""

    __slots__ = ()

    def __init__(self, segments: list[Segment], cell_length: int, divided: dict | None = None) -> None:
        self._segments = segments  # (taken over, not copied)
        self._cell_length = cell_length
        self._divide_cache = _NO_CACHE if divided is None else divided  # type: ignore[assignment]
        self._crop_cache = self._style_cache = self._filter_cache = _NO_CACHE  # type: ignore[assignment]
        self._line_length_cache = self._crop_extend_cache = self._offsets_cache = _NO_CACHE  # type: ignore[assignment]
        self._render_cache = None
        self._link_ids = None
        self._cell_count = None


def lean_strip(segments: list[Segment], cell_length: int, divided: dict | None = None) -> Strip:
    """A ``LeanStrip`` (``segments`` taken over), or a plain Strip where Textual's differs."""
    if not _LEAN:
        strip = Strip(segments, cell_length)
        if divided:
            for cuts, pieces in divided.items():
                strip._divide_cache[cuts] = pieces
        return strip
    return LeanStrip(segments, cell_length, divided)
