"""SVG snapshot tests of each screen on the demo source (one frozen snapshot each).

Update the baselines with ``pytest tests/test_ui_snapshots.py --snapshot-update`` and
look at them (tests/__snapshots__/test_ui_snapshots/).
"""

from __future__ import annotations

import time

import pytest
from textual.widgets import Input

from kvmtop.stepped_feed import demo_feed
from kvmtop.ui.app import make_app

pytestmark = pytest.mark.ui

SIZE = (140, 42)


def _app(**kwargs):
    return make_app(demo_feed(vms=8, warmup=60, **kwargs), title="kvmtop (demo)")


async def _settle(pilot, *keys: str, screen: str | None = None) -> None:
    app = pilot.app
    deadline = time.monotonic() + 10
    while app.snapshot is None:
        assert time.monotonic() < deadline, "no snapshot"
        await pilot.pause(0.02)
    await pilot.pause()
    for key in keys:
        await pilot.press(key)
        await pilot.pause()
    if screen is not None:
        while type(app.screen).__name__ != screen:
            assert time.monotonic() < deadline, f"no {screen}"
            await pilot.pause(0.02)
    for box in app.screen.query(Input):
        box.cursor_blink = False
    await pilot.pause(0.1)


def test_main_screen(snap_compare):
    async def run_before(pilot):
        await _settle(pilot)

    assert snap_compare(_app(), terminal_size=SIZE, run_before=run_before)


def test_guest_screen(snap_compare):
    async def run_before(pilot):
        await _settle(pilot, "enter", screen="GuestScreen")

    assert snap_compare(_app(), terminal_size=SIZE, run_before=run_before)


def test_vcpu_screen(snap_compare):
    async def run_before(pilot):
        await _settle(pilot, "down", "enter", "tab", "down", "enter", screen="GuestScreen")

    assert snap_compare(_app(), terminal_size=SIZE, run_before=run_before)


def test_filter_picker(snap_compare):
    async def run_before(pilot):
        await _settle(pilot, "f", "e", "x", "t", "down", "space", screen="FilterScreen")

    assert snap_compare(_app(), terminal_size=SIZE, run_before=run_before)


def test_main_screen_without_kvm_exit(snap_compare):
    async def run_before(pilot):
        await _settle(pilot)

    assert snap_compare(_app(exits=False), terminal_size=SIZE, run_before=run_before)
