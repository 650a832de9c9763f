"""The demo's latencies, made many at once, are what the one-at-a-time code made, bit for bit."""

from __future__ import annotations

import random

import numpy as np

from kvmtop import histogram
from kvmtop.sources.demo import PROFILES
from kvmtop.sources.demo_latency import CHUNK, latencies, quantize, shape


def _one(median_ns, sigma, n):
    """One latency as the demo first made it, with numpy (its int64 dot product as an exact sum)."""
    sh = shape(median_ns, sigma)
    index = np.array([i for i, _ in sh], np.int64)
    p = np.array([q for _, q in sh])
    mid = np.array([histogram.bucket_mid(i) for i, _ in sh], np.int64)
    exact = n * p
    whole = exact.astype(np.int64)
    rest = n - int(whole.sum())
    if rest > 0:
        whole[np.argsort(-(exact - whole), kind="stable")[:rest]] += 1
    nz = np.flatnonzero(whole)
    counts = whole[nz].tolist()
    buckets = tuple(zip(index[nz].tolist(), counts))
    total = sum(m * c for m, c in zip(mid[nz].tolist(), counts))
    lo = histogram.bucket_bounds(buckets[0][0])[0]
    hi = histogram.bucket_bounds(buckets[-1][0])[1] - 1
    return n, total, lo, hi, buckets


def _split(made):
    """Latencies as (count, sum, min, max, buckets) tuples."""
    out, at = [], 0
    for n, total, lo, hi, nb in zip(made.n, made.total, made.lo, made.hi, made.nbuckets):
        out.append((n, total, lo, hi, tuple(zip(made.bidx[at:at + nb], made.bcnt[at:at + nb]))))
        at += nb
    assert at == len(made.bidx) == len(made.bcnt)
    return out


MIXES = sorted({(m.median_ns, m.sigma) for p in PROFILES for m in [*p.reasons.values(), *p.hypercalls.values()]}
               | {(median, sigma) for p in PROFILES for _, median, sigma in p.userspace.values()})
COUNTS = [1, 2, 3, 7, 10, 55, 99, 100, 110, 990, 1000, 1010, 4560, 99_900, 1_230_000, 10**9]


def test_each_latency_alone_and_all_at_once():
    keys = [(m, s, n) for m, s in MIXES for n in COUNTS]
    assert len(keys) > 2 * CHUNK  # made a matrix at a time
    expected = [_one(*k) for k in keys]
    assert _split(latencies(keys)) == expected
    for k, e in zip(keys[::7], expected[::7]):
        assert _split(latencies([k])) == [e]


def test_random_batches_of_quantized_counts():
    rng = random.Random(4)
    for _ in range(40):
        keys = [(*rng.choice(MIXES), quantize(rng.randint(1, 300_000))) for _ in range(rng.randint(1, 60))]
        assert _split(latencies(keys)) == [_one(*k) for k in keys]


def test_a_new_shape_joins_the_table():
    keys = [(3_333.0, 0.77, 5_000), (12_345.0, 1.9, 777)]
    assert _split(latencies(keys)) == [_one(*k) for k in keys]


def test_quantize_keeps_two_or_three_digits():
    assert [quantize(n) for n in (7, 99, 100, 104, 105, 999, 1000, 12_345, 987_654)] == \
        [7, 99, 100, 100, 100, 1000, 1000, 12_300, 988_000]
