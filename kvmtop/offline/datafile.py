"""Input files, plain or gzip-compressed, read in chunks that end (never raise) where the
compressed data is damaged or cut short.

One reader for every offline format: trace captures (through ``io.TextIOWrapper``) and
recordings (chunks and line splitting, with ``state``/``restore`` to come back to a chunk
boundary when a replay seeks). A file that starts with the gzip magic but does not inflate
is read as it is; gzip members one after another are read as one stream.

Damage costs only what it touches: a gzip member that does not inflate (or fails its CRC)
is skipped and reading resumes at the next member found after it (``skipped`` says where);
recordings write one member per record, so that is one record. With ``hold``, a member's
content is handed out only once its CRC has been checked (up to ``hold`` bytes; a longer
member is handed out as it inflates). One inflate step yields at most ``OUT_MAX`` bytes,
so a small file that inflates to gigabytes never needs more memory than that.
"""

from __future__ import annotations

import io
import zlib
from typing import IO, NamedTuple

GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 16  # bytes of the file read at a time
OUT_MAX = 1 << 20  # inflated bytes handed out (or held) per inflate step
MAX_SKIPS = 100  # damaged places remembered (all are counted)
_PROBE = 256  # bytes fed at a time while deciding whether a file is really gzip
SNIFF_SPAN = 1 << 20  # bytes searched for a sound gzip member when the first one is damaged

DAMAGED = "the compressed data is damaged"
UNREADABLE = "bytes that are not compressed data"
CUT_SHORT = "the compressed data stops early (the file is cut short)"
TRAILING = "data after the end of the compressed stream was ignored"


class DataState(NamedTuple):
    """Where a DataFile stands at a chunk boundary (see ``DataFile.state``)."""

    offset: int
    inflater: zlib._Decompress | None  # a private copy, never fed
    between_members: bool
    tail: bytes = b""  # compressed input read but not inflated yet
    member_start: int = 0


class DataFile(io.RawIOBase):
    """The content of a file (gzip undone when it is gzip), chunk by chunk.

    ``problem`` says why reading stopped before the end of the file (None: it did not) and
    ``stop_byte`` where (the start of the member or data it could not read). ``skipped``
    maps the file offset of each damaged part that was skipped to why (the first
    ``MAX_SKIPS``; ``skip_count`` counts them all).
    ``state()``/``restore()`` record and return to a chunk boundary (between two
    ``read_chunk`` calls; ``readinto`` users must not mix them in).
    """

    def __init__(self, raw: IO[bytes], gz: bool, hold: int = 0):
        super().__init__()
        self._raw = raw
        self.gz = gz
        self.hold = hold
        self._offset = raw.tell()
        self._inflater = zlib.decompressobj(31) if gz else None
        self._between = False  # a gzip member ended; another may follow
        self._member_start = self._offset
        self._tail = b""  # compressed input not inflated yet (OUT_MAX reached)
        self._held: list[bytes] = []
        self._held_size = 0
        self._holding = gz and hold > 0
        self._rest = b""  # inflated but not handed out yet (readinto)
        self._ended = False
        self.problem: str | None = None
        self.stop_byte: int | None = None
        self.skipped: dict[int, str] = {}
        self.skip_count = 0
        self.breaks = 0  # chunks that ended where the data is damaged (their last line is cut)
        self._skip_offsets: set[int] = set()

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
            if self._inflater is None:
                data = self._raw.read(CHUNK)
                self._offset += len(data)
                if not data:
                    self._ended = True
                return data
            if self._between and not self._next_member():
                return b""
            data = self._tail or self._raw.read(CHUNK)
            if not self._tail:
                self._offset += len(data)
            if not data:  # the file ends inside a member: what was held of it is lost
                self._stop(CUT_SHORT, self._member_start if self._holding else self._offset)
                return b""
            before = self._inflater.copy()
            try:
                out = self._inflater.decompress(data, OUT_MAX)
            except zlib.error:
                salvage = b"" if self._holding else _salvage(before, data)
                self._skip(self._member_start, DAMAGED)
                self.breaks += 1
                if not self._resync(self._member_start + 1):
                    self._stop(DAMAGED, self._member_start)
                if salvage:
                    return salvage
                continue
            self._tail = self._inflater.unconsumed_tail
            if self._inflater.eof:
                unused = self._inflater.unused_data
                self._offset -= len(unused)  # the next read starts where this member ended
                self._raw.seek(self._offset)
                self._tail = b""
                self._between = True
                if self._holding:
                    out, self._held, self._held_size = b"".join(self._held) + out, [], 0
            elif self._holding:
                self._held.append(out)
                self._held_size += len(out)
                if self._held_size <= self.hold:
                    continue
                self._holding = False  # too long to hold: handed out as it inflates
                out, self._held, self._held_size = b"".join(self._held), [], 0
            if out:
                return out
        return b""

    def _next_member(self) -> bool:
        """At a member boundary: start the member found here (or after skipping what is not
        one); False at the end."""
        while True:
            head = self._raw.read(3)
            if len(head.strip(b"\0")) == 0:  # the end, or padding after the last member
                pad = self._raw.read(CHUNK)
                if not pad.strip(b"\0"):
                    if not pad:
                        self._ended = True
                        return False
                    self._offset += len(head) + len(pad)
                    continue
            self._raw.seek(self._offset)
            if head == GZIP_MAGIC + b"\x08":
                self._inflater = zlib.decompressobj(31)
                self._between = False
                self._member_start = self._offset
                self._holding = self.hold > 0
                return True
            self._skip(self._offset, UNREADABLE)
            if not self._resync(self._offset + 1):
                self._stop(TRAILING, self._offset)
                return False

    def _resync(self, start: int) -> bool:
        """Move to the next gzip member header at or after ``start``; False when there is none."""
        self._raw.seek(start)
        pos, carry = start, b""
        magic = GZIP_MAGIC + b"\x08"
        while True:
            data = self._raw.read(CHUNK)
            if not data:
                return False
            buf = carry + data
            k = buf.find(magic)
            if k >= 0:
                self._offset = pos - len(carry) + k
                self._raw.seek(self._offset)
                self._between, self._tail = True, b""
                self._held, self._held_size = [], 0
                return True
            carry = buf[-2:]
            pos += len(data)

    def _skip(self, offset: int, why: str) -> None:
        if offset in self._skip_offsets:  # read again after a restore
            return
        self._skip_offsets.add(offset)
        self.skip_count += 1
        if len(self.skipped) < MAX_SKIPS:
            self.skipped[offset] = why

    def summary(self) -> str | None:
        """What went wrong while reading, in one line (None: nothing)."""
        parts = []
        if self.skip_count:
            first = min(self.skipped)
            parts.append(f"{self.skip_count} damaged part{'s' if self.skip_count > 1 else ''} skipped "
                         f"(the first at byte {first})")
        if self.problem:
            parts.append(f"{self.problem}, at byte {self.stop_byte}")
        return "; ".join(parts) or None

    def _stop(self, why: str, offset: int) -> None:
        self.problem, self.stop_byte = why, offset
        self._ended = True
        self._held, self._held_size = [], 0

    def state(self) -> DataState:
        return DataState(self._offset, self._inflater.copy() if self._inflater is not None else None,
                         self._between, self._tail, self._member_start)

    def restore(self, state: DataState) -> None:
        self._raw.seek(state.offset)
        self._offset = state.offset
        self._inflater = state.inflater.copy() if state.inflater is not None else None
        self._between = state.between_members
        self._tail = state.tail
        self._member_start = state.member_start
        self._held, self._held_size = [], 0
        self._holding = False
        self._rest = b""
        self._ended = False
        self.problem = None
        self.stop_byte = None


def _salvage(inflater: zlib._Decompress, data: bytes) -> bytes:
    """What ``data`` inflates to before the point where it is damaged."""
    out, size = [], 0
    for k in range(0, len(data), _PROBE):
        try:
            piece = inflater.decompress(data[k:k + _PROBE], OUT_MAX - size)
        except zlib.error:
            break
        out.append(piece)
        size += len(piece)
        if size >= OUT_MAX:
            break
    return b"".join(out)


def _inflates(raw: IO[bytes]) -> bool:
    """Whether ``raw`` is gzip data: its first member starts to inflate, or (that member
    damaged) a member found in the first ``SNIFF_SPAN`` bytes does. Rewinds."""
    try:
        if _member_starts(raw, 0):
            return True
        raw.seek(0)
        start = raw.read(SNIFF_SPAN)
        magic = GZIP_MAGIC + b"\x08"
        k = start.find(magic, 1)
        while k >= 0:
            if _member_starts(raw, k):
                return True
            k = start.find(magic, k + 1)
        return False
    finally:
        raw.seek(0)


def _member_starts(raw: IO[bytes], offset: int) -> bool:
    """Whether the bytes at ``offset`` begin a gzip member (some output before any error)."""
    raw.seek(offset)
    inflater = zlib.decompressobj(31)
    while True:
        data = raw.read(_PROBE)
        if not data:
            return True  # a valid but cut-short start: gzip, read as far as it goes
        try:
            if inflater.decompress(data) or inflater.eof:
                return True
        except zlib.error:
            return False


def open_data(path: str, hold: int = 0) -> DataFile:
    """Open ``path`` for reading its content (``hold``: see DataFile). Raises OSError."""
    raw = open(path, "rb")  # noqa: SIM115 - owned by the DataFile
    try:
        gz = raw.read(2) == GZIP_MAGIC
        raw.seek(0)
        return DataFile(raw, gz and _inflates(raw), hold)
    except BaseException:
        raw.close()
        raise


def head(path: str, size: int = 4096, hold: int = 0) -> bytes:
    """The first ``size`` bytes of the content of ``path`` (fewer if it is shorter; ``hold``:
    see DataFile). Raises OSError."""
    with open_data(path, hold) as f:
        out = b""
        while len(out) < size:
            chunk = f.read_chunk()
            if not chunk:
                break
            out += chunk
    return out[:size]
