"""Column templates for the demo source: each distinct vCPU workload is stored once.

A *block* is the stat rows and request rows of one vCPU at one activity level (the demo
quantizes levels, so a few thousand blocks cover any number of guests); latency histograms
are pooled by their shape. An interval is then a list of block ids, one per vCPU, turned
into StatColumns by one gather per column: no Python object per row, whatever the size.

Everything here is append-only, so the columns of earlier intervals (views of these
arrays) never change; ``Templates.full`` tells the owner when to start a fresh store.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..columns import KeyTable, StatColumns

MAX_POOL_ENTRIES = 2_000_000  # bucket entries (9 bytes each) before the owner starts afresh
MAX_BLOCKS = 30_000  # vCPU workloads (about 12 rows each)


class _Grow:
    """An append-only numpy array; ``view()`` is a read-only window of what is there now."""

    __slots__ = ("a", "n")

    def __init__(self, dtype, capacity: int = 1024):
        self.a = np.zeros(capacity, dtype)
        self.n = 0

    def _room(self, end: int) -> None:
        if end > len(self.a):
            grown = np.zeros(max(end, len(self.a) * 3 // 2), self.a.dtype)
            grown[: self.n] = self.a[: self.n]
            self.a = grown  # views handed out keep the old buffer

    def extend(self, values: Sequence[int]) -> int:
        """Append ``values``; returns the index of the first."""
        start, end = self.n, self.n + len(values)
        self._room(end)
        self.a[start:end] = values
        self.n = end
        return start

    def append(self, value: int) -> int:
        start = self.n
        self._room(start + 1)
        self.a[start] = value
        self.n = start + 1
        return start

    def view(self) -> np.ndarray:
        v = self.a[: self.n]
        v.flags.writeable = False
        return v


LatencyTuple = tuple[int, int, int, int, tuple[tuple[int, int], ...]]  # count, sum, min, max, buckets


class Templates:
    def __init__(self, keys: Sequence[tuple[int, int, int]]):
        uniq = sorted(set(keys))
        self.keys = KeyTable(np.array([k[0] for k in uniq], np.uint8), np.array([k[1] for k in uniq], np.uint8),
                             np.array([k[2] for k in uniq], np.uint64))
        self.kid = {k: i for i, k in enumerate(uniq)}
        # a row: its key, its count and its latency (a pool histogram + 1: 0 for none)
        self._kid, self._count, self._hist1 = _Grow(np.int32), _Grow(np.uint32), _Grow(np.int32)
        self._qbit = _Grow(np.uint64)
        self._qcount = _Grow(np.uint64)
        self._hoff = _Grow(np.int64)
        self._hoff.append(0)
        self._bidx = _Grow(np.uint8, 65536)
        self._bcnt = _Grow(np.uint64, 65536)
        # per pool histogram + 1: its latency's count, sum, min and max (slot 0: zeros, rows without durations)
        self._lstats = tuple(_Grow(np.uint64) for _ in range(4))
        for column in self._lstats:
            column.append(0)
        self._lat: dict[object, tuple[int, int, int, int, int]] = {}  # key -> (hist, count, sum, min, max)
        # per block: its first row, its rows, its first request row, its request rows
        self._start, self._len, self._qstart, self._qlen = (_Grow(np.int64) for _ in range(4))

    @property
    def full(self) -> bool:
        return self._bidx.n > MAX_POOL_ENTRIES or self._start.n > MAX_BLOCKS

    def latency(self, key: object, make: Callable[[], LatencyTuple]) -> tuple[int, int, int, int, int]:
        """(pool histogram, count, sum, min, max) of a latency, made by ``make`` the first time."""
        got = self._lat.get(key)
        if got is None:
            count, total, lo, hi, buckets = make()
            self._bidx.extend([i for i, _ in buckets])
            self._bcnt.extend([c for _, c in buckets])
            h = self._hoff.append(self._bidx.n) - 1
            for column, value in zip(self._lstats, (count, total, lo, hi)):
                column.append(value)
            got = self._lat[key] = (h, count, total, lo, hi)
        return got

    def block(self, rows: Sequence[tuple[tuple[int, int, int], int, tuple[int, int, int, int, int] | None]],
              requests: Sequence[tuple[int, int]]) -> int:
        """Store one vCPU's rows ((cat, isa, code), count, latency or None) and request bits."""
        self._start.append(self._kid.extend([self.kid[key] for key, _, _ in rows]))
        self._count.extend([count for _, count, _ in rows])
        self._hist1.extend([lat[0] + 1 if lat is not None else 0 for _, _, lat in rows])
        self._len.append(len(rows))
        self._qstart.append(self._qbit.extend([b for b, _ in requests]))
        self._qcount.extend([n for _, n in requests])
        self._qlen.append(len(requests))
        return self._start.n - 1

    def columns(self, blocks: np.ndarray, tpid: np.ndarray, ttid: np.ndarray, tvcpu: np.ndarray) -> StatColumns:
        """The interval whose thread i runs block ``blocks[i]``."""
        rows, thread = _gather(self._start.a[blocks], self._len.a[blocks])
        qrows, qthread = _gather(self._qstart.a[blocks], self._qlen.a[blocks])
        hist1 = self._hist1.a[rows]
        lcount, lsum, lmin, lmax = (column.a[hist1] for column in self._lstats)
        return StatColumns(tpid=tpid, ttid=ttid, tvcpu=tvcpu, thread=thread, kid=self._kid.a[rows],
                           keys=self.keys, count=self._count.a[rows], lcount=lcount, lsum=lsum, lmin=lmin,
                           lmax=lmax, hist=np.subtract(hist1, 1, dtype=np.int64), hoff=self._hoff.view(),
                           bidx=self._bidx.view(), bcnt=self._bcnt.view(), qthread=qthread,
                           qbit=self._qbit.a[qrows], qcount=self._qcount.a[qrows])


def _gather(start: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the ranges start[i]:start[i]+length[i], one after the other, and each one's i."""
    total = int(length.sum())
    if not total:
        return np.zeros(0, np.int64), np.zeros(0, np.int32)
    ends = np.cumsum(length)
    idx = np.arange(total) + np.repeat(start - (ends - length), length)
    return idx, np.repeat(np.arange(len(start), dtype=np.int32), length)
