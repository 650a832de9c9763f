"""Write SVG screenshots of the dashboard into screenshots/, each of a kvmtop command line
you can run yourself (``kvmtop --demo --vms 30``).

    python scripts/screenshots.py [--out screenshots] [--size 140x42] [NAME...]

Each shot parses its command line with kvmtop's own parser and builds the source and the
app as ``kvmtop`` does; only the pacing differs: the demo is advanced by hand (90
intervals of history at once), so the same command always draws the same picture, the
one ``kvmtop`` shows after 90 seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import time
from pathlib import Path

from textual.widgets import Input

from kvmtop import cli
from kvmtop.commands import dashboard
from kvmtop.commands.common import live_source, selection
from kvmtop.filtering import ReasonFilter
from kvmtop.stepped_feed import SteppedFeed
from kvmtop.ui.app import make_app

ROOT = Path(__file__).resolve().parent.parent
WARMUP = 90  # intervals of history, as 90 s of `kvmtop --demo`
DEMO = "kvmtop --demo --vms 30"

# name -> (the command line, keys pressed, the screen that shows, size if not --size)
SHOTS: dict[str, tuple[str, tuple[str, ...], str, tuple[int, int] | None]] = {
    "main": (DEMO, (), "MainScreen", None),
    "guest": (DEMO, ("enter",), "GuestScreen", None),
    "vcpu": (DEMO, ("enter", "tab", "down", "enter"), "GuestScreen", None),
    "tree": ("kvmtop --demo --vms 30 --vcpus 4", ("f5",), "MainScreen", None),
    "filter": (DEMO, ("f", "e", "p", "t", "down", "space"), "FilterScreen", None),
    "main-no-kvm-exit": (f"{DEMO} --no-kvm-exit", (), "MainScreen", None),
    "guest-no-kvm-exit": (f"{DEMO} --no-kvm-exit", ("enter",), "GuestScreen", None),
    "guest-80x24": (DEMO, ("enter",), "GuestScreen", (80, 24)),
    "help": (DEMO, ("f1",), "HelpScreen", None),
}


def app_for(command: str):
    """The app ``command`` (``kvmtop …``) opens, over a demo advanced by hand."""
    parser = cli.build_parser()
    args = cli._resolve(parser, parser.parse_args(shlex.split(command)[1:]))
    if not args.demo:
        raise SystemExit(f"{command}: screenshots are of the demo (--demo)")
    feed = SteppedFeed(live_source(args), warmup=WARMUP, interval_s=args.interval)
    return make_app(feed, reason_filter=ReasonFilter.parse(args.filter, strict=True), title=dashboard.title(args),
                    selection=selection(args))


async def shoot(name: str, command: str, keys: tuple[str, ...], screen: str, out: Path,
                size: tuple[int, int]) -> Path:
    app = app_for(command)
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + 30
        while app.snapshot is None:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: no snapshot from the demo source")
            await pilot.pause(0.02)
        await pilot.pause()
        for key in keys:
            await pilot.press(key)
            await pilot.pause()
        while type(app.screen).__name__ != screen:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name}: {screen} did not open")
            await pilot.pause(0.02)
        if screen == "GuestScreen":  # its I/O panel counts from the interval after it opened
            app.feed.step()
            while app.view is None or app.view.io is None:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{name}: no I/O counts")
                await pilot.pause(0.02)
        for box in app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause(0.3)
        return Path(app.save_screenshot(f"{name}.svg", path=str(out)))


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "screenshots"))
    parser.add_argument("--size", default="140x42", help="COLUMNSxROWS")
    parser.add_argument("names", nargs="*", help=f"only these ({', '.join(SHOTS)})")
    args = parser.parse_args(argv)
    cols, rows = (int(x) for x in args.size.lower().split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.names or SHOTS:
        command, keys, screen, size = SHOTS[name]
        path = await shoot(name, command, keys, screen, out, size or (cols, rows))
        print(f"{path}  ({command}{', keys ' + ' '.join(keys) if keys else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
