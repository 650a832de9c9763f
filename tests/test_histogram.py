"""The bucket scheme and percentiles against exact values within the stated error."""

import random

import pytest

from kvmtop import histogram as h
from kvmtop.model import Latency


def test_every_value_lands_in_a_bucket_that_contains_it():
    values = list(range(0, 20_000)) + [10**k + d for k in range(5, 11) for d in (-1, 0, 1)]
    prev = -1
    for v in sorted(values):
        i = h.bucket_index(v)
        lo, hi = h.bucket_bounds(i)
        assert lo <= v < hi, (v, i, lo, hi)
        assert i >= prev
        prev = i


def test_buckets_are_at_most_one_eighth_of_their_lower_bound_wide():
    for i in range(h.SUB, h.NBUCKETS):
        lo, hi = h.bucket_bounds(i)
        assert (hi - lo) / lo <= 1 / 8


def test_range_covers_100ns_to_10s_with_exact_small_values():
    assert h.bucket_index(100) != h.bucket_index(113)  # 100 ns is resolved, not lumped
    assert h.bucket_index(10 * 10**9) < h.NBUCKETS - 1  # 10 s is below the overflow bucket
    assert h.bucket_bounds(h.bucket_index(5)) == (5, 6)
    assert h.bucket_index(2**40) == h.NBUCKETS - 1
    assert h.bucket_index(-3) == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_percentiles_within_relative_error_of_exact(seed):
    rnd = random.Random(seed)
    values = sorted(int(rnd.lognormvariate(9, 2)) + 1 for _ in range(5000))
    lat = Latency.from_values(values)
    for q in (0.5, 0.9, 0.99, 0.999):
        exact = values[max(0, -(-int(q * len(values) * 1_000_000) // 1_000_000) - 1)]
        got = lat.percentile(q)
        assert abs(got - exact) <= exact * h.RELATIVE_ERROR + 1, (q, got, exact)


def test_exact_count_min_max_sum_and_clamping():
    lat = Latency.from_values([961, 961, 961, 7])
    assert (lat.count, lat.sum, lat.min, lat.max) == (4, 2890, 7, 961)
    assert h.bucket_mid(h.bucket_index(961)) > 961
    assert lat.p999 == 961  # the midpoint of 961's bucket [960, 1024) is clamped to the exact max
    assert Latency().p99 == 0


def test_merge_is_the_same_as_one_histogram_of_all_values():
    a, b = [5, 50, 500, 5000], [7, 70, 700_000]
    merged = Latency.merge([Latency.from_values(a), Latency.from_values(b)])
    whole = Latency.from_values(a + b)
    assert merged == whole


def test_packed_buckets_round_trip_and_lazy_merge_matches():
    import numpy as np

    a = Latency.from_values([120, 130, 5_000, 9_000_000])
    idx = np.array([i for i, _ in a.buckets], np.uint8).tobytes()
    cnt = np.array([c for _, c in a.buckets], np.uint64).tobytes()
    packed = Latency.from_packed(a.count, a.sum, a.min, a.max, idx, cnt)
    assert packed == a and packed.p99 == a.p99
    merged = Latency.merge([a, packed])
    assert merged.count == 8 and merged.buckets == tuple((i, 2 * c) for i, c in a.buckets)
