"""Formatting for the dashboard: sparklines, bars and table cells (pure functions).

Numbers, durations and shares come from :mod:`kvmtop.units`, shared with ``--once``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from rich.text import Text

from ..units import count, duration, rate, share

__all__ = ["NA", "NA_CELL", "SPARKS", "bar", "cell_left", "cell_right", "count", "duration", "interval", "rate",
           "share", "spark", "spark_top", "sparks"]

SPARKS = "▁▂▃▄▅▆▇█"
NA = "n/a"


_CELLS: dict[tuple[str, str, bool], Text] = {}


def cell_right(text: str, style: str = "") -> Text:
    """A right-aligned table cell (numbers)."""
    got = _CELLS.get((text, style, True))
    return got if got is not None else _keep((text, style, True), Text(text, style=style, justify="right",
                                                                        no_wrap=True))


def cell_left(text: str, style: str = "") -> Text:
    """A left-aligned table cell, cut with an ellipsis (names)."""
    got = _CELLS.get((text, style, False))
    return got if got is not None else _keep((text, style, False), Text(text, style=style, no_wrap=True,
                                                                         overflow="ellipsis"))


def _keep(key: tuple[str, str, bool], cell: Text) -> Text:
    """Cells are shared, not made anew each second (tables never change a cell in place): a
    table of figures repeats a few thousand texts, and making them was a good part of its cost."""
    if len(_CELLS) >= 8192:
        _CELLS.clear()
    _CELLS[key] = cell
    return cell


NA_CELL = Text(NA, style="dim", justify="right")  # a number column without a source here


def interval(seconds: float) -> str:
    return f"{seconds:g}s"


def spark(values: Sequence[float], width: int, relative: bool = True, top: float | None = None) -> str:
    """The last ``width`` values as block characters.

    ``relative`` scales between the window's min and max (a trend: shows movement even
    when the level is high); otherwise from 0 to the max. ``top`` scales from 0 to it
    instead: one scale shared by the rows of a table, so a steady, small row stays low.
    """
    vals = list(values[-width:]) if width > 0 else []
    if not vals:
        return ""
    if top is not None:
        hi, lo, relative = top, 0.0, False
    else:
        hi = max(vals)
        lo = min(vals) if relative else 0.0
    if relative and hi - lo < 0.02 * hi:
        lo = 0.0  # flat: show the level, not noise
    if hi <= 0:
        return (SPARKS[0] * len(vals)).rjust(width)
    n = len(SPARKS) - 1
    span = hi - lo or 1.0
    out = "".join(SPARKS[min(n, max(0, int((v - lo) / span * n + 0.5)))] for v in vals)
    return out.rjust(width)


def sparks(window: np.ndarray, width: int, top: float) -> list[str]:
    """``spark(row, width, top=top)`` of each row of a matrix of values, at once (the same
    characters: the same arithmetic, element by element)."""
    vals = np.asarray(window[:, -width:] if width > 0 else window[:, :0], np.float64)
    if not vals.shape[1]:
        return [""] * len(vals)
    n = len(SPARKS) - 1
    if top <= 0:
        index = np.zeros(vals.shape, np.int64)
    else:
        span = top or 1.0
        index = np.clip(np.trunc((vals - 0.0) / span * n + 0.5), 0, n).astype(np.int64)
    chars = _SPARK_CHARS[index].tolist()
    return ["".join(row).rjust(width) for row in chars]


_SPARK_CHARS = np.array(list(SPARKS))


def spark_top(series: Iterable[Sequence[float]], width: int) -> float:
    """The largest of the last ``width`` values of any series: a shared sparkline scale."""
    return max((max(s[-width:], default=0.0) for s in series), default=0.0)


def bar(fraction: float, width: int) -> str:
    """A horizontal bar with eighth-block resolution."""
    fraction = min(1.0, max(0.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    return ("█" * full + (" ▏▎▍▌▋▊▉"[part] if part else "")).ljust(width)
