"""``kvmtop`` (no command): the live dashboard; ``show`` also serves ``kvmtop replay``."""

from __future__ import annotations

import os

from ..feed import Feed
from ..filtering import ReasonFilter
from .common import live_source, selection

COLOR_SYSTEMS = {"16": "standard", "256": "256", "truecolor": "truecolor"}


def _set_color(choice: str) -> None:
    """Textual reads these at import time, so this runs before any UI import."""
    if choice == "none":
        os.environ["NO_COLOR"] = "1"
    elif choice in COLOR_SYSTEMS:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = COLOR_SYSTEMS[choice]


def show(feed: Feed, args, title: str) -> int:
    """Run the dashboard over an opened feed (``--color``, ``--filter``)."""
    _set_color(args.color)
    from ..ui.app import run_dashboard

    return run_dashboard(feed, reason_filter=ReasonFilter.parse(args.filter, strict=True), title=title,
                         selection=selection(args))


def title(args) -> str:
    return "kvmtop (demo)" if args.demo else "kvmtop"


def run(args) -> int:
    feed = Feed(live_source(args), interval_s=args.interval)
    feed.open()
    try:
        return show(feed, args, title(args))
    finally:
        feed.close()
