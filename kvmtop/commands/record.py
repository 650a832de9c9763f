"""``kvmtop record -o FILE``: the live stream written to a recording, one progress line per interval."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from typing import IO

from .. import __version__
from ..errors import SourceError
from ..feed import Feed
from ..offline.recording import RecordingWriter
from .common import NO_IO_SOURCE, live_source, source_counts_io


def record_main(source, path: str, interval_s: float = 1.0, duration_s: float | None = None,
                out: IO[str] | None = None, io: bool = False) -> int:
    """``kvmtop record -o FILE``: drive a Feed over ``source`` with the writer as its tap,
    one line per interval on ``out``; stop after ``duration_s`` (None: at Ctrl-C or
    SIGTERM, both handled as a clean stop). ``io`` (``--io``): each record carries the
    interval's PIO/MMIO sample too. Returns 0. An unwritable path, or a source that
    cannot start, raises SourceError (one line) and leaves no file behind."""
    out = out if out is not None else sys.stdout
    feed = Feed(source, interval_s)
    meta = {
        "source": getattr(source, "name", type(source).__name__),
        "interval_s": feed.interval_s,
        "started": time.time(),
        "host": socket.gethostname(),
        "kernel": platform.release(),
        "kvmtop": __version__,
        **({"io": True} if io else {}),
    }
    try:
        writer = RecordingWriter(path, meta)  # first: a bad path fails before BPF is loaded
    except OSError as exc:
        raise SourceError(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        feed.open()
    except BaseException:
        writer.close()
        with contextlib.suppress(OSError):
            os.remove(path)
        raise
    if io and not source_counts_io(source):
        print(f"kvmtop record: {NO_IO_SOURCE}", file=sys.stderr)
    feed.tap = lambda interval: writer.write(interval, feed.last_io)  # the sample pulled with it
    # the number of intervals: ceil(duration / interval), at least one
    limit = None if duration_s is None else max(1, math.ceil(duration_s / feed.interval_s - 1e-9))
    restore = _stop_on_signals(feed)
    n = 0
    try:
        while limit is None or n < limit:
            snap = feed.next_snapshot()
            if snap is None:
                break
            n += 1
            host = snap.host
            stamp = time.strftime("%H:%M:%S", time.localtime(snap.time))
            exits = (f"{host.exits:>9} exits {host.exits_per_s:>11.1f}/s" if snap.collector.has("exits")
                     else f"{'exits n/a':>31}")
            accesses = f"  {sum(a.count for a in feed.last_io.accesses):>8} I/O accesses" if feed.last_io else ""
            out.write(f"{stamp}  #{n:<5} {exits}  {host.userspace_count:>8} userspace exits{accesses}  "
                      f"{host.vm_count} VMs {host.vcpu_count} vCPUs  -> {path}\n")
            out.flush()
    except KeyboardInterrupt:
        pass
    finally:
        restore()
        feed.close()
        writer.close()
    out.write(f"recorded {writer.count} intervals to {path}\n")
    out.flush()
    return 0


def _stop_on_signals(feed) -> Callable[[], None]:
    """While recording, Ctrl-C and SIGTERM stop the feed (so no record is cut in the middle
    of being written); main thread only. Returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        feed.stop()

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            old[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore


def run(args) -> int:
    return record_main(live_source(args), args.output, args.interval, args.duration, sys.stdout, io=args.io)
