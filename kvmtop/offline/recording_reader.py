"""Reading a recording for replay: a Sequence of Intervals read from the file on demand.

Opening reads the file once, decoding and checking every record (``record_check``), to
count the intervals, find where the file stops being readable and keep a few checkpoints:
the reader's state at a chunk boundary (the inflater's copy, the partial line after it).
Indexing then decodes one record; going forward reads on, going back restarts from the
nearest checkpoint before the index. Memory stays bounded whatever the length: at most
``MAX_CHECKPOINTS`` checkpoints (twice as far apart when they would be more), one chunk
and one record of at most ``MAX_RECORD`` bytes (a longer one is skipped as damaged).

Damage costs only the damaged records: a gzip member that fails its CRC (the writer puts
each record in its own member), a line that is not JSON, a record whose types or bounds
are wrong, or one too long, is skipped and counted; the intervals around it are kept. A
file cut short yields its complete prefix. ``warning`` says it all in one line
("N intervals, stops at byte X (truncated)", "K damaged records skipped ..."); a file
that is not a recording raises SourceError (one line).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any, NamedTuple, overload

from ..errors import SourceError
from ..io_stats import IoSample
from ..model import Interval
from ..safe_text import printable
from .datafile import DataFile, DataState, open_data
from .record_check import interval_problem
from .recording import SCHEMA, SCHEMA_FAMILY, interval_from_json, io_from_json

MAX_CHECKPOINTS = 128
FIRST_SPACING = 16 << 20  # inflated bytes between checkpoints, doubled when they get too many
MAX_RECORD = 64 << 20  # bytes of one record (one line)
TOO_LONG = b"\0too long"  # stands for a line longer than MAX_RECORD (compared by identity)


class _Checkpoint(NamedTuple):
    passed: int  # intervals before the first line after it
    byte: int  # inflated bytes before it
    state: DataState
    partial: bytes  # the start of a line, read before the boundary
    dropping: bool  # inside a line too long to keep


class _Lines:
    """Complete lines of a DataFile (TOO_LONG for one above MAX_RECORD), bounded in memory."""

    def __init__(self, data: DataFile, index: int = 0, byte: int = 0, partial: bytes = b"",
                 dropping: bool = False):
        self.data = data
        self.index = index  # intervals passed so far
        self.byte = byte  # inflated bytes read so far
        self._parts = [partial] if partial else []  # the line being read, in pieces (no copying)
        self._size = len(partial)
        self._dropping = dropping
        self._breaks = data.breaks
        self.ready: deque[bytes] = deque()
        self.cut_at: int | None = None  # inflated offset of a line the end of the file cut

    def at_boundary(self) -> bool:
        return not self.ready

    def checkpoint(self) -> _Checkpoint:
        assert not self.ready
        return _Checkpoint(self.index, self.byte, self.data.state(), b"".join(self._parts), self._dropping)

    def next(self) -> bytes | None:
        while not self.ready:
            chunk = self.data.read_chunk()
            if not chunk:
                if self._size and any(p.strip() for p in self._parts):
                    self.cut_at = self.byte - self._size
                self._parts, self._size = [], 0
                return None
            self.byte += len(chunk)
            if self._dropping:  # the rest of a line too long to keep
                nl = chunk.find(b"\n")
                if nl < 0:
                    continue
                chunk, self._dropping = chunk[nl + 1:], False
            pieces = chunk.split(b"\n")
            if len(pieces) > 1:
                first = b"".join(self._parts) + pieces[0] if self._parts else pieces[0]
                self.ready.extend(p if len(p) <= MAX_RECORD else TOO_LONG for p in (first, *pieces[1:-1]))
                self._parts, self._size = [], 0
            if pieces[-1]:
                self._parts.append(pieces[-1])
                self._size += len(pieces[-1])
                if self._size > MAX_RECORD:
                    self._parts, self._size, self._dropping = [], 0, True
                    self.ready.append(TOO_LONG)
            if self.data.breaks != self._breaks:  # the chunk ended where the data is damaged:
                self._breaks = self.data.breaks  # its unfinished line is part of the damage
                self._parts, self._size, self._dropping = [], 0, False
        return self.ready.popleft()


def _kind(line: bytes) -> tuple[str, Any]:
    """("interval", obj), ("end", N), ("skip", None) or ("damaged", why) for one line; an
    interval's obj has passed ``interval_problem``."""
    if line is TOO_LONG:
        return "damaged", f"longer than {MAX_RECORD >> 20} MiB"
    if not line.strip():
        return "skip", None
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        return "damaged", f"not JSON ({type(exc).__name__})"
    if not isinstance(obj, dict):
        return "damaged", "not an object"
    if "t" in obj:
        problem = interval_problem(obj)
        return ("damaged", problem) if problem else ("interval", obj)
    if "end" in obj:
        end = obj["end"]
        return ("end", end) if type(end) is int and end >= 0 else ("damaged", "a bad end record")
    return "skip", None  # a header or a record type of a later version


class RecordingReader(Sequence[Interval]):
    """The intervals of a recording, read from the file when indexed. Thread-safe."""

    def __init__(self, path: str, note_warning: bool = False):
        """``note_warning``: add ``warning`` to every interval's notes (a replay shows them)."""
        self.path = path
        self._note_warning = note_warning
        try:
            self._data = open_data(path, hold=MAX_RECORD)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self._lock = threading.Lock()
        self.damaged = 0  # records skipped as damaged (a damaged header included)
        self.truncated_at: int | None = None  # the byte where the readable part ends, when it is cut short
        try:
            self.meta: dict[str, Any] = self._header()
            self._length, self.warning = self._index()
        except OSError as exc:
            self._data.close()
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except BaseException:
            self._data.close()
            raise
        self._cursor: _Lines | None = None
        self._last: tuple[int, tuple[Interval, IoSample | None]] | None = None

    # ------------------------------------------------------------------ opening
    def _header(self) -> dict[str, Any]:
        self._start = self._data.state()
        line = _Lines(self._data).next()
        if line is None:
            raise SourceError(f"{self.path} is not a kvmtop recording (no complete header line)")
        if self._data.skip_count and _kind(line)[0] == "interval":
            self._header_damaged = True  # its header member was damaged: the records still count
            return {}
        self._header_damaged = False
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):
            obj = None
        if not isinstance(obj, dict) or not str(obj.get("schema", "")).startswith(SCHEMA_FAMILY):
            raise SourceError(f"{self.path} is not a kvmtop recording")
        if obj["schema"] != SCHEMA:
            raise SourceError(f"{self.path} is a recording of an unsupported schema {printable(str(obj['schema']))!r} "
                              f"(this kvmtop reads {SCHEMA})")
        return {k: v for k, v in obj.items() if k != "schema"}

    def _index(self) -> tuple[int, str | None]:
        """One pass over the file: (number of intervals, warning); sets the checkpoints."""
        self._data.restore(self._start)
        lines = _Lines(self._data)
        self._checkpoints: list[_Checkpoint] = [lines.checkpoint()]
        spacing = FIRST_SPACING
        ended = None
        damaged = int(self._header_damaged)
        first: tuple[int, str] | None = (0, "the header is damaged") if damaged else None
        skips = 0
        while True:
            if lines.at_boundary() and lines.byte - self._checkpoints[-1].byte >= spacing:
                if len(self._checkpoints) >= MAX_CHECKPOINTS:
                    self._checkpoints = self._checkpoints[::2]
                    spacing *= 2
                self._checkpoints.append(lines.checkpoint())
            line = lines.next()
            if self._data.skip_count > skips:  # damaged compressed records, skipped by the DataFile
                if first is None:
                    first = (lines.index, self._data.skipped.get(min(self._data.skipped), "damaged"))
                skips = self._data.skip_count
            if line is None:
                break
            kind, value = _kind(line)
            if kind == "interval":
                lines.index += 1
            elif kind == "end":
                ended = value
            elif kind == "damaged":
                damaged += 1
                first = first or (lines.index, value)
        self._starts = [c.passed for c in self._checkpoints]
        self.damaged = damaged + skips - int(self._header_damaged and skips > 0)
        return lines.index, self._warning(lines, ended, first)

    def _warning(self, lines: _Lines, ended: int | None, first: tuple[int, str] | None) -> str | None:
        count, data = lines.index, self._data
        parts = []
        if data.problem is not None or lines.cut_at is not None or ended is None:
            if data.problem is not None:
                self.truncated_at, why = data.stop_byte, data.problem
            elif lines.cut_at is not None:
                self.truncated_at, why = lines.cut_at, "its last record is incomplete"
            else:
                self.truncated_at, why = os.path.getsize(self.path), "no end record: the recorder did not finish"
            parts.append(f"stops at byte {self.truncated_at} (truncated: {why})")
        if self.damaged:
            s = "s" if self.damaged > 1 else ""
            parts.append(f"{self.damaged} damaged record{s} skipped (the first after interval {first[0]}: "
                         f"{printable(first[1])})" if first else f"{self.damaged} damaged record{s} skipped")
        elif ended is not None and ended != count and not parts:
            parts.append(f"says {ended} intervals but holds {count}")
        if not parts:
            return None
        return f"recording {os.path.basename(self.path)}: {count} intervals, " + "; ".join(parts)

    # ------------------------------------------------------------------ Sequence
    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, i: int) -> Interval: ...

    @overload
    def __getitem__(self, i: slice) -> list[Interval]: ...

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(self._length))]
        return self._entry(i)[0]

    def io(self, i: int) -> IoSample | None:
        """The PIO/MMIO sample recorded beside interval ``i`` (None: not counted then)."""
        return self._entry(i)[1]

    def _entry(self, i: int) -> tuple[Interval, IoSample | None]:
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"interval {i} of {self._length}")
        with self._lock:
            if self._last is not None and self._last[0] == i:
                return self._last[1]
            if self._data.closed:
                raise SourceError(f"recording {os.path.basename(self.path)} is closed")
            record = self._record(i)
            interval = interval_from_json(record)  # checked by _kind: it decodes
            if self._note_warning and self.warning:
                interval = replace(interval, status=replace(interval.status,
                                                            notes=(*interval.status.notes, self.warning)))
            self._last = (i, (interval, io_from_json(record)))
            return self._last[1]

    def __iter__(self) -> Iterator[Interval]:
        for i in range(self._length):
            yield self[i]

    def _record(self, i: int) -> dict[str, Any]:
        """The checked record of interval ``i``: read on from the cursor, or from the checkpoint before ``i``."""
        cursor = self._cursor
        checkpoint = self._checkpoints[bisect.bisect_right(self._starts, i) - 1]
        if cursor is None or not checkpoint.passed <= cursor.index <= i:
            self._data.restore(checkpoint.state)
            cursor = self._cursor = _Lines(self._data, checkpoint.passed, checkpoint.byte, checkpoint.partial,
                                           checkpoint.dropping)
        try:
            while True:
                line = cursor.next()
                if line is None:
                    raise SourceError(f"recording {os.path.basename(self.path)} changed while it was replayed")
                kind, obj = _kind(line)
                if kind == "interval":
                    cursor.index += 1
                    if cursor.index - 1 == i:
                        return obj
        except OSError as exc:
            raise SourceError(f"cannot read {self.path}: {exc.strerror or exc}") from exc

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        with self._lock:  # not in the middle of a read on another thread
            self._data.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_recording(path: str) -> tuple[dict[str, Any], list[Interval], str | None]:
    """(meta, intervals, warning) of a whole recording in memory (small files, tests)."""
    with RecordingReader(path) as reader:
        return reader.meta, list(reader), reader.warning
