"""The demo's latency histograms: ``n`` events spread like a log-normal, straight from bucket
probabilities (no sampling), with a deterministic rounding.

New workloads bring dozens of new (shape, count) latencies an interval in the demo's first
minutes, so they are made all at once, on a matrix of the shapes' probabilities per bucket.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from functools import cache
from typing import NamedTuple

import numpy as np

from .. import histogram

LatencyKey = tuple[float, float, int]  # median ns, sigma, count


class Latencies(NamedTuple):
    """Latencies made at once: per latency its count (n), sum, min, max and number of buckets;
    their (bucket, count) pairs one latency after the other, buckets ascending."""

    n: list[int]
    total: list[int]
    lo: list[int]
    hi: list[int]
    nbuckets: list[int]
    bidx: list[int]
    bcnt: list[int]


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@cache
def shape(median_ns: float, sigma: float) -> tuple[tuple[int, float], ...]:
    """(bucket, probability) of a log-normal over the histogram's buckets."""
    mu = math.log(median_ns)
    out = []
    for i in range(histogram.NBUCKETS):
        lo, hi = histogram.bucket_bounds(i)
        if lo == 0:
            continue
        p = _phi((math.log(hi) - mu) / sigma) - _phi((math.log(lo) - mu) / sigma)
        if p > 2e-6:
            out.append((i, p))
    total = sum(p for _, p in out)
    return tuple((i, p / total) for i, p in out)


def quantize(n: int) -> int:
    """Round to 2 significant digits (3 above 1,000), so latency shapes are shared."""
    if n < 100:
        return n
    step = 10 ** (int(math.log10(n)) - (2 if n >= 1000 else 1))
    return int(round(n / step) * step)


_BOUNDS = [histogram.bucket_bounds(i) for i in range(histogram.NBUCKETS)]
_LO = np.array([lo for lo, _ in _BOUNDS], np.int64)
_HI = np.array([hi for _, hi in _BOUNDS], np.int64)
_MID = np.array([histogram.bucket_mid(i) for i in range(histogram.NBUCKETS)], np.int64)


class _Shapes:
    """Every shape seen so far as a row of probabilities per bucket (0 outside the shape).

    The tables are replaced, never changed, so that demo sources in several threads
    each read a consistent set.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.tables = self._make({})

    @staticmethod
    def _make(row: dict[tuple[float, float], int]) -> tuple:
        p = np.zeros((len(row), histogram.NBUCKETS))
        for (m, s), r in row.items():
            for i, q in shape(m, s):
                p[r, i] = q
        inside = p > 0
        first = np.argmax(inside, axis=1)  # each shape's first bucket
        end = histogram.NBUCKETS - np.argmax(inside[:, ::-1], axis=1)  # one past its last
        return row, p, inside, first, end

    def get(self, keys: Sequence[LatencyKey]) -> tuple[np.ndarray, tuple]:
        """The row of each key's shape, and the tables they index."""
        tables = self.tables
        if not {(m, s) for m, s, _ in keys} <= tables[0].keys():
            with self._lock:
                row = dict(self.tables[0])
                for m, s, _ in keys:
                    row.setdefault((m, s), len(row))
                self.tables = tables = self._make(row)
        row = tables[0]
        return np.array([row[(m, s)] for m, s, _ in keys], np.int64), tables


_SHAPES = _Shapes()


CHUNK = 256  # latencies per matrix (a big host's first interval brings thousands)


def latencies(keys: Sequence[LatencyKey]) -> Latencies:
    """The latency of each (median ns, sigma, n): n events spread like the log-normal, each
    bucket its whole share, the rest one by one to the buckets with the largest fractions
    (the first of equals)."""
    if len(keys) <= CHUNK:
        return _latencies(keys)
    parts = [_latencies(keys[i:i + CHUNK]) for i in range(0, len(keys), CHUNK)]
    return Latencies(*([v for part in parts for v in getattr(part, f)] for f in Latencies._fields))


def _latencies(keys: Sequence[LatencyKey]) -> Latencies:
    rows, (_, p, inside, first, end) = _SHAPES.get(keys)
    n = np.array([k[2] for k in keys], np.int64)
    lo, end = int(first[rows].min()), int(end[rows].max())  # the buckets any of them uses
    p, inside = p[rows, lo:end], inside[rows, lo:end]
    exact = n[:, None] * p
    whole = exact.astype(np.int64)  # int(): the products are positive
    rest = n - whole.sum(axis=1)
    if (rest > 0).any():
        short = np.where(inside, whole - exact, np.inf)  # minus each fraction; buckets outside last
        order = np.argsort(short, axis=1, kind="stable")
        r, j = np.nonzero(np.arange(end - lo) < rest[:, None])  # the first rest[r] of row r's order
        whole[r, order[r, j]] += 1
    nz = whole > 0
    mid = _MID[lo:end]
    if int(n.max()) * int(mid[-1]) < 1 << 62:  # no int64 overflow possible
        total = (whole * mid).sum(axis=1).tolist()
    else:
        total = [sum(int(m) * int(c) for m, c in zip(mid, w)) for w in whole.tolist()]
    first = lo + np.argmax(nz, axis=1)
    last = end - 1 - np.argmax(nz[:, ::-1], axis=1)
    return Latencies(n=n.tolist(), total=total, lo=_LO[first].tolist(), hi=(_HI[last] - 1).tolist(),
                     nbuckets=nz.sum(axis=1).tolist(), bidx=(np.nonzero(nz)[1] + lo).tolist(),
                     bcnt=whole[nz].tolist())
