"""Prometheus histogram buckets that are exact unions of the kernel's log-linear buckets.

The BPF program counts durations (integer ns) in the buckets of kvmtop.histogram. A
Prometheus bucket here ends where a kernel bucket ends, so it is the exact sum of whole
kernel buckets: no interpolation, no re-sampling. Its ``le`` is the last nanosecond of that
kernel bucket (B - 1 ns for a kernel boundary B), so "duration <= le" holds exactly for
every event it counts. The top boundary is the lower bound of the kernel's last bucket,
because that bucket also holds everything above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from prometheus_client.utils import floatToGoString

from .. import histogram

#: The kernel's last bucket starts here (~16.1 s); it also holds every longer duration.
TOP_NS = histogram.bucket_bounds(histogram.NBUCKETS - 1)[0]
FIRST_EXP = 10  # 2**10 ns = 1.024 us


@dataclass(frozen=True)
class BucketLayout:
    """Kernel boundaries (ns) chosen as Prometheus bucket ends, and the kernel-index map."""

    name: str
    boundaries: tuple[int, ...]

    def __post_init__(self) -> None:
        lows = {histogram.bucket_bounds(i)[0] for i in range(1, histogram.NBUCKETS)}
        assert all(b in lows and b <= TOP_NS for b in self.boundaries), "not kernel boundaries"
        assert list(self.boundaries) == sorted(set(self.boundaries))

    @property
    def size(self) -> int:
        """Buckets including +Inf."""
        return len(self.boundaries) + 1

    @cached_property
    def le(self) -> tuple[str, ...]:
        """The ``le`` label of each bucket, +Inf last."""
        return tuple(floatToGoString((b - 1) / 1e9) for b in self.boundaries) + ("+Inf",)

    @cached_property
    def _slot(self) -> np.ndarray:
        """Prometheus bucket of each kernel bucket."""
        return np.searchsorted(np.array(self.boundaries, np.int64),
                               np.array([histogram.bucket_bounds(i)[1] for i in range(histogram.NBUCKETS)]),
                               side="left").astype(np.intp)

    def slot(self, index: int) -> int:
        """The Prometheus bucket (0-based, +Inf last) that holds kernel bucket ``index``."""
        return int(self._slot[index])

    def slots(self, indices: np.ndarray) -> np.ndarray:
        return self._slot[indices]

    def slot_of_ns(self, value_ns: int) -> int:
        return self.slot(histogram.bucket_index(value_ns))


def _powers(step: int) -> tuple[int, ...]:
    return tuple(1 << e for e in range(FIRST_EXP, 34, step))


def _per_octave(n: int) -> tuple[int, ...]:
    """``n`` (a power of two <= 8) boundaries in every power of two from 2**FIRST_EXP on."""
    out = []
    for e in range(FIRST_EXP, 34):
        for k in range(n):
            out.append((1 << e) + k * ((1 << e) // n))
    return tuple(b for b in out if b <= TOP_NS)


#: Every other power of two from 1.02 us to 4.3 s, then ~16.1 s: 13 buckets and +Inf.
DEFAULT = BucketLayout("default", _powers(2) + (TOP_NS,))
#: Four per power of two (each at most 25% wide) from 1.02 us to ~16.1 s: 97 buckets and +Inf.
FINE = BucketLayout("fine", tuple(sorted(set(_per_octave(4)) | {TOP_NS})))

LAYOUTS = {"default": DEFAULT, "fine": FINE}
