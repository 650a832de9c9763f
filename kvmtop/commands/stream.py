"""``kvmtop --once`` / ``--batch`` / ``--json``: intervals printed as text or JSON lines."""

from __future__ import annotations

from ..feed import Feed
from ..filtering import ReasonFilter
from ..snapshot_json import snapshot_to_json
from ..text import render
from .common import live_source


def print_stream(feed: Feed, args) -> int:
    count = 1 if args.once else args.iterations
    rf = ReasonFilter.parse(args.filter)
    first = True
    for snap in feed.snapshots(count):
        if rf is not None:
            snap = rf.apply(snap)
        if args.json:
            print(snapshot_to_json(snap), flush=True)
        else:
            if not first:
                print()
            print(render(snap), flush=True)
        first = False
    return 0


def run(args) -> int:
    feed = Feed(live_source(args), interval_s=args.interval)
    feed.open()
    try:
        return print_stream(feed, args)
    finally:
        feed.close()
