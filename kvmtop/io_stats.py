"""PIO ports and MMIO addresses the guests touched: the guest screen's I/O panel.

The live collector counts them in the kernel (``io`` map, one count per access and
direction, as ``perf kvm stat --event=ioport|mmio``) only while a screen shows them or
with ``--io``; each interval it hands over an ``IoSample`` of what the map held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

PIO, MMIO = "PIO", "MMIO"


@dataclass(frozen=True)
class IoAccess:
    """Accesses of one vCPU thread to one port or address, in one direction, in one interval."""

    pid: int
    tid: int
    space: str  # PIO or MMIO
    write: bool
    addr: int  # the port, or the guest-physical address
    count: int


@dataclass(frozen=True)
class IoStat:
    """One line of the panel: a port or address and direction, summed over the threads shown."""

    space: str
    write: bool
    addr: int
    count: int
    per_s: float

    @property
    def direction(self) -> str:
        return "write" if self.write else "read"

    @property
    def address(self) -> str:
        return f"{self.addr:#06x}" if self.space == PIO else f"{self.addr:#x}"


@dataclass(frozen=True)
class IoSample:
    """Every access the collector counted in one interval (empty: none, but counting)."""

    interval_s: float
    accesses: tuple[IoAccess, ...] = ()
    drops: int = 0  # accesses the map had no room for in this interval

    def stats(self, pid: int, tid: int | None = None) -> list[IoStat]:
        """The VM's (or one of its threads') accesses by port/address and direction, most first."""
        return summed((a for a in self.accesses if a.pid == pid and (tid is None or a.tid == tid)),
                      self.interval_s)

    def by_vm(self) -> dict[int, list[IoStat]]:
        """Every VM's ``stats`` at once (one pass over the accesses), by pid."""
        grouped: dict[int, list[IoAccess]] = {}
        for a in self.accesses:
            grouped.setdefault(a.pid, []).append(a)
        return {pid: summed(accesses, self.interval_s) for pid, accesses in grouped.items()}

    def narrowed(self, keep: Callable[[int], bool]) -> IoSample:
        """Only the accesses of the VMs (pids) ``keep`` accepts (``-g``); drops stay host-wide."""
        return replace(self, accesses=tuple(a for a in self.accesses if keep(a.pid)))


def summed(accesses: Iterable[IoAccess], interval_s: float) -> list[IoStat]:
    totals: dict[tuple[str, bool, int], int] = {}
    for a in accesses:
        key = (a.space, a.write, a.addr)
        totals[key] = totals.get(key, 0) + a.count
    rate = 1.0 / interval_s if interval_s > 0 else 0.0
    out = [IoStat(space, write, addr, n, n * rate) for (space, write, addr), n in totals.items()]
    out.sort(key=lambda s: (-s.count, s.space, s.addr, s.write))
    return out
