"""``kvmtop --once`` / ``--batch`` / ``--json`` / ``--csv``: intervals as text, JSON lines or CSV rows,
to stdout or to a file ``-o FILE`` that SIGHUP reopens."""

from __future__ import annotations

import sys

from ..errors import SourceError
from ..feed import Feed
from ..filtering import ReasonFilter
from ..record_log import RecordLog
from ..snapshot_csv import header, snapshot_to_csv
from ..snapshot_json import snapshot_to_json
from ..text import render
from .common import NO_IO_SOURCE, live_source, source_counts_io


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
            io = feed.io_sample()  # the PIO/MMIO sample of the same interval (--io, or a recording's)
            if args.json:
                out.write(snapshot_to_json(snap, filter_text=described, io=io) + "\n")
            elif args.csv:
                out.write(snapshot_to_csv(snap, io))
            else:
                out.write(("" if first else "\n") + render(snap, described, io) + "\n")
            first = False
    finally:
        out.close()
    return 0


def run(args) -> int:
    source = live_source(args)
    feed = Feed(source, interval_s=args.interval)
    feed.open()
    if args.io and not source_counts_io(source):
        print(f"kvmtop: {NO_IO_SOURCE}", file=sys.stderr)
    try:
        return print_stream(feed, args)
    finally:
        feed.close()
