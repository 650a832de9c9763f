"""The feed: pulls Intervals from a Source on a worker thread and yields Snapshots.

Front ends (the dashboard, ``--once``/``--batch``, ``record``) drive a Feed; it owns the
pacing and the replay controls (pause, step, seek, speed), so every front end treats live,
demo, recorded and imported data the same way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from .aggregate import SnapshotBuilder
from .io_stats import IoSample
from .model import Interval, Snapshot
from .pacing import clamp_interval
from .sources.base import Source


class Feed:
    def __init__(self, source: Source, interval_s: float = 1.0, history_len: int = 120, speed: float = 1.0,
                 tap: Callable[[Interval], None] | None = None):
        self.source = source
        self.tap = tap  # sees every interval before it is built (``record`` writes them)
        self.last_io: IoSample | None = None  # the PIO/MMIO sample beside the last interval
        self.builder = SnapshotBuilder(history_len)
        self._interval_s = clamp_interval(interval_s)
        self.speed = speed
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._reset = False
        self._last = time.monotonic()
        # Replay state (recorded sources only): their intervals, read in place (a recording
        # reads them from its file on demand).
        self.intervals: Sequence[Interval] | None = getattr(source, "intervals", None) or None
        self.position = 0  # index of the next recorded interval
        self.paused = False
        self.hold_at_end = False  # a dashboard keeps a finished replay open (to seek back)
        self._steps = 0
        self._seek_to: int | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def seekable(self) -> bool:
        return self.intervals is not None

    @property
    def length(self) -> int:
        return len(self.intervals) if self.intervals is not None else 0

    def open(self) -> None:
        self.source.open()
        self._last = time.monotonic()

    def close(self) -> None:
        self.stop()
        self.source.close()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    # ------------------------------------------------------------------ controls (any thread)
    @property
    def interval_s(self) -> float:
        return self._interval_s

    @interval_s.setter
    def interval_s(self, value: float) -> None:
        self._interval_s = clamp_interval(value)
        self._wake.set()

    # ------------------------------------------------------------------ I/O (PIO/MMIO accesses)
    def want_io(self, on: bool) -> None:
        """Ask the source to count PIO/MMIO accesses (a screen shows them), or to stop."""
        want = getattr(self.source, "want_io", None)
        if want is not None:
            want(on)

    def io_sample(self) -> IoSample | None:
        """The PIO/MMIO accesses of the interval of the last snapshot (None: not counted)."""
        return self.last_io

    def _pull(self) -> Interval | None:
        """The source's next interval; its PIO/MMIO sample goes to ``last_io``, beside it."""
        interval = self.source.next_interval()
        self.last_io = getattr(self.source, "last_io", None) if interval is not None else None
        return interval

    def _recorded_io(self, index: int) -> IoSample | None:
        """A recording's PIO/MMIO sample of interval ``index``, where it holds one."""
        io_at = getattr(self.source, "io_at", None)
        return io_at(index) if io_at is not None else None

    @property
    def io_supported(self) -> bool:
        return bool(getattr(self.source, "io_supported", False))

    def reset(self) -> None:
        with self._lock:
            self._reset = True
        self._wake.set()

    def set_paused(self, paused: bool) -> None:
        """Replay only: stop advancing (a live source keeps collecting regardless)."""
        self.paused = paused
        self._wake.set()

    def step(self, n: int = 1) -> None:
        with self._lock:
            self._steps += n
        self._wake.set()

    def seek(self, position: int) -> None:
        with self._lock:
            self._seek_to = max(0, min(position, self.length))
        self._wake.set()

    # ------------------------------------------------------------------ the worker side
    def next_snapshot(self) -> Snapshot | None:
        """Block until the next snapshot is due and return it; None when stopped or ended."""
        if self.seekable:
            return self._next_recorded()
        while not self.stopped:
            self._apply_reset()
            due = self._last + self._interval_s
            wait = due - time.monotonic()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            self._last = time.monotonic()
            interval = self._pull()
            if interval is None:
                return None
            if self.tap is not None:
                self.tap(interval)
            return self.builder.build(interval)
        return None

    def _apply_reset(self) -> None:
        with self._lock:
            reset, self._reset = self._reset, False
        if reset:
            self.source.reset()
            self.builder.reset()

    def _next_recorded(self) -> Snapshot | None:
        assert self.intervals is not None
        while not self.stopped:
            with self._lock:
                seek, self._seek_to = self._seek_to, None
                reset, self._reset = self._reset, False
            if reset:
                seek = self.position
            if seek is not None:
                return self._rebuild_at(seek)
            if self.position >= len(self.intervals):
                if not self.hold_at_end:
                    return None
                self._steps = 0
                self._wake.wait()
                self._wake.clear()
                continue
            paused = self.paused
            if paused:
                with self._lock:
                    stepping = self._steps > 0
                    if stepping:
                        self._steps -= 1
                if not stepping:
                    self._wake.wait()
                    self._wake.clear()
                    continue
            interval = self.intervals[self.position]  # read once, however long the wait
            if not paused:
                wait = interval.interval_s / max(self.speed, 1e-6)
                if self._last + wait > time.monotonic():
                    self._wake.wait(self._last + wait - time.monotonic())
                    self._wake.clear()
                    continue
            self._last = time.monotonic()
            self.last_io = self._recorded_io(self.position)
            self.position += 1
            return self.builder.build(interval)
        return None

    def _rebuild_at(self, position: int) -> Snapshot | None:
        """Seek: rebuild the history window that ends at ``position``."""
        assert self.intervals is not None
        position = max(1, min(position, len(self.intervals)))
        start = max(0, position - self.builder.store.length)
        self.builder.reset()
        self.builder.seq = start
        snap = None
        for interval in self.intervals[start:position]:
            snap = self.builder.build(interval)
        self.position = position
        self.last_io = self._recorded_io(position - 1)
        self._last = time.monotonic()
        return snap

    def snapshots(self, count: int | None = None):
        """Iterate snapshots (``--batch -n N``); stops at the end of a recorded stream."""
        n = 0
        while count is None or n < count:
            snap = self.next_snapshot()
            if snap is None:
                return
            n += 1
            yield snap

