"""Reading a recording for replay: a Sequence of Intervals read from the file on demand.

Opening reads the file once without decoding the records (inflate and split lines
only), to count the intervals, find where the file stops being readable and keep a few
checkpoints: the reader's state at a chunk boundary (the inflater's copy, the partial line
after it). Indexing then decodes one record; going forward reads on, going back restarts
from the nearest checkpoint before the index. Memory stays bounded whatever the length:
at most ``MAX_CHECKPOINTS`` checkpoints (twice as far apart when they would be more),
one chunk and one line.

A cut or damaged file yields its complete prefix and a ``warning``; a file that is not a
recording raises SourceError (one line).
"""

from __future__ import annotations

import bisect
import json
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple, overload

from ..errors import SourceError
from ..model import Interval
from .datafile import DataFile, DataState, open_data
from .recording import SCHEMA, SCHEMA_FAMILY, interval_from_json

MAX_CHECKPOINTS = 128
FIRST_SPACING = 16 << 20  # inflated bytes between checkpoints, doubled when they get too many
_INTERVAL = b'{"t": '  # how the writer starts an interval record (other records are decoded to tell)


class _Checkpoint(NamedTuple):
    passed: int  # intervals before the first line after it
    byte: int  # inflated bytes before it
    state: DataState
    partial: bytes  # the start of a line, read before the boundary


class _Lines:
    """Complete lines of a DataFile, and what kind of record each is."""

    def __init__(self, data: DataFile, index: int = 0, byte: int = 0, partial: bytes = b""):
        self.data = data
        self.index = index  # intervals passed so far
        self.byte = byte  # inflated bytes read so far
        self.partial = partial
        self.ready: deque[bytes] = deque()
        self.cut_record = False  # the file ended inside a line

    def at_boundary(self) -> bool:
        return not self.ready

    def checkpoint(self) -> _Checkpoint:
        assert not self.ready
        return _Checkpoint(self.index, self.byte, self.data.state(), self.partial)

    def next(self) -> bytes | None:
        while not self.ready:
            chunk = self.data.read_chunk()
            if not chunk:
                if self.partial.strip():
                    self.cut_record = True
                self.partial = b""
                return None
            self.byte += len(chunk)
            *complete, self.partial = (self.partial + chunk).split(b"\n")
            self.ready.extend(complete)
        return self.ready.popleft()


def _kind(line: bytes) -> tuple[str, Any]:
    """("interval", None), ("end", N), ("skip", None) or ("damaged", why) for one line."""
    if line.startswith(_INTERVAL):
        # decoded on demand; a cut line ends elsewhere than the record's closing brace
        return ("interval", None) if line.rstrip().endswith(b"}") else ("damaged", "cut short")
    if not line.strip():
        return "skip", None
    try:
        obj = json.loads(line)
    except ValueError as exc:
        return "damaged", type(exc).__name__
    if not isinstance(obj, dict):
        return "damaged", "not an object"
    if "t" in obj:
        return "interval", None
    if "end" in obj:
        return "end", obj["end"]
    return "skip", None  # a header or a record type of a later version


class RecordingReader(Sequence[Interval]):
    """The intervals of a recording, read from the file when indexed. Thread-safe."""

    def __init__(self, path: str):
        self.path = path
        try:
            self._data = open_data(path)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        self._lock = threading.Lock()
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
        self._last: tuple[int, Interval] | None = None

    # ------------------------------------------------------------------ opening
    def _header(self) -> dict[str, Any]:
        self._start = self._data.state()
        line = _Lines(self._data).next()
        if line is None:
            raise SourceError(f"{self.path} is not a kvmtop recording (no complete header line)")
        try:
            obj = json.loads(line)
        except ValueError:
            obj = None
        if not isinstance(obj, dict) or not str(obj.get("schema", "")).startswith(SCHEMA_FAMILY):
            raise SourceError(f"{self.path} is not a kvmtop recording")
        if obj["schema"] != SCHEMA:
            raise SourceError(f"{self.path} is a recording of an unsupported schema {obj['schema']!r} "
                              f"(this kvmtop reads {SCHEMA})")
        return {k: v for k, v in obj.items() if k != "schema"}

    def _index(self) -> tuple[int, str | None]:
        """One pass over the file: (number of intervals, warning); sets the checkpoints."""
        self._data.restore(self._start)
        lines = _Lines(self._data)
        self._checkpoints: list[_Checkpoint] = [lines.checkpoint()]
        spacing = FIRST_SPACING
        ended = None
        damaged = None
        while True:
            if lines.at_boundary() and lines.byte - self._checkpoints[-1].byte >= spacing:
                if len(self._checkpoints) >= MAX_CHECKPOINTS:
                    self._checkpoints = self._checkpoints[::2]
                    spacing *= 2
                self._checkpoints.append(lines.checkpoint())
            line = lines.next()
            if line is None:
                break
            kind, value = _kind(line)
            if kind == "interval":
                lines.index += 1
            elif kind == "end":
                ended = value
            elif kind == "damaged":
                damaged = f"record {lines.index + 1} is damaged ({value})"
                break
        self._starts = [c.passed for c in self._checkpoints]
        count = lines.index
        problem = damaged or self._data.problem
        if lines.cut_record:
            problem = (problem + "; " if problem else "") + "an incomplete record at the end was dropped"
        name = os.path.basename(self.path)
        if problem or ended is None:
            why = problem or "it has no end record (the recorder did not finish)"
            return count, f"recording {name} is truncated: {why}; read {count} complete intervals"
        if ended != count:
            return count, f"recording {name} says {ended} intervals but holds {count}"
        return count, None

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
        if i < 0:
            i += self._length
        if not 0 <= i < self._length:
            raise IndexError(f"interval {i} of {self._length}")
        with self._lock:
            if self._last is not None and self._last[0] == i:
                return self._last[1]
            if self._data.closed:
                raise SourceError(f"recording {os.path.basename(self.path)} is closed")
            line = self._line(i)
            try:
                interval = interval_from_json(json.loads(line))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                raise SourceError(f"recording {os.path.basename(self.path)}: record {i + 1} is damaged "
                                  f"({type(exc).__name__})") from exc
            self._last = (i, interval)
            return interval

    def __iter__(self) -> Iterator[Interval]:
        for i in range(self._length):
            yield self[i]

    def _line(self, i: int) -> bytes:
        """The line of interval ``i``: read on from the cursor, or from the checkpoint before ``i``."""
        cursor = self._cursor
        checkpoint = self._checkpoints[bisect.bisect_right(self._starts, i) - 1]
        if cursor is None or not checkpoint.passed <= cursor.index <= i:
            self._data.restore(checkpoint.state)
            cursor = self._cursor = _Lines(self._data, checkpoint.passed, checkpoint.byte, checkpoint.partial)
        try:
            while True:
                line = cursor.next()
                if line is None:
                    raise SourceError(f"recording {os.path.basename(self.path)} changed while it was replayed")
                if _kind(line)[0] == "interval":
                    cursor.index += 1
                    if cursor.index - 1 == i:
                        return line
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
