"""The header's lines as Textual Content, their span styles converted once (text_content)."""

from __future__ import annotations

from rich.console import Console
from rich.style import Style as RichStyle
from rich.terminal_theme import MONOKAI, SVG_EXPORT_THEME
from rich.text import Text
from textual._context import active_app
from textual.content import Content

from kvmtop.ui.widgets.meters import HeaderState, summary_lines
from kvmtop.ui.widgets.text_content import content_of


def texts() -> list[Text]:
    right, line2, line3, notice = summary_lines(HeaderState(filter_text="HLT", paused=True, sort_label="P99 ▼"))
    styled = Text("figures", style="bold magenta")
    styled.append(" rate", style=RichStyle(color="cyan", italic=True)).append(" x", style="dim")
    return [t for t in (right, line2, line3, notice, styled, Text("plain"), Text("")) if t is not None]


def parts(content: Content) -> tuple:
    return content.plain, list(content.spans)


def test_the_content_is_what_textual_makes_of_the_text():
    console = Console()
    for theme in (MONOKAI, SVG_EXPORT_THEME, MONOKAI):  # another terminal theme: other colours
        class App:  # where Content.from_rich_text reads the terminal theme from
            ansi_theme = theme

        for _ in range(2):  # (the second time, from the kept conversions)
            for text in texts():
                token = active_app.set(App())  # type: ignore[arg-type]
                try:
                    expected = Content.from_rich_text(text, console)
                finally:
                    active_app.reset(token)
                assert parts(content_of(text, console, theme)) == parts(expected)
