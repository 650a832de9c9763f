"""Cumulative metric state, folded from each interval's Snapshot.

Snapshots carry per-interval counts; Prometheus wants totals since the exporter started.
``MetricState.update`` adds one snapshot under a lock and bumps ``version``; the scrape side
reads a consistent view through ``read``. Series are grouped per VM (its ``vm`` and ``pid``
labels), so a VM that has been gone for ``forget_after`` seconds drops all of its series at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ..decode import isa_name
from ..io_stats import IoSample
from ..model import Latency, Snapshot, VcpuStat
from . import DEFAULT_FORGET_AFTER_S
from .buckets import DEFAULT, BucketLayout
from .io_series import IoCounters

#: Drop kinds of the live collector (its BPF maps); reported as 0 until one happens.
DROP_KINDS = ("stats", "hist", "requests", "pending", "info", "lost")
FEATURES = ("exits", "requests", "hypercalls", "userspace")


class Cell:
    """One counter or gauge series: its labels (built once) and its value."""

    __slots__ = ("labels", "value")

    def __init__(self, labels: dict[str, str]):
        self.labels = labels
        self.value = 0


class Histo:
    """One histogram series: counts per Prometheus bucket (not yet cumulative) and the sum in ns.

    The label dicts of its samples are built once, with the series, not at every scrape.
    """

    __slots__ = ("labels", "bucket_labels", "counts", "sum_ns")

    def __init__(self, labels: dict[str, str], layout: BucketLayout):
        self.labels = labels
        self.bucket_labels = [{**labels, "le": le} for le in layout.le]
        self.counts = [0] * layout.size
        self.sum_ns = 0

    def add_latency(self, lat: Latency, layout: BucketLayout) -> None:
        counts = self.counts
        for index, n in lat.buckets:
            counts[layout.slot(index)] += n
        self.sum_ns += lat.sum

    def add_value(self, value_ns: int, layout: BucketLayout) -> None:
        self.counts[layout.slot_of_ns(value_ns)] += 1
        self.sum_ns += value_ns

    def cumulative(self) -> list[int]:
        out, run = [], 0
        for n in self.counts:
            run += n
            out.append(run)
        return out


class VmSeries:
    """Every series of one VM (labels ``vm`` and ``pid``), keyed by their other label values."""

    def __init__(self, vm: str, pid: str, io_top: int | None = None):
        self.ids = {"vm": vm, "pid": pid}
        self.io = IoCounters(self.ids, io_top) if io_top is not None else None  # --io
        self.vcpus = Cell(self.ids)
        self.exits: dict[tuple[str, str], Cell] = {}  # (isa, reason)
        self.vcpu_exits: dict[tuple[str, str, str], Cell] = {}  # (vcpu, isa, reason)
        self.exit_latency: dict[str, Histo] = {}  # reason
        self.userspace: dict[str, Cell] = {}  # KVM_EXIT_* name
        self.userspace_latency: dict[str, Histo] = {}
        self.hypercalls: dict[tuple[str, str], Cell] = {}  # (nr, name)
        self.requests: dict[tuple[str, str], Cell] = {}  # (bit, name)
        self.gone_since: float | None = None

    def add(self, table: dict, key, names: tuple[str, ...], n: int) -> None:
        cell = table.get(key)
        if cell is None:
            values = key if isinstance(key, tuple) else (key,)
            cell = table[key] = Cell({**self.ids, **dict(zip(names, map(label_text, values)))})
        cell.value += n

    def histo(self, table: dict, reason: str, layout: BucketLayout) -> Histo:
        h = table.get(reason)
        if h is None:
            h = table[reason] = Histo({**self.ids, "reason": label_text(reason)}, layout)
        return h

    @property
    def series(self) -> int:
        return 1 + sum(len(t) for t in (self.exits, self.vcpu_exits, self.userspace, self.hypercalls,
                                        self.requests)) + (self.io.series_count if self.io is not None else 0)


@dataclass
class CollectorSeries:
    """The collector's own health, cumulative."""

    poll: Histo
    drops: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DROP_KINDS, 0))
    unmatched: dict[str, int] = field(default_factory=lambda: {"exits": 0, "entries": 0})
    poll_failures: int = 0
    intervals: int = 0
    features: dict[str, bool] = field(default_factory=dict)
    last_success: float = 0.0  # Unix time of the last good poll


def label_text(text: str) -> str:
    """Any str as a label value: prometheus_client escapes the rest, UTF-8 must encode."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def vcpu_label(v: VcpuStat) -> str:
    return str(v.index) if v.index is not None else f"tid {v.tid}"


class MetricState:
    def __init__(self, layout: BucketLayout = DEFAULT, per_vcpu: bool = False,
                 forget_after_s: float = DEFAULT_FORGET_AFTER_S, kernel: str = "", isa: str = "",
                 clock: Callable[[], float] = time.monotonic, io_top: int | None = None):
        """``io_top`` (``--io``): PIO/MMIO access counters, at most this many address series per VM."""
        self.layout = layout
        self.per_vcpu = per_vcpu
        self.io_top = io_top
        self.forget_after_s = forget_after_s
        self.kernel = kernel
        self.isa = isa
        self.clock = clock
        self.vms: dict[tuple[int, str], VmSeries] = {}
        self.collector = CollectorSeries(poll=Histo({}, layout))
        if io_top is not None:
            self.collector.drops["io"] = 0  # accesses the io map had no room for
        self.version = 0
        self._lock = threading.Lock()

    @contextmanager
    def read(self) -> Iterator[MetricState]:
        """Hold the state still while the scrape side copies it out."""
        with self._lock:
            yield self

    # ------------------------------------------------------------------ the feed side
    def update(self, snap: Snapshot, io: IoSample | None = None) -> None:
        """Add one interval; ``io``: its PIO/MMIO sample (counted only with ``io_top``)."""
        now = self.clock()
        io_by_vm = io.by_vm() if io is not None and self.io_top is not None else {}
        with self._lock:
            seen = set()
            for vm in snap.vms:
                key = (vm.pid, vm.name)
                seen.add(key)
                series = self.vms.get(key)
                if series is None:
                    series = self.vms[key] = VmSeries(label_text(vm.name), str(vm.pid), self.io_top)
                series.gone_since = None
                self._add_vm(series, vm)
                if series.io is not None and vm.pid in io_by_vm:
                    series.io.add(io_by_vm[vm.pid])
            self._forget(seen, now)
            self._add_collector(snap)
            if io is not None and self.io_top is not None:
                self.collector.drops["io"] += io.drops
            self.version += 1

    def poll_failed(self) -> None:
        with self._lock:
            self.collector.poll_failures += 1
            self.version += 1

    def _add_vm(self, s: VmSeries, vm) -> None:
        layout = self.layout
        s.vcpus.value = len(vm.vcpus)
        for r in vm.reasons:
            s.add(s.exits, (isa_name(r.isa), r.name), ("isa", "reason"), r.count)
            if r.latency.count:
                s.histo(s.exit_latency, r.name, layout).add_latency(r.latency, layout)
        for u in vm.userspace_exits:
            s.add(s.userspace, u.name, ("reason",), u.count)
            if u.latency.count:
                s.histo(s.userspace_latency, u.name, layout).add_latency(u.latency, layout)
        for h in vm.hypercalls:
            s.add(s.hypercalls, (str(h.code), h.name), ("nr", "name"), h.count)
        for q in vm.requests:
            s.add(s.requests, (str(q.bit), q.name), ("bit", "name"), q.count)
        if self.per_vcpu:
            for v in vm.vcpus:
                label = vcpu_label(v)
                for r in v.reasons:
                    s.add(s.vcpu_exits, (label, isa_name(r.isa), r.name), ("vcpu", "isa", "reason"), r.count)

    def _forget(self, seen: set, now: float) -> None:
        for key, series in list(self.vms.items()):
            if key in seen:
                continue
            if series.gone_since is None:
                series.gone_since = now
            elif now - series.gone_since >= self.forget_after_s:
                del self.vms[key]

    def _add_collector(self, snap: Snapshot) -> None:
        c, st = self.collector, snap.collector
        c.intervals += 1
        c.last_success = time.time()
        c.poll.add_value(int(st.poll_ms * 1_000_000), self.layout)
        for kind, n in st.drops_by_map.items():
            c.drops[kind] = c.drops.get(kind, 0) + n
        c.unmatched["exits"] += st.unmatched_exits
        c.unmatched["entries"] += st.unmatched_entries
        c.features = {f: st.has(f) for f in FEATURES}
        if not self.isa:
            self.isa = next((isa_name(r.isa) for r in snap.host.reasons), "")

    @property
    def series_count(self) -> int:
        """Series of all VMs (what ``--forget-after`` bounds)."""
        per_histogram = self.layout.size + 2  # buckets, _count, _sum
        return sum(v.series + per_histogram * (len(v.exit_latency) + len(v.userspace_latency))
                   for v in self.vms.values())
