"""Readable without colour: what ``NO_COLOR`` / ``--color none`` draw.

Textual's monochrome filter turns each colour into the grey of its luminance, so text in
a dark colour (magenta, blue, red: 237 on 234) vanishes into a dark background. This
filter does the same conversion and then makes sure every character of text stands out
from its background (WCAG contrast 4.5 or more): a grey too close is replaced by white or
black, whichever the background needs, and ``dim`` is dropped (terminals halve it again).
Box-drawing lines keep their grey: they frame, they carry no figure.
"""

from __future__ import annotations

from functools import lru_cache

from rich.color import Color as RichColor
from rich.segment import Segment
from rich.style import Style
from textual.color import Color
from textual.filter import LineFilter, Monochrome, monochrome_style

MIN_CONTRAST = 4.5
WHITE = RichColor.from_rgb(255, 255, 255)
BLACK = RichColor.from_rgb(0, 0, 0)
NO_DIM = Style(dim=False)


def _luminance(color: Color) -> float:
    def channel(c: int) -> float:
        v = c / 255
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def contrast(a: Color, b: Color) -> float:
    """WCAG contrast ratio (1 to 21)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _is_line_art(text: str) -> bool:
    return all("\u2500" <= ch <= "\u257f" or ch == " " for ch in text)


@lru_cache(maxsize=4096)
def readable_style(style: Style, background: Color) -> Style:
    """``style`` in greys, its text legible on its background (or ``background``)."""
    mono = monochrome_style(style) + NO_DIM
    fg = Color.from_rich_color(mono.color) if mono.color is not None else None
    bg = Color.from_rich_color(mono.bgcolor) if mono.bgcolor is not None else background.monochrome
    if fg is None:
        return mono
    if mono.reverse:
        fg, bg = bg, fg
    if contrast(fg, bg) >= MIN_CONTRAST:
        return mono
    better = WHITE if contrast(Color(255, 255, 255), bg) >= contrast(Color(0, 0, 0), bg) else BLACK
    return mono + (Style(bgcolor=better) if mono.reverse else Style(color=better))


class ReadableMonochrome(LineFilter):
    """Monochrome with every character of text legible (see the module)."""

    def apply(self, segments: list[Segment], background: Color) -> list[Segment]:
        out = []
        for text, style, control in segments:
            if style is not None and not control:
                style = monochrome_style(style) + NO_DIM if _is_line_art(text) else readable_style(style, background)
            out.append(Segment(text, style, control))
        return out


def readable_filters(filters):
    """The app's line filters with Textual's Monochrome replaced by ReadableMonochrome."""
    return [ReadableMonochrome() if isinstance(f, Monochrome) else f for f in filters]
