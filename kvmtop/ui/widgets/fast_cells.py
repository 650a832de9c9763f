"""Segments of a one-line table cell without Rich's layout machinery.

Textual's DataTable renders every visible cell through ``console.render_lines`` (Padding,
Styled, Text wrapping and justifying) whenever any cell changed: a few hundred cells a
second cost tens of milliseconds. The dashboard's cells are plain single-style Texts of
single-width characters on one line, whose rendering is simple enough to do directly:

    pad | text (cropped, or cut with "…"; justified with spaces in its own style) | fill | pad

``cell_segments`` returns the same characters with the same styles as Rich would (checked
by tests/test_fast_cells.py against Rich itself), or None for any other cell (the caller
falls back to Rich).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rich.cells import cell_len
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from rich.text import Text

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


_COMBINED: dict[tuple[int, int, object, int], tuple[Style, Style, Style, Style, Segment, Restyle | None]] = {}
_new_segment = tuple.__new__  # Segment(text, style) without its Python-level __new__


def _combined(pre: Style, post: Style, style: str | Style, restyle: Restyle | None = None
              ) -> tuple[Style, Style, Segment] | None:
    """(text style, fill style, one-space padding segment) of a cell: ``pre + style + post`` and
    ``pre + post`` (through ``restyle``), cached by the identity of ``pre``, ``post`` and
    ``restyle`` (the caller keeps those objects) and the cell's style. A cell without a style of
    its own gets the fill style itself, so its text and padding can be one segment."""
    key = (id(pre), id(post), style, id(restyle))
    got = _COMBINED.get(key)
    if got is None or got[0] is not pre or got[1] is not post or got[5] is not restyle:
        parsed = _style(style)
        if parsed is None:
            return None
        if len(_COMBINED) > 8192:
            _COMBINED.clear()
        fill = pre + post if post else pre
        text = fill if not parsed else (pre + parsed + post if post else pre + parsed)
        if restyle is not None:
            # (filtered styles can come out equal, even the same object: the cell keeps its three
            # segments, as Rich would give, so a screenshot's runs stay where they were)
            text, fill = (restyle(fill),) * 2 if text is fill else (restyle(text), restyle(fill).copy())
        got = _COMBINED[key] = (pre, post, text, fill, _new_segment(Segment, (" ", fill, None)), restyle)
    return got[2], got[3], got[4]


_SHAPES: dict[tuple[int, int, int], tuple[Text, tuple[str, tuple[tuple[str, bool], ...]] | None]] = {}


def _shape(cell: Text, width: int, padding: int) -> tuple[str, tuple[tuple[str, bool], ...]] | None:
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


def cell_segments(cell: object, width: int, padding: int, pre: Style, post: Style,
                  restyle: Restyle | None = None) -> list[Segment] | None:
    """One line of ``cell`` in ``width`` columns with ``padding`` on each side, as
    ``Styled(Padding(cell, (0, padding)), pre, post)`` renders it (its styles through
    ``restyle``), or None if not simple. Cells are shared (kvmtop.ui.format), so what a cell's
    line is made of is worked out once per cell and width."""
    key = (id(cell), width, padding)
    got = _SHAPES.get(key)
    if got is None or got[0] is not cell:
        if type(cell) is not Text and not (isinstance(cell, Text)
                                           and type(cell).__rich_console__ is Text.__rich_console__):
            return None
        if len(_SHAPES) > 4096:
            _SHAPES.clear()
        got = _SHAPES[key] = (cell, _shape(cell, width, padding))  # the cell kept: its id stays its own
    shape = got[1]
    if shape is None:
        return None
    styles = _combined(pre, post, cell.style, restyle)
    if styles is None:
        return None
    text_style, fill_style, space = styles
    if text_style is fill_style:  # one style from edge to edge
        return [_new_segment(Segment, (shape[0], text_style, None))]
    pad = space if padding == 1 else _new_segment(Segment, (" " * padding, fill_style, None))
    return [pad, *[_new_segment(Segment, (piece, text_style if own else fill_style, None))
                   for piece, own in shape[1]], pad]
