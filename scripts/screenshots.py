"""Write SVG screenshots of every screen from the demo source into screenshots/.

    python scripts/screenshots.py [--out screenshots] [--size 140x42]

Deterministic: the demo source is seeded and advanced by hand (60 intervals of history),
so the same command always draws the same pictures.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from textual.widgets import Input

from kvmtop.stepped_feed import demo_feed
from kvmtop.ui.app import make_app

ROOT = Path(__file__).resolve().parent.parent

# name -> (keys to press, screen to wait for, demo options)
SHOTS: dict[str, tuple[tuple[str, ...], str, dict]] = {
    "main": ((), "MainScreen", {"vms": 30}),
    "guest": (("enter",), "GuestScreen", {}),
    "vcpu": (("down", "enter", "tab", "enter"), "GuestScreen", {}),
    "filter": (("f", "e", "x", "t", "down", "space"), "FilterScreen", {}),
    "main-no-kvm-exit": ((), "MainScreen", {"exits": False}),
    "help": (("question_mark",), "HelpScreen", {}),
}


async def shoot(name: str, keys: tuple[str, ...], screen: str, options: dict, out: Path,
                size: tuple[int, int]) -> Path:
    app = make_app(demo_feed(vms=options.pop("vms", 10), warmup=90, **options), title="kvmtop (demo)")
    async with app.run_test(size=size) as pilot:
        deadline = time.monotonic() + 20
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
        for box in app.screen.query(Input):
            box.cursor_blink = False
        await pilot.pause(0.2)
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
        keys, screen, options = SHOTS[name]
        options = dict(options)
        path = await shoot(name, keys, screen, options, out, (cols, rows))
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
