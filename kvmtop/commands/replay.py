"""``kvmtop replay FILE``: a recording or a trace capture in the dashboard, or with
``--once``/``--batch``/``--json``/``--csv`` printed by the same front end as live."""

from __future__ import annotations

import os
import sys

from ..feed import Feed
from ..safe_text import printable
from ..sources.recording import open_replay_source
from . import dashboard, stream
from .common import selected


def run(args) -> int:
    source = selected(open_replay_source(args.file, window_s=args.window), args)
    printing = args.once or args.batch or args.json or args.csv
    # printed output needs no pacing: every interval at once, unless a speed is asked for
    speed = args.speed if args.speed is not None else (float("inf") if printing else 1.0)
    feed = Feed(source, speed=speed)
    feed.open()
    try:
        warning = getattr(source, "warning", None)
        if printing:
            if warning:
                print(f"kvmtop replay: {printable(warning)}", file=sys.stderr)
            return stream.print_stream(feed, args)
        return dashboard.show(feed, args, f"kvmtop replay {os.path.basename(args.file)}")
    finally:
        feed.close()
