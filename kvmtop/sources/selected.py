"""``-g NAME``: only the guests whose names match, as ``kvm_stat -g`` (any source).

The wrapper narrows each Interval before the snapshot is built, so every figure (the
header's host totals included) is of the selected guests only, as with ``-p``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import overload

import numpy as np

from ..io_stats import IoSample
from ..model import Interval, VmIdentity
from ..selection import NamePattern
from .base import Source


def select_guests(interval: Interval, pattern: NamePattern) -> Interval:
    """The interval with only the VMs (and their threads) whose names match."""
    named = interval.vms
    keep = {pid for pid, ident in named.items() if pattern.matches(ident.name)}
    # a thread of a process with no identity is named "pid N" by the snapshot builder
    data = interval.data
    pids = {t.pid for t in data} if isinstance(data, tuple) else set(np.unique(data.tpid).tolist())
    keep |= {pid for pid in pids - set(named) if pattern.matches(f"pid {pid}")}
    return interval.only(keep)


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
        recorded = self._recorded = getattr(source, "intervals", None)
        if recorded is not None:  # recordings: a replay seeks in these
            self.intervals = Selected(recorded, pattern)
        self.warning = getattr(source, "warning", None)
        self._last_vms: Mapping[int, VmIdentity] = {}  # every VM of the last interval, before narrowing

    def open(self) -> None:
        self.source.open()

    # the source's PIO/MMIO counts, narrowed to the same guests
    def want_io(self, on: bool) -> None:
        want = getattr(self.source, "want_io", None)
        if want is not None:
            want(on)

    @property
    def last_io(self) -> IoSample | None:
        return self._io_of(getattr(self.source, "last_io", None), self._last_vms)

    def io_at(self, index: int) -> IoSample | None:
        """A recording's sample of interval ``index``, narrowed."""
        io_at = getattr(self.source, "io_at", None)
        sample = io_at(index) if io_at is not None else None
        if sample is None or self._recorded is None:
            return None
        return self._io_of(sample, self._recorded[index].vms)

    @property
    def io_supported(self) -> bool:
        return bool(getattr(self.source, "io_supported", False))

    def _io_of(self, sample: IoSample | None, named: Mapping[int, VmIdentity]) -> IoSample | None:
        """``sample`` with only the accesses of matching guests (by the names in ``named``)."""
        if sample is None:
            return None
        keep = {pid for pid, ident in named.items() if self.pattern.matches(ident.name)}
        return sample.narrowed(lambda pid: pid in keep or (pid not in named and self.pattern.matches(f"pid {pid}")))

    def next_interval(self) -> Interval | None:
        interval = self.source.next_interval()
        if interval is None:
            return None
        self._last_vms = interval.vms
        return select_guests(interval, self.pattern)

    def reset(self) -> None:
        self.source.reset()

    def close(self) -> None:
        self.source.close()
