"""A Feed that advances only when told: tests, screenshots and benchmarks drive it by hand."""

from __future__ import annotations

import threading

from .feed import Feed
from .model import Snapshot
from .sources.base import Source
from .sources.demo import DemoSource
from .sources.demo_io import DemoIoSource


class SteppedFeed(Feed):
    """A Feed over a paced source that advances only when told.

    The first ``next_snapshot`` returns at once, after ``warmup`` intervals of history;
    later calls block until ``step()`` (one more interval each), ``reset()`` or ``stop()``.
    """

    def __init__(self, source: Source, warmup: int = 60, interval_s: float = 1.0, history_len: int = 120):
        super().__init__(source, interval_s=interval_s, history_len=history_len)
        self._pending = max(1, warmup)
        self._cv = threading.Condition()

    def step(self, n: int = 1) -> None:
        with self._cv:
            self._pending += n
            self._cv.notify_all()

    def reset(self) -> None:
        super().reset()
        self.step(1)

    def stop(self) -> None:
        super().stop()
        with self._cv:
            self._cv.notify_all()

    def next_snapshot(self) -> Snapshot | None:
        with self._cv:
            while not self.stopped and self._pending <= 0:
                self._cv.wait()
            if self.stopped:
                return None
            n, self._pending = self._pending, 0
        self._apply_reset()
        snap = None
        for _ in range(n):
            interval = self._pull()
            if interval is None:
                break
            snap = self.builder.build(interval)
        return snap


def demo_feed(seed: int = 0, vms: int = 6, warmup: int = 60, **kwargs) -> SteppedFeed:
    """A SteppedFeed over a DemoSource (and its I/O side): one snapshot with ``warmup``
    intervals of history."""
    return SteppedFeed(DemoIoSource(DemoSource(seed=seed, vms=vms, **kwargs)), warmup=warmup)
