"""The demo's per-vCPU arithmetic on arrays, bit for bit what the scalar loop gave.

Each interval the demo draws one uniform per vCPU from a ``random.Random`` and quantizes
the vCPU's rate multiplier to 3 % log steps. At 1,000 x 8 that loop was most of the demo's
cost: here the doubles come out of the generator's bits in one call, and the steps from
numpy's sin and log, with libm's deciding the rare values next to a rounding tie.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

STEP = 0.03  # a level step: 3 % in log
NO_LEVEL = -(1 << 40)  # the step of a multiplier <= 0.01 (level 0)
_TIE = 1e-6  # |q - round(q)| this close to 0.5: numpy's and libm's results may round apart
_Q_FLOOR = math.log(0.01) / STEP  # q of the 0.01 floor
_TINY = 1e-300  # log's argument for a multiplier of 0


def random_doubles(rng: random.Random, n: int) -> np.ndarray:
    """The next ``n`` values of ``rng.random()`` as one array; ``rng`` moves on as by n calls.

    random() is two 32-bit outputs a, b: (a >> 5) * 2**26 + (b >> 6) over 2**53;
    getrandbits gives the outputs as 32-bit words, the first one lowest (a pair: b << 32 | a).
    """
    pairs = np.frombuffer(rng.getrandbits(64 * n).to_bytes(8 * n, "little"), "<u8")
    return (((pairs & 0xFFFFFFFF) >> 5) * 67108864.0 + (pairs >> 38)) * (1.0 / 9007199254740992.0)


def level_steps(x: np.ndarray, exact: Callable[[int], float]) -> np.ndarray:
    """``round(math.log(x) / STEP)`` of each multiplier, NO_LEVEL at or below 0.01.

    ``x`` may be off by a few ulps (numpy's sin and log are not libm's): where that could
    change a step, ``exact(k)`` gives the multiplier as the scalar code computed it.
    """
    q = np.log(np.maximum(x, _TINY)) / STEP
    steps = np.rint(q)  # half to even, as round()
    near = (np.abs(np.abs(q - steps) - 0.5) < _TIE) | (np.abs(q - _Q_FLOOR) < _TIE)
    out = steps.astype(np.int64)
    out[q < _Q_FLOOR] = NO_LEVEL
    for k in np.flatnonzero(near).tolist():
        xk = exact(k)
        out[k] = NO_LEVEL if xk <= 0.01 else round(math.log(xk) / STEP)
    return out


def level_of(step: int) -> float:
    """The rate multiplier of a step (4 decimals: a vCPU's maps are shared between equal levels)."""
    return 0.0 if step == NO_LEVEL else round(math.exp(step * STEP), 4)
