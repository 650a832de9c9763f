"""The one owner of Python's cyclic garbage collector in kvmtop: pauses, freezes, and the
thread that frees big snapshots.

kvmtop's data are many small acyclic objects (a snapshot of 1,000 VMs x 8 vCPUs is about
a million), freed by reference counting. The cyclic collector only costs time on them:

* ``paused()``: while building them, the collector is off, else it walks the growing
  heap and doubles the time. Any thread may pause: the collector stays off while any
  thread is inside and comes back on when the last one leaves (if it was on before).
* ``GcPolicy`` (the feed thread's pacing for big hosts): CPython counts snapshots as
  long-lived, so a full collection would run about every interval and walk every live
  snapshot, close to a second with the UI stalled. After each big snapshot the heap is
  frozen (``gc.freeze``: the collector stops walking it; reference counting still frees
  it) and every ``every`` snapshots unfrozen for one full collection of any cyclic garbage
  frozen meanwhile. Hosts under ``min_vcpus`` are left to the default collector, but with
  ``settle`` the heap is frozen once after that many snapshots: the dashboard's own
  long-lived objects (modules, widgets, styles, ~80,000) made each full collection walk them
  every few seconds, a quarter of its CPU at 50 VMs; later garbage is collected as usual.
  The dashboard freezes after every snapshot at any size (``min_vcpus=0``): at 50 VMs that
  halves the time its collections take, as they no longer walk the rows and lines each
  second leaves alive; and with ``young`` it collects the young generation every 5,000
  allocations instead of 700 (each second's short-lived objects are freed by reference
  counting before a collection would walk them). Its full collection walks the whole heap
  (~80 ms at 50 VMs) for the little cyclic garbage a second leaves there (~100 objects, Textual
  strips whose divide cache holds them): hosts under ``small_host`` vCPUs do it every
  ``small_every`` snapshots; bigger ones leave more garbage (RSS) and keep ``every``.
  Freeing a snapshot would stall a UI frame, so what the UI lets go of is ``retire``d and
  freed on the feed thread by ``drain``. Right after posting a snapshot the feed thread
  waits (briefly) until the UI has taken it (``handed_over``) and frees the one it
  replaced then: otherwise two snapshots would be held through every interval's wait.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections import deque
from collections.abc import Iterator

_lock = threading.Lock()
_pausers = 0
_was_enabled = False


@contextlib.contextmanager
def paused() -> Iterator[None]:
    global _pausers, _was_enabled
    with _lock:
        if _pausers == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _pausers += 1
    try:
        yield
    finally:
        with _lock:
            _pausers -= 1
            if _pausers == 0 and _was_enabled:
                gc.enable()


class GcPolicy:
    def __init__(self, min_vcpus: int = 512, every: int = 120, settle: int = 0, young: int = 0,
                 small_host: int = 0, small_every: int = 0) -> None:
        self.min_vcpus = min_vcpus
        self.every = every
        # hosts under ``small_host`` vCPUs (while freezing) collect fully every ``small_every`` snapshots
        self.small_host, self.small_every = small_host, small_every
        self.settle = settle  # small hosts: freeze once after this many snapshots (0: never)
        self.young = young  # from the first snapshot on, collect the young generation this seldom (0: as is)
        self._thresholds: tuple[int, int, int] | None = None  # the collector's own, while ``young`` rules
        self._small = 0  # small hosts' snapshots so far, up to ``settle``
        self.frozen = 0  # snapshots since the last full collection, while freezing
        self._retired: deque[object] = deque()
        self._taken = threading.Event()  # the UI has taken the snapshot last posted

    def retire(self, obj: object) -> None:
        """Hand over something the UI no longer shows (any thread); ``drain`` frees it."""
        self._retired.append(obj)

    def drain(self) -> None:
        """Free what was retired (the feed thread, between snapshots)."""
        retired = self._retired
        while retired:
            retired.popleft()

    def posting(self) -> None:
        """The feed thread, just before it posts a snapshot to the UI."""
        self._taken.clear()

    def handed_over(self) -> None:
        """The UI thread, once it has taken a posted snapshot and retired what it replaced."""
        self._taken.set()

    def drain_when_taken(self, timeout: float) -> None:
        """The feed thread, after posting: free what the UI let go of as soon as it has taken
        the new snapshot (waiting at most ``timeout`` seconds for that)."""
        self._taken.wait(timeout)
        self.drain()

    def after_snapshot(self, vcpus: int) -> None:
        """The feed thread, once a snapshot of ``vcpus`` vCPUs is built and prepared."""
        if self.young and self._thresholds is None:
            self._thresholds = gc.get_threshold()
            gc.set_threshold(self.young, *self._thresholds[1:])
        if vcpus < self.min_vcpus and not self.frozen:
            if self._small < self.settle:
                self._small += 1
                if self._small == self.settle:
                    gc.freeze()
            return
        self.frozen += 1
        every = self.small_every if self.small_every and vcpus < self.small_host else self.every
        if self.frozen >= every:
            self.frozen = 0
            gc.unfreeze()
            gc.collect()
        else:
            gc.freeze()

    def close(self) -> None:
        self.drain()
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        if self.frozen or self._small >= self.settle > 0:
            gc.unfreeze()
            self.frozen = 0
