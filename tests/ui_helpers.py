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
