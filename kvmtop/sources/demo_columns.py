"""Column templates for the demo source: each distinct vCPU workload is stored once.

A *block* is the stat rows and request rows of one vCPU at one activity level (the demo
quantizes levels, so a few thousand blocks cover any number of guests); latency histograms
are pooled by their shape. An interval is then a list of block ids, one per vCPU, turned
into StatColumns by one gather per column: no Python object per row, whatever the size.

Everything here is append-only, so the columns of earlier intervals (views of these
arrays) never change; ``Templates.full`` tells the owner when to start a fresh store.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from itertools import accumulate

import numpy as np

from ..columns import KeyTable, StatColumns
from .demo_latency import Latencies

MAX_POOL_ENTRIES = 2_000_000  # bucket entries (9 bytes each) before the owner starts afresh
MAX_BLOCKS = 30_000  # vCPU workloads (about 12 rows each)


class _Grow:
    """An append-only numpy array. Values wait in a list until ``flush()`` (one copy per
    interval rather than one per workload); ``view()`` is a read-only window of what is
    flushed. ``n`` counts both."""

    __slots__ = ("a", "done", "n", "pending")

    def __init__(self, dtype, capacity: int = 1024):
        self.a = np.zeros(capacity, dtype)
        self.done = 0  # values in ``a``
        self.n = 0
        self.pending: list[int] = []

    def extend(self, values: Sequence[int]) -> int:
        """Append ``values``; returns the index of the first."""
        start = self.n
        self.pending.extend(values)
        self.n += len(values)
        return start

    def append(self, value: int) -> int:
        self.pending.append(value)
        self.n += 1
        return self.n - 1

    def flush(self) -> None:
        if not self.pending:
            return
        start, end = self.done, self.n
        if end > len(self.a):
            grown = np.zeros(max(end, len(self.a) * 3 // 2), self.a.dtype)
            grown[:start] = self.a[:start]
            self.a = grown  # views handed out keep the old buffer
        self.a[start:end] = self.pending
        self.done = end
        self.pending = []

    def view(self) -> np.ndarray:
        v = self.a[: self.done]
        v.flags.writeable = False
        return v


MERGE_CODES = 256  # new blocks' codes kept in a dict before they join the sorted array


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
        self._lat: dict[Hashable, int] = {}  # a latency's key -> its pool histogram
        # per block: its first row, its rows, its first request row, its request rows
        self._start, self._len, self._qstart, self._qlen = (_Grow(np.int64) for _ in range(4))
        self._grows = (self._kid, self._count, self._hist1, self._qbit, self._qcount, self._hoff, self._bidx,
                       self._bcnt, *self._lstats, self._start, self._len, self._qstart, self._qlen)
        # the blocks by their owner's code: sorted arrays, and a dict of the latest ones
        self._codes, self._ids = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self._new: dict[int, int] = {}

    @property
    def full(self) -> bool:
        return self._bidx.n > MAX_POOL_ENTRIES or self._start.n > MAX_BLOCKS

    def add_latencies(self, keys: Sequence[Hashable], make: Callable[[Sequence], Latencies]) -> None:
        """Pool the latencies of ``keys`` not pooled yet, made by ``make(missing keys)``, in key order."""
        lat = self._lat
        missing = [k for k in dict.fromkeys(keys) if k not in lat]
        if not missing:
            return
        made = make(missing)
        h = self._hoff.n - 1
        self._hoff.extend(list(accumulate(made.nbuckets, initial=self._bidx.n))[1:])
        self._bidx.extend(made.bidx)
        self._bcnt.extend(made.bcnt)
        for column, values in zip(self._lstats, (made.n, made.total, made.lo, made.hi)):
            column.extend(values)
        for k, key in enumerate(missing, h):
            lat[key] = k

    def block(self, code: int, rows: Sequence[tuple[tuple[int, int, int], int, Hashable | None]],
              requests: Sequence[tuple[int, int]]) -> int:
        """Store one vCPU's rows ((cat, isa, code), count, pooled latency's key or None) and request
        bits under ``code``."""
        lat = self._lat
        self._start.append(self._kid.extend([self.kid[key] for key, _, _ in rows]))
        self._count.extend([count for _, count, _ in rows])
        self._hist1.extend([lat[k] + 1 if k is not None else 0 for _, _, k in rows])
        self._len.append(len(rows))
        self._qstart.append(self._qbit.extend([b for b, _ in requests]))
        self._qcount.extend([n for _, n in requests])
        self._qlen.append(len(requests))
        self._new[code] = block = self._start.n - 1
        return block

    def find(self, codes: np.ndarray) -> np.ndarray:
        """The block of each code (int64), -1 for a code no block was stored under."""
        if len(self._new) >= MERGE_CODES:
            new = np.fromiter(self._new, np.int64, len(self._new))
            order = np.argsort(new)
            at = np.searchsorted(self._codes, new[order])
            self._codes = np.insert(self._codes, at, new[order])
            self._ids = np.insert(self._ids, at, np.fromiter(self._new.values(), np.int64, len(new))[order])
            self._new = {}
        if len(self._codes):
            at = np.minimum(np.searchsorted(self._codes, codes), len(self._codes) - 1)
            found = np.where(self._codes[at] == codes, self._ids[at], -1)
        else:
            found = np.full(len(codes), -1, np.int64)
        if self._new:
            missing = np.flatnonzero(found < 0)
            if len(missing):
                get = self._new.get
                found[missing] = [get(c, -1) for c in codes[missing].tolist()]
        return found

    def columns(self, blocks: np.ndarray, tpid: np.ndarray, ttid: np.ndarray, tvcpu: np.ndarray) -> StatColumns:
        """The interval whose thread i runs block ``blocks[i]``."""
        for grow in self._grows:
            grow.flush()
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
