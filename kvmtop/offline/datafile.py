"""Input files, plain or gzip-compressed, read in chunks that end (never raise) where the
compressed data is damaged or cut short.

One reader for every offline format: trace captures (through ``io.TextIOWrapper``) and
recordings (chunks and line splitting, with ``state``/``restore`` to come back to a chunk
boundary when a replay seeks). A file that starts with the gzip magic but does not inflate
is read as it is; gzip members one after another are read as one stream.
"""

from __future__ import annotations

import io
import zlib
from typing import IO, NamedTuple

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16  # bytes of the file read at a time
_PROBE = 256  # bytes fed at a time while deciding whether a file is really gzip

DAMAGED = "the compressed data is damaged"
CUT_SHORT = "the compressed data stops early (the file is cut short)"
TRAILING = "data after the end of the compressed stream was ignored"


class DataState(NamedTuple):
    """Where a DataFile stands at a chunk boundary (see ``DataFile.state``)."""

    offset: int
    inflater: zlib._Decompress | None  # a private copy, never fed
    between_members: bool


class DataFile(io.RawIOBase):
    """The content of a file (gzip undone when it is gzip), chunk by chunk.

    ``problem`` says why reading stopped before the end of the file (None: it did not).
    ``state()``/``restore()`` record and return to a chunk boundary (between two
    ``read_chunk`` calls; ``readinto`` users must not mix them in).
    """

    def __init__(self, raw: IO[bytes], gz: bool):
        super().__init__()
        self._raw = raw
        self.gz = gz
        self._offset = raw.tell()
        self._inflater = zlib.decompressobj(31) if gz else None
        self._between = False  # a gzip member ended; another may follow
        self._rest = b""  # inflated but not handed out yet (readinto)
        self._ended = False
        self.problem: str | None = None

    # ------------------------------------------------------------------ io.RawIOBase
    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._rest or self.read_chunk()
        n = min(len(b), len(data))
        b[:n] = data[:n]
        self._rest = data[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    # ------------------------------------------------------------------ chunks
    def read_chunk(self) -> bytes:
        """The next piece of content; b"" at the end (or where ``problem`` stopped it)."""
        while not self._ended:
            data = self._raw.read(CHUNK)
            self._offset += len(data)
            if self._inflater is None:
                if not data:
                    self._ended = True
                return data
            if not data:
                if not self._between:
                    self.problem = CUT_SHORT
                self._ended = True
                return b""
            if self._between:
                if not data.strip(b"\0"):  # padding after the last member
                    continue
                if not data.startswith(GZIP_MAGIC):
                    self.problem = TRAILING
                    self._ended = True
                    return b""
                self._inflater = zlib.decompressobj(31)
                self._between = False
            before = self._inflater.copy()
            try:
                out = self._inflater.decompress(data)
            except zlib.error:
                self.problem = DAMAGED
                self._ended = True
                return _salvage(before, data)
            if self._inflater.eof:
                unused = self._inflater.unused_data
                self._offset -= len(unused)  # the next read starts where this member ended
                self._raw.seek(self._offset)
                self._between = True
            if out:
                return out
        return b""

    def state(self) -> DataState:
        return DataState(self._offset, self._inflater.copy() if self._inflater is not None else None,
                         self._between)

    def restore(self, state: DataState) -> None:
        self._raw.seek(state.offset)
        self._offset = state.offset
        self._inflater = state.inflater.copy() if state.inflater is not None else None
        self._between = state.between_members
        self._rest = b""
        self._ended = False
        self.problem = None


def _salvage(inflater: zlib._Decompress, data: bytes) -> bytes:
    """What ``data`` inflates to before the point where it is damaged."""
    out = []
    for k in range(0, len(data), _PROBE):
        try:
            out.append(inflater.decompress(data[k:k + _PROBE]))
        except zlib.error:
            break
    return b"".join(out)


def _inflates(raw: IO[bytes]) -> bool:
    """Whether the start of ``raw`` is gzip data (some output before any error); rewinds."""
    inflater = zlib.decompressobj(31)
    try:
        while True:
            data = raw.read(_PROBE)
            if not data:
                return True  # a valid but cut-short start: gzip, read as far as it goes
            try:
                if inflater.decompress(data) or inflater.eof:
                    return True
            except zlib.error:
                return False
    finally:
        raw.seek(0)


def open_data(path: str) -> DataFile:
    """Open ``path`` for reading its content. Raises OSError."""
    raw = open(path, "rb")  # noqa: SIM115 - owned by the DataFile
    try:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        return DataFile(raw, gz and _inflates(raw))
    except BaseException:
        raw.close()
        raise


def head(path: str, size: int = 4096) -> bytes:
    """The first ``size`` bytes of the content of ``path`` (fewer if it is shorter). Raises OSError."""
    with open_data(path) as f:
        out = b""
        while len(out) < size:
            chunk = f.read_chunk()
            if not chunk:
                break
            out += chunk
    return out[:size]
