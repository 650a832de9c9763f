"""``-g NAME``: only the guests whose names match, as ``kvm_stat -g`` (any source).

The wrapper narrows each Interval before the snapshot is built, so every figure (the
header's host totals included) is of the selected guests only, as with ``-p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import overload

from ..model import Interval
from ..selection import NamePattern
from .base import Source


def select_guests(interval: Interval, pattern: NamePattern) -> Interval:
    """The interval with only the VMs (and their threads) whose names match."""
    named = interval.vms
    keep = {pid for pid, ident in named.items() if pattern.matches(ident.name)}
    # a thread of a process with no identity is named "pid N" by the snapshot builder
    threads = tuple(t for t in interval.threads
                    if t.pid in keep or (t.pid not in named and pattern.matches(f"pid {t.pid}")))
    return replace(interval, threads=threads, vms={pid: named[pid] for pid in keep})


class Selected(Sequence[Interval]):
    """A recorded source's intervals, narrowed as they are read (a recording is read on
    demand, so nothing is copied ahead)."""

    def __init__(self, intervals: Sequence[Interval], pattern: NamePattern) -> None:
        self.base = intervals
        self.pattern = pattern

    def __len__(self) -> int:
        return len(self.base)

    @overload
    def __getitem__(self, index: int) -> Interval: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Interval]: ...

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [select_guests(i, self.pattern) for i in self.base[index]]
        return select_guests(self.base[index], self.pattern)


class SelectedSource:
    """A Source that passes on only the guests matching ``pattern``."""

    def __init__(self, source: Source, pattern: NamePattern) -> None:
        self.source = source
        self.pattern = pattern
        self.name = source.name
        self.paced = source.paced
        recorded = getattr(source, "intervals", None)
        if recorded is not None:  # recordings: a replay seeks in these
            self.intervals = Selected(recorded, pattern)
        self.warning = getattr(source, "warning", None)

    def open(self) -> None:
        self.source.open()

    # the live source's PIO/MMIO counts (the guest screen shows one guest's: no narrowing needed)
    def want_io(self, on: bool) -> None:
        want = getattr(self.source, "want_io", None)
        if want is not None:
            want(on)

    @property
    def last_io(self):
        return getattr(self.source, "last_io", None)

    @property
    def io_supported(self) -> bool:
        return bool(getattr(self.source, "io_supported", False))

    def next_interval(self) -> Interval | None:
        interval = self.source.next_interval()
        return None if interval is None else select_guests(interval, self.pattern)

    def reset(self) -> None:
        self.source.reset()

    def close(self) -> None:
        self.source.close()
