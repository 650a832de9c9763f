"""Rich Texts as Textual Content, each span's style converted once, not once per update.

``Static.update(text)`` converts a Rich Text into Content (``Content.from_rich_text``):
every span's Rich style becomes a Textual Style, colours through the terminal theme. The
header's lines change every second but use a handful of styles: ``content_of`` makes the
same Content with those conversions kept (Textual's Styles are immutable, so shared ones
also let its own caches of styles added together hit).
"""

from __future__ import annotations

from rich.console import Console
from rich.style import Style as RichStyle
from rich.terminal_theme import TerminalTheme
from rich.text import Text
from textual.content import Content, Span
from textual.style import Style
from textual.widget import Widget

_STYLES: dict[tuple[str | RichStyle, int, int], tuple[Console, TerminalTheme | None, Style]] = {}


def _style(style: str | RichStyle, console: Console, theme: TerminalTheme | None) -> Style:
    """``Style.from_rich_style`` of ``style`` (a name parsed by ``console``), kept per console and
    terminal theme."""
    key = (style, id(console), id(theme))
    got = _STYLES.get(key)
    if got is None or got[0] is not console or got[1] is not theme:
        rich = console.get_style(style) if isinstance(style, str) else style
        if len(_STYLES) > 1024:
            _STYLES.clear()
        got = _STYLES[key] = (console, theme, Style.from_rich_style(rich, theme))
    return got[2]


def content_of(text: Text, console: Console, theme: TerminalTheme | None) -> Content:
    """What ``Content.from_rich_text(text, console)`` makes of ``text`` in an app whose terminal
    theme is ``theme`` (``App.ansi_theme``)."""
    content = Content(text.plain, [Span(start, end, _style(style, console, theme))
                                   for start, end, style in text._spans])
    if text.style:
        style = text.style
        content = content.stylize_before(style if isinstance(style, str) else _style(style, console, theme))
    return content


def app_content(widget: Widget, text: Text) -> Content:
    """``content_of`` in ``widget``'s app (its console and terminal theme)."""
    return content_of(text, widget.app.console, widget.app.ansi_theme)
