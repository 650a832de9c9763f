"""The demo's vectorized arithmetic gives what the straightforward scalar code gives, bit for bit."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from kvmtop import histogram
from kvmtop.sources.demo import PROFILES, _latency, _shape
from kvmtop.sources.demo_draws import NO_LEVEL, STEP, level_of, level_steps, random_doubles


def _scalar_level(x: float) -> float:
    """The demo's level of a rate multiplier, as the scalar code computed it."""
    if x <= 0.01:
        return 0.0
    return round(math.exp(round(math.log(x) / 0.03) * 0.03), 4)


def _scalar_step(x: float) -> int:
    return NO_LEVEL if x <= 0.01 else round(math.log(x) / STEP)


@pytest.mark.parametrize("seed", [0, 1, 12345, 2**40 + 7])
@pytest.mark.parametrize("n", [0, 1, 2, 333])
def test_random_doubles_are_the_calls_of_random(seed, n):
    rng, ref = random.Random(seed), random.Random(seed)
    got = random_doubles(rng, n)
    assert got.dtype == np.float64
    assert got.tolist() == [ref.random() for _ in range(n)]
    assert rng.random() == ref.random()  # the generator moved on by exactly n calls


def _ties() -> list[float]:
    """Multipliers at and around the rounding ties of the steps, and around the 0.01 floor."""
    out = []
    for centre in [math.exp((k + 0.5) * STEP) for k in range(-160, 120)] + [0.01]:
        x = centre
        for _ in range(4):
            x = math.nextafter(x, 0.0)
        for _ in range(9):
            out.append(x)
            x = math.nextafter(x, math.inf)
    return out


def test_level_steps_match_the_scalar_code():
    rng = np.random.default_rng(3)
    xs = np.concatenate([rng.uniform(0.0, 4.0, 20_000), rng.lognormal(0.0, 3.0, 20_000), [0.0, 0.01, 1e-300],
                         _ties()])
    got = level_steps(xs, lambda k: float(xs[k]))
    assert got.tolist() == [_scalar_step(x) for x in xs.tolist()]
    assert [level_of(s) for s in got.tolist()] == [_scalar_level(x) for x in xs.tolist()]


def test_level_steps_near_a_tie_ask_the_exact_value():
    """A multiplier a few ulps off (numpy's sin is not libm's) gets the step of the exact one."""
    exact = np.array(_ties())
    off = np.array([math.nextafter(math.nextafter(x, math.inf), math.inf) for x in exact.tolist()])
    asked: set[int] = set()

    def give(k: int) -> float:
        asked.add(k)
        return float(exact[k])

    got = level_steps(off, give)
    assert got.tolist() == [_scalar_step(x) for x in exact.tolist()]
    assert [_scalar_step(x) for x in off.tolist()] != got.tolist()  # the case matters
    assert len(asked) == len(exact)


def _numpy_latency(median_ns, sigma, n):
    """The demo's latency as first written with numpy (its int64 dot product as an exact sum)."""
    shape = _shape(median_ns, sigma)
    index = np.array([i for i, _ in shape], np.int64)
    p = np.array([q for _, q in shape])
    mid = np.array([histogram.bucket_mid(i) for i, _ in shape], np.int64)
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


def test_latency_matches_the_numpy_version():
    mixes = {(m.median_ns, m.sigma) for p in PROFILES for m in [*p.reasons.values(), *p.hypercalls.values()]}
    mixes |= {(median, sigma) for p in PROFILES for _, median, sigma in p.userspace.values()}
    counts = [1, 2, 3, 7, 10, 55, 99, 100, 110, 990, 1000, 1010, 4560, 99_900, 1_230_000, 10**9]
    for median, sigma in sorted(mixes):
        for n in counts:
            assert _latency(median, sigma, n) == _numpy_latency(median, sigma, n), (median, sigma, n)
