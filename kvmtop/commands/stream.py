"""``kvmtop --once`` / ``--batch`` / ``--json`` / ``--csv``: intervals as text, JSON lines or CSV rows,
to stdout or to a file ``-o FILE`` that SIGHUP reopens."""

from __future__ import annotations

from ..errors import SourceError
from ..feed import Feed
from ..filtering import ReasonFilter
from ..record_log import RecordLog
from ..snapshot_csv import header, snapshot_to_csv
from ..snapshot_json import snapshot_to_json
from ..text import render
from .common import live_source


def print_stream(feed: Feed, args) -> int:
    count = 1 if args.once else args.iterations
    rf = ReasonFilter.parse(args.filter, strict=True)
    described = rf.describe() if rf is not None else ""
    try:
        out = RecordLog(args.output, header() if args.csv else "")
    except OSError as e:
        raise SourceError(f"cannot open {args.output}: {e.strerror or e}") from None
    out.install_sighup()
    first = True
    try:
        for snap in feed.snapshots(count):
            if rf is not None:
                snap = rf.apply(snap)
            if args.json:
                out.write(snapshot_to_json(snap, filter_text=described) + "\n")
            elif args.csv:
                out.write(snapshot_to_csv(snap))
            else:
                out.write(("" if first else "\n") + render(snap, described) + "\n")
            first = False
    finally:
        out.close()
    return 0


def run(args) -> int:
    feed = Feed(live_source(args), interval_s=args.interval)
    feed.open()
    try:
        return print_stream(feed, args)
    finally:
        feed.close()
