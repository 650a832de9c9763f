"""Helpers shared by the dashboard's Pilot tests."""

from __future__ import annotations

import time

from kvmtop.ui.widgets.meters import summary_lines
from kvmtop.ui.widgets.vm_table import VmTable


async def wait_for(pilot, cond, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await pilot.pause(0.02)


async def first_snapshot(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.snapshot is not None)
    await pilot.pause()


def rows(app, table_type=VmTable) -> list[list[str]]:
    """The plain text of the shown cells of each row, in display order."""
    table = app.screen.query_one(table_type)
    return [[c.plain for c in table.get_row(key)] for key in table.order]


def column(app, name: str, table_type=VmTable) -> list[str]:
    keys = [c.key for c in app.screen.query_one(table_type).shown_columns]
    return [r[keys.index(name)] for r in rows(app, table_type)]


def header_text(app) -> str:
    right, line2, line3, notice = summary_lines(app.header)
    return " ".join(t.plain for t in (right, line2, line3, notice) if t is not None)


def screen_lines(app) -> list[str]:
    """What the terminal shows, one string per row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def footer_keys(app) -> list[str]:
    """The keys the footer shows, left to right (``F1``, ``⏎``…)."""
    from textual.widgets._footer import FooterKey

    return [k.key_display for k in app.screen.query(FooterKey) if k.display]


def _luminance(color) -> float:
    """WCAG relative luminance of a Rich colour triplet."""
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = color
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(fg, bg) -> float:
    """WCAG contrast ratio of two RGB triplets (1 to 21)."""
    a, b = sorted((_luminance(fg), _luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def illegible_text(app, min_ratio: float = 4.5) -> list[str]:
    """Text on screen whose colour is too close to its background's (dim text counts as half
    way to its background, as terminals draw it): ``row: 'text' fg on bg (ratio)``.
    Box-drawing lines (borders) are not text."""
    from rich.color import Color as RichColor

    default_fg = RichColor.parse("#e0e0e0").get_truecolor()
    default_bg = RichColor.parse("#000000").get_truecolor()
    out = []
    for y, strip in enumerate(app.screen._compositor.render_strips()):
        for seg in strip:
            text, style = seg.text, seg.style
            if not text.strip() or style is None or all("\u2500" <= c <= "\u257f" for c in text.strip()):
                continue
            fg = style.color.get_truecolor() if style.color else default_fg
            bg = style.bgcolor.get_truecolor() if style.bgcolor else default_bg
            if style.reverse:
                fg, bg = bg, fg
            if style.dim:
                fg = tuple(round((f + b) / 2) for f, b in zip(fg, bg))
            ratio = contrast(fg, bg)
            if ratio < min_ratio:
                out.append(f"{y}: {text.strip()!r} {tuple(fg)} on {tuple(bg)} ({ratio:.1f})")
    return out


def region_text(app, widget) -> str:
    """What the terminal shows inside ``widget``'s region."""
    r = widget.region
    return "\n".join(line[r.x:r.right] for line in screen_lines(app)[r.y:r.bottom])


async def open_screen(pilot, key: str, screen_type):
    """Press ``key`` and wait until ``screen_type`` is the screen shown."""
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(pilot.app.screen, screen_type))
    await pilot.pause(0.1)
    return pilot.app.screen


async def open_guest(pilot):
    """Enter on the highlighted guest: its guest screen."""
    from kvmtop.ui.screens.guest import GuestScreen

    return await open_screen(pilot, "enter", GuestScreen)
