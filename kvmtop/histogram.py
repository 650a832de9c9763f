"""The log-linear latency bucket scheme, shared with the BPF C (one definition).

Values are nanoseconds. Values below 2**SUB_BITS get one exact bucket each; above,
every power of two [2**e, 2**(e+1)) is split into 2**SUB_BITS equal sub-buckets, so a
bucket is at most 1/8 (12.5%) as wide as its lower bound, and a percentile reported as
the bucket's midpoint is within 6.25% of the true value. Values of 2**MAX_EXP ns
(about 17 s) and above land in the last bucket.

    index(v) = v                                          if v < 8
             = (e - SUB_BITS + 1) * 8 + (v >> (e - 3)) - 8  with e = floor(log2 v)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

SUB_BITS = 3
SUB = 1 << SUB_BITS
MAX_EXP = 34
NBUCKETS = (MAX_EXP - SUB_BITS + 1) * SUB  # 256: an index fits in a u8

#: The relative error bound of a reported percentile (half a bucket's width).
RELATIVE_ERROR = 1 / (2 * SUB)


def bucket_index(value: int) -> int:
    """Bucket index of a value in ns (negative values count as 0)."""
    if value < SUB:
        return max(0, value)
    e = value.bit_length() - 1
    if e >= MAX_EXP:
        return NBUCKETS - 1
    return (e - SUB_BITS + 1) * SUB + (value >> (e - SUB_BITS)) - SUB


def bucket_bounds(index: int) -> tuple[int, int]:
    """The [lower, upper) bounds in ns of a bucket."""
    if not 0 <= index < NBUCKETS:
        raise ValueError(f"bucket index {index} out of range 0..{NBUCKETS - 1}")
    if index < SUB:
        return index, index + 1
    e = index // SUB + SUB_BITS - 1
    sub = index % SUB
    shift = e - SUB_BITS
    return (SUB + sub) << shift, (SUB + sub + 1) << shift


def bucket_mid(index: int) -> int:
    lo, hi = bucket_bounds(index)
    return (lo + hi - 1) // 2 if hi - lo > 1 else lo


def percentile(buckets: Mapping[int, int] | Iterable[tuple[int, int]], q: float,
               lo: int | None = None, hi: int | None = None) -> int:
    """The q-quantile (0 < q <= 1) of a sparse histogram {index: count}, in ns.

    Reports the midpoint of the bucket that holds the rank ceil(q * total), clamped to
    the exact [lo, hi] (min and max) when they are known. Returns 0 for an empty histogram.
    """
    items = sorted(buckets.items() if isinstance(buckets, Mapping) else buckets)
    total = sum(c for _, c in items)
    if total <= 0:
        return 0
    rank = max(1, -(-int(q * total * 1_000_000) // 1_000_000))  # ceil without float drift
    seen = 0
    value = bucket_mid(items[-1][0])
    for index, count in items:
        seen += count
        if seen >= rank:
            value = bucket_mid(index)
            break
    if lo is not None:
        value = max(value, lo)
    if hi is not None:
        value = min(value, hi)
    return value


def merge(*histograms: Mapping[int, int]) -> dict[int, int]:
    """Sum sparse histograms."""
    out: dict[int, int] = {}
    for h in histograms:
        for index, count in h.items():
            out[index] = out.get(index, 0) + count
    return out


def c_defines() -> list[str]:
    """cflags that hand this scheme to the BPF C."""
    return [f"-DHIST_SUB_BITS={SUB_BITS}", f"-DHIST_MAX_EXP={MAX_EXP}", f"-DHIST_NBUCKETS={NBUCKETS}"]
