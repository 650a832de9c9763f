"""One VM's PIO/MMIO access counters for ``kvmtop export --io``, in a bounded number of series.

A guest can touch many MMIO addresses (a framebuffer, a device's register file), so a VM has
at most ``top`` address series; the other accesses are summed in one ``address="other"``
series per space and direction. A VM's series always sum to exactly its accesses since the
exporter started, and every series is a counter that never goes down:

- candidates: exact counts of at most ``capacity`` addresses since they were first seen; when
  full, the less busy half of those without a series is forgotten (their accesses are already
  in ``other``), so a busy address that shows up late still gets counted;
- an address gets a series while fewer than ``top`` have one, or when its count is more than
  ``SWAP_FACTOR`` times that of the least busy address with one, which gives its series up
  (its count goes to ``other``). The factor keeps two equally busy addresses from taking turns;
- a series counts from the interval its address got it: what the address did before is in
  ``other`` (moving it out would make ``other`` go down).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..io_stats import IoStat

OTHER = "other"
SWAP_FACTOR = 2
MIN_CAPACITY = 64

Key = tuple[str, bool, int]  # (space, write, address)
Group = tuple[str, bool]  # (space, write)


def direction(write: bool) -> str:
    return "write" if write else "read"


class IoCounters:
    """The series of one VM (``ids``: its ``vm`` and ``pid`` labels)."""

    def __init__(self, ids: dict[str, str], top: int, capacity: int | None = None):
        self.ids = ids
        self.top = top
        self.capacity = max(capacity if capacity is not None else 4 * top, MIN_CAPACITY, top)
        self.counts: dict[Key, int] = {}  # candidates: accesses since first seen (or seen again)
        self.series: dict[Key, tuple[dict[str, str], int]] = {}  # key -> (labels, count when it got a series)
        self.totals: dict[Group, int] = {}  # every access, by space and direction
        self.other_labels: dict[Group, dict[str, str]] = {}

    def add(self, stats: Iterable[IoStat]) -> None:
        """One interval's accesses of the VM (summed over its threads)."""
        before: dict[Key, int] = {}
        counts = self.counts
        for st in stats:
            group = (st.space, st.write)
            if group not in self.totals:
                self.totals[group] = 0
                self.other_labels[group] = self._labels(group, OTHER)
            self.totals[group] += st.count
            key = (st.space, st.write, st.addr)
            if key not in counts:
                if len(counts) >= self.capacity:
                    self._forget()
                if len(counts) >= self.capacity:
                    continue  # every candidate has a series: this one is only in ``other``
                counts[key] = 0
            before[key] = counts[key]
            counts[key] += st.count
        self._promote(before)

    def _promote(self, before: dict[Key, int]) -> None:
        """Series for the busiest of the addresses just counted (only they can have moved up)."""
        waiting = sorted((k for k in before if k in self.counts and k not in self.series),
                         key=lambda k: -self.counts[k])  # (a candidate forgotten meanwhile is out)
        for key in waiting:
            if len(self.series) >= self.top:
                if not self.series:
                    return
                low = min(self.series, key=self.counts.__getitem__)
                if self.counts[key] <= SWAP_FACTOR * self.counts[low]:
                    return  # sorted busiest first: no later one passes either
                del self.series[low]  # its accesses so far now show in ``other``
            self.series[key] = (self._labels(key[:2], f"{key[2]:#x}"), before[key])

    def _forget(self) -> None:
        """Drop the less busy half of the candidates that have no series."""
        idle = sorted((k for k in self.counts if k not in self.series), key=self.counts.__getitem__)
        for key in idle[: max(1, len(idle) // 2)]:
            del self.counts[key]

    def _labels(self, group: Group, address: str) -> dict[str, str]:
        space, write = group
        return {**self.ids, "space": space.lower(), "direction": direction(write), "address": address}

    def values(self) -> Iterator[tuple[dict[str, str], int]]:
        """(labels, count) of every series: the addresses with one, then ``other`` per space and direction."""
        shown = dict.fromkeys(self.totals, 0)
        for key, (labels, since) in self.series.items():
            n = self.counts[key] - since
            shown[key[:2]] += n
            yield labels, n
        for group, total in self.totals.items():
            yield self.other_labels[group], total - shown[group]

    @property
    def series_count(self) -> int:
        return len(self.series) + len(self.totals)
