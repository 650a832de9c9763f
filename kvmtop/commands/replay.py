"""``kvmtop replay FILE``: the dashboard over a recording or a trace capture."""

from __future__ import annotations

import os

from ..feed import Feed
from ..sources.recording import open_replay_source
from . import dashboard


def run(args) -> int:
    feed = Feed(open_replay_source(args.file, window_s=args.window), speed=args.speed)
    feed.open()
    try:
        return dashboard.show(feed, args, f"kvmtop replay {os.path.basename(args.file)}")
    finally:
        feed.close()
