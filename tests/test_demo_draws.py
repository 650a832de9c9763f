"""The demo's vectorized arithmetic gives what the straightforward scalar code gives, bit for bit."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

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
