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


# (name, keys, screen to wait for, demo options): each at 80x24 and 200x50
SCREENS = [
    ("main", (), None, {}),
    ("guest", ("enter",), "GuestScreen", {}),
    ("vcpu", ("down", "enter", "tab", "down", "enter"), "GuestScreen", {}),
    ("filter", ("f", "e", "p", "t", "down", "space"), "FilterScreen", {}),
    ("help", ("f1",), "HelpScreen", {}),
    ("main_without_kvm_exit", (), None, {"exits": False}),
    ("guest_without_kvm_exit", ("enter",), "GuestScreen", {"exits": False}),
]
SIZES = {"80x24": (80, 24), "200x50": (200, 50)}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("name,keys,screen,options", SCREENS, ids=[s[0] for s in SCREENS])
def test_screen(snap_compare, name, keys, screen, options, size):
    async def run_before(pilot):
        await _settle(pilot, *keys, screen=screen)

    assert snap_compare(_app(**options), terminal_size=SIZES[size], run_before=run_before)
