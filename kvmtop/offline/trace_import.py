"""Import a text capture (ftrace, trace-cmd, perf script), streaming, into aggregates.

The file is read one line at a time (memory independent of its length) through
``trace_lines.TraceParser`` and ``pairing.Pairing``; see those modules for the accepted
layouts and the pairing rules. Files are read as bytes decoded with errors="replace", so
any content imports; a gzip-compressed capture is read through gzip, as far as it goes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from .capture_tools import Conversion, sniff
from .datafile import DataFile, head, open_data
from .pairing import Aggregates, Pairing
from .recording import is_recording
from .trace_lines import TraceParser

MAX_LINE = 1 << 16  # characters of a line kept; no trace line comes near


class NotATrace(OSError):
    """The file is something else kvmtop knows (a recording)."""


@dataclass
class TraceImport:
    """What one capture holds: the parser's summary and the aggregates."""

    parser: TraceParser
    agg: Aggregates  # the whole capture (the last window when windowed)
    windows: list[tuple[int, Aggregates]] = field(default_factory=list)  # (index, agg), in file order
    tids: set[int] = field(default_factory=set)  # threads that had at least one event
    source: str = ""
    read_error: str | None = None  # why reading stopped before the end of the file
    pairing: Pairing | None = None  # holds the slowest lists when they were asked for


def open_text(path: str) -> tuple[IO[str], DataFile]:
    """A capture as text lines (bytes decoded as UTF-8 with errors="replace"; gzip undone,
    as far as it goes), and the DataFile under it (its ``problem``).

    Raises OSError when unreadable, NotATrace for a kvmtop recording.
    """
    if is_recording(path):
        raise NotATrace(f"{path} is a kvmtop recording (open it with kvmtop replay)")
    data = open_data(path)
    return io.TextIOWrapper(io.BufferedReader(data), encoding="utf-8", errors="replace"), data


def bounded_lines(f: IO[str], limit: int = MAX_LINE) -> Iterator[str]:
    """The lines of ``f``, each cut to ``limit`` characters (the rest of an overlong line is
    read and dropped), so that memory stays bounded whatever the file holds."""
    readline = f.readline
    while True:
        line = readline(limit)
        if not line:
            return
        if len(line) == limit and line[-1] != "\n":
            while True:
                rest = readline(limit)
                if not rest or rest[-1] == "\n":
                    break
        yield line


def no_events(imp: TraceImport, path: str) -> str | None:
    """Why ``imp`` is no capture to report on (it has no KVM trace event at all), or None."""
    p = imp.parser
    if p.events:
        return None
    if imp.read_error and not p.lines:
        return f"{path}: {imp.read_error}"
    if not p.lines:
        return f"{path} is empty: no trace events"
    try:
        binary = b"\0" in head(path, 4096)
    except OSError:
        binary = False
    what = "binary data, not a text capture" if binary else "no KVM trace events"
    return (f"{path} holds {what} ({p.lines} lines: {p.skipped} not trace lines, {p.bad_count} damaged); "
            "kvmtop reads ftrace, trace-cmd report and perf script text, perf.data and trace.dat")


def import_lines(lines: Iterable[str], window_s: float | None = None, source: str = "",
                 slowest: int = 0) -> TraceImport:
    """Import a capture given as lines. With ``window_s``, aggregates are cut into windows
    of that much trace time (see ``Pairing.run``); with ``slowest`` = N, each thread's N
    slowest exits and round trips are kept (``Pairing.slow_exits``...)."""
    parser = TraceParser()
    pairing = Pairing(slowest)
    windows: list[tuple[int, Aggregates]] = []
    if window_s is None:
        pairing.run(parser.parse(lines))
    else:
        window_ns = max(1, int(round(window_s * 1e9)))
        pairing.run(parser.parse(lines), window_ns, lambda i, agg: windows.append((i, agg)))
    tids = set(pairing.states)
    agg = pairing.finish()
    return TraceImport(parser, agg, windows, tids, source, pairing=pairing)


def import_file(path: str, window_s: float | None = None, slowest: int = 0) -> TraceImport:
    """Import a capture file, streaming: text (plain or gzip), or perf.data / trace.dat
    through ``perf script`` / ``trace-cmd report`` (``capture_tools``). Raises OSError
    (NotATrace for a recording, ToolMissing for a converter that is not installed) when it
    cannot be opened; damage inside (bad lines, a cut gzip stream, a converter that
    failed) is reported in ``read_error``, never raised."""
    tool = sniff(path)
    if tool is not None:
        with Conversion(tool, path) as conversion:
            imp = import_lines(bounded_lines(conversion.stdout), window_s, source=path, slowest=slowest)
        if not imp.parser.lines:
            conversion.printed_nothing()
        imp.read_error = conversion.problem
        return imp
    text, data = open_text(path)
    with text:
        imp = import_lines(bounded_lines(text), window_s, source=path, slowest=slowest)
    imp.read_error = data.summary()
    return imp
