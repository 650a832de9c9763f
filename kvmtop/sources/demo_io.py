"""The demo's PIO/MMIO side: ports and addresses a QEMU guest typically touches, counted
only while a screen asks for them (``want_io``) or always with ``--io``, as the live collector does.

The counts are a pure function of the vCPU thread and the interval number, so the demo,
its screenshots and its tests stay deterministic.
"""

from __future__ import annotations

import math

from ..io_stats import MMIO, PIO, IoAccess, IoSample
from ..model import Interval
from .base import Source

# (space, write, address, accesses per second per vCPU at full load)
DEVICES: tuple[tuple[str, bool, int, float], ...] = (
    (MMIO, True, 0xFEBD1000, 410.0),   # virtio-blk queue notify
    (MMIO, True, 0xFEBC1000, 260.0),   # virtio-net queue notify
    (PIO, True, 0x3F8, 40.0),          # serial console (ttyS0) transmit
    (PIO, False, 0x3FD, 38.0),         # serial line status
    (PIO, True, 0x70, 6.0),            # RTC/CMOS index
    (PIO, False, 0x71, 6.0),           # RTC/CMOS data
    (MMIO, False, 0xFED000F0, 3.0),    # HPET main counter
)


class DemoIoSource:
    """A demo Source with the live collector's I/O side (``want_io``, ``last_io``)."""

    io_supported = True

    def __init__(self, source: Source, io: bool = False) -> None:
        self.source = source
        self.name = source.name
        self.paced = source.paced
        self.io_always = io  # --io: counted whether a screen shows them or not
        self.io_wanted = io
        self.last_io: IoSample | None = None
        self._seq = 0

    def open(self) -> None:
        self.source.open()

    def close(self) -> None:
        self.source.close()

    def reset(self) -> None:
        self.source.reset()

    def want_io(self, on: bool) -> None:
        self.io_wanted = on or self.io_always

    def next_interval(self) -> Interval | None:
        interval = self.source.next_interval()
        self._seq += 1
        if interval is None or not self.io_wanted:
            self.last_io = None
            return interval
        accesses = []
        for pid, ident in interval.vms.items():
            for tid, index in ident.vcpu_index.items():
                load = 0.55 + 0.45 * math.sin(self._seq / 9.0 + tid % 17 + index)
                for k, (space, write, addr, per_s) in enumerate(DEVICES):
                    share = 1.0 / (1 + (tid + k) % 3)  # not every vCPU drives every device alike
                    n = int(per_s * load * share * interval.interval_s)
                    if n:
                        accesses.append(IoAccess(pid, tid, space, write, addr, n))
        self.last_io = IoSample(interval.interval_s, tuple(accesses))
        return interval
