"""What ``kvmtop report`` shows, whatever it read: per-thread totals grouped into VMs.

A trace capture (``from_trace``) and a recording (``from_recording``) both become a
``ReportData``: one ``ThreadTotals`` per thread (every kind of figure: exits by reason,
userspace exits with their round trips, hypercalls, request bits, pio/mmio), the VMs they
belong to, and what the source says about itself. ``Selection`` narrows it to a VM (pid or
name) or a thread; the renderers (``offline.report``) sum whatever threads are selected, so
totals, per-VM and per-thread tables all come from the same numbers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .. import decode
from ..io_stats import PIO, IoAccess, IoSample
from ..model import Interval, Latency, Stat
from ..selection import NamePattern
from .capture_advice import Missing, missing_figures
from .pairing import Aggregates, Pairing, acc_stat
from .trace_import import TraceImport
from .trace_lines import ENTRY, RUN
from .vm_groups import group_threads

VmKey = tuple[int, int]  # (pid, start_time): a recycled pid is another VM


@dataclass
class ThreadTotals:
    """Everything one thread did over the whole source."""

    tid: int
    vm: VmKey
    comm: str = ""
    tgid: int | None = None  # the pid the capture printed for it, if any
    vcpu: int | None = None  # the VMM's vCPU number, else KVM's vcpu_id
    vcpu_id: int | None = None
    reasons: dict[tuple[int, int], Stat] = field(default_factory=dict)
    userspace: dict[int, Stat] = field(default_factory=dict)
    hypercalls: dict[int, Stat] = field(default_factory=dict)
    requests: dict[int, int] = field(default_factory=dict)
    request_exits: int = 0  # exits that carried a requests field (the share's denominator)
    pio: dict[tuple[str, int], Stat] = field(default_factory=dict)
    mmio: dict[tuple[str, int], Stat] = field(default_factory=dict)
    unmatched: list[int] | None = None  # [exits, entries, userspace exits]; None: not known per thread

    @property
    def exits(self) -> int:
        return sum(s.count for s in self.reasons.values())


@dataclass(frozen=True)
class VmInfo:
    pid: int
    name: str
    start_time: int = 0

    @property
    def key(self) -> VmKey:
        return (self.pid, self.start_time)


@dataclass(frozen=True)
class Slow:
    """One exit or userspace round trip among the slowest."""

    latency_ns: int
    ts_ns: int  # when it started (the exit), on the capture's clock
    tid: int
    what: Any  # (isa, code) of an exit, KVM_EXIT_* code of a userspace exit
    ended_by: str | None = None  # userspace: "kvm_entry" or "KVM_RUN"


@dataclass
class IntervalRow:
    """One interval of a recording, summed over the selected threads."""

    time: float
    interval_s: float
    exits: Stat
    userspace: Stat
    hypercalls: int
    vms: int


@dataclass
class ReportData:
    kind: str  # "trace" or "recording"
    source: str
    threads: list[ThreadTotals]
    vms: dict[VmKey, VmInfo]
    reason_names: Mapping[tuple[int, int], str] = field(default_factory=dict)  # first spelling in a capture
    reason_spellings: Mapping[tuple[int, int], list[str]] = field(default_factory=dict)
    userspace_names: Mapping[int, str] = field(default_factory=dict)
    kernel: str | None = None
    slowest: int = 0  # N of --slowest (0: not asked)
    slow_exits: list[Slow] = field(default_factory=list)  # every thread's slowest, unsorted
    slow_userspace: list[Slow] = field(default_factory=list)
    missing: list[Missing] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    first_ts: int | None = None  # the capture's first and last event (ns of its clock)
    last_ts: int | None = None
    parser: Any = None  # trace: the TraceParser (line counts, bad lines)
    read_error: str | None = None
    unmatched_total: list[int] | None = None  # recordings: [exits, entries] of the whole host
    intervals: list[IntervalRow] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # recordings: the header
    selection: Selection | None = None

    def reason_name(self, key: tuple[int, int]) -> str:
        return self.reason_names.get(key) or decode.exit_reason_name(*key)

    def userspace_name(self, code: int) -> str:
        return self.userspace_names.get(code) or decode.userspace_exit_name(code)

    def request_name(self, bit: int) -> str:
        return decode.request_bit_name(bit, self.kernel)

    def vm_of(self, t: ThreadTotals) -> VmInfo:
        return self.vms.get(t.vm) or VmInfo(t.vm[0], f"pid {t.vm[0]}", t.vm[1])

    def threads_of(self, vm: VmInfo) -> list[ThreadTotals]:
        return [t for t in self.threads if t.vm == vm.key]

    def slowest_exits(self) -> list[Slow]:
        return _top(self.slow_exits, self.slowest)

    def slowest_userspace(self) -> list[Slow]:
        return _top(self.slow_userspace, self.slowest)

    def narrowed(self, selection: Selection) -> ReportData:
        """The same data restricted to the threads the selection matches."""
        keep = [t for t in self.threads if selection.matches(t, self.vm_of(t))]
        tids = {t.tid for t in keep}
        vms = {t.vm for t in keep}
        out = ReportData(**{**self.__dict__, "threads": keep,
                            "vms": {k: v for k, v in self.vms.items() if k in vms},
                            "slow_exits": [s for s in self.slow_exits if s.tid in tids],
                            "slow_userspace": [s for s in self.slow_userspace if s.tid in tids],
                            "selection": selection})
        if self.unmatched_total is not None and not selection.is_empty():
            out.unmatched_total = None  # a recording counts unmatched events for the whole host only
        return out


def _top(items: list[Slow], n: int) -> list[Slow]:
    """The n slowest, slowest first; ties in time order."""
    return heapq.nlargest(n, items, key=lambda s: (s.latency_ns, -s.ts_ns)) if n else []


@dataclass(frozen=True)
class Selection:
    """``--pid``, ``--tid``, ``-g NAME``: every given one must match. NAME is a VM's whole
    name when ``exact`` (what ``resolve_name`` found), else a pattern as the dashboard's ``-g``
    takes it: text (contained, any case), a glob or a regular expression."""

    pid: int | None = None
    tid: int | None = None
    name: str | None = None
    exact: bool = False

    def is_empty(self) -> bool:
        return self.pid is None and self.tid is None and self.name is None

    def matches(self, t: ThreadTotals, vm: VmInfo) -> bool:
        return ((self.pid is None or vm.pid == self.pid) and (self.tid is None or t.tid == self.tid)
                and self.name_matches(vm.name))

    def name_matches(self, name: str) -> bool:
        if self.name is None or self.name == name:
            return True
        pattern = None if self.exact else NamePattern.parse(self.name)
        return pattern is not None and pattern.matches(name)

    def describe(self) -> str:
        parts = [f"pid {self.pid}" if self.pid is not None else "", f"tid {self.tid}" if self.tid is not None else "",
                 f"VM {self.name!r}" if self.name is not None else ""]
        return ", ".join(p for p in parts if p)


def resolve_name(selection: Selection, names: Iterable[str]) -> Selection:
    """``-g NAME``: the VM of exactly that name; else, when the pattern fits one VM only, that
    VM's name; else the pattern, for every VM it fits."""
    names = set(names)
    if selection.name is None or selection.exact:
        return selection
    if selection.name in names:
        return replace(selection, exact=True)
    fits = sorted(n for n in names if selection.name_matches(n))
    return replace(selection, name=fits[0], exact=True) if len(fits) == 1 else selection


# --------------------------------------------------------------------------- from a capture


def from_trace(imp: TraceImport, pairing: Pairing | None = None) -> ReportData:
    """A whole-capture import; the slowest lists come from the Pairing that made it."""
    p = imp.parser
    agg = merged(imp)
    pid_of, identities = group_threads(p.threads, imp.tids)
    vms = {(pid, 0): VmInfo(pid, ident.name) for pid, ident in identities.items()}
    per: dict[int, ThreadTotals] = {}
    for tid in sorted(imp.tids):
        meta = p.threads.get(tid)
        per[tid] = ThreadTotals(
            tid=tid, vm=(pid_of.get(tid, 0), 0), comm=meta.comm if meta else "",
            tgid=meta.tgid if meta else None, vcpu=meta.vcpu_index if meta else None,
            vcpu_id=meta.vcpu_id if meta else None,
            request_exits=agg.request_exits.get(tid, 0),
            unmatched=list(agg.unmatched_by_tid.get(tid, (0, 0, 0))),
        )

    def fill(table: dict[tuple, list], attr: str) -> None:
        for (tid, key), acc in sorted(table.items(), key=lambda kv: kv[0]):
            if tid in per:
                getattr(per[tid], attr)[key] = acc_stat(acc)

    for table, attr in ((agg.reasons, "reasons"), (agg.userspace, "userspace"), (agg.hypercalls, "hypercalls"),
                        (agg.pio, "pio"), (agg.mmio, "mmio")):
        fill(table, attr)
    for (tid, bit), n in sorted(agg.requests.items()):
        if tid in per:
            per[tid].requests[bit] = n
    data = ReportData(
        kind="trace", source=imp.source, threads=list(per.values()), vms=vms,
        reason_names=p.reason_names, reason_spellings=p.reason_spellings, userspace_names=p.userspace_names,
        missing=missing_figures(p.counts, p.requests_seen), first_ts=agg.first_ts, last_ts=agg.last_ts,
        parser=p, read_error=imp.read_error,
    )
    pairing = pairing or imp.pairing
    if pairing is not None and pairing.slowest:
        data.slowest = pairing.slowest
        data.slow_exits = [Slow(d, ts, tid, key) for tid, h in pairing.slow_exits.items() for d, ts, key in h]
        ended = {ENTRY: "kvm_entry", RUN: "KVM_RUN"}
        data.slow_userspace = [Slow(d, ts, tid, code, ended[how])
                               for tid, h in pairing.slow_userspace.items() for d, ts, code, how in h]
    return data


def merged(imp: TraceImport) -> Aggregates:
    """The whole capture in one aggregate (merging windows when there are any)."""
    if not imp.windows:
        return imp.agg
    from .pairing import merge_accs

    total = Aggregates()
    for _i, agg in imp.windows:
        for name in ("reasons", "userspace", "hypercalls", "pio", "mmio"):
            table = getattr(total, name)
            for k, acc in getattr(agg, name).items():
                table[k] = merge_accs([table[k], acc]) if k in table else acc
        for k, n in agg.requests.items():
            total.requests[k] = total.requests.get(k, 0) + n
        for k, n in agg.request_exits.items():
            total.request_exits[k] = total.request_exits.get(k, 0) + n
        for tid, u in agg.unmatched_by_tid.items():
            mine = total.unmatched_by_tid.setdefault(tid, [0, 0, 0])
            for i, n in enumerate(u):
                mine[i] += n
        for ts in (agg.first_ts, agg.last_ts):
            if ts is not None:
                total.first_ts = ts if total.first_ts is None else min(total.first_ts, ts)
                total.last_ts = ts if total.last_ts is None else max(total.last_ts, ts)
    return total


# --------------------------------------------------------------------------- from a recording


def from_recording(path: str, meta: Mapping[str, Any], intervals: Iterable[Interval],
                   selection: Selection | None = None, warning: str | None = None,
                   io_of: Callable[[int], IoSample | None] | None = None) -> ReportData:
    """A recording's intervals (one pass) summed per thread; ``selection`` also narrows the
    per-interval rows, which are summed as the intervals go by. ``io_of(i)``: the PIO/MMIO
    sample recorded beside interval ``i`` (``record --io``), summed into ``pio``/``mmio``."""
    sel = selection or Selection()
    per: dict[tuple[VmKey, int], ThreadTotals] = {}
    vms: dict[VmKey, VmInfo] = {}
    rows: list[IntervalRow] = []
    kernel = None
    unmatched = [0, 0]
    notes: dict[str, None] = {}
    io_drops = 0

    def totals(iv: Interval, pid: int, tid: int, vcpu_id: int | None) -> tuple[VmInfo, ThreadTotals]:
        ident = iv.vms.get(pid)
        vm = VmInfo(pid, ident.name if ident else f"pid {pid}", ident.start_time if ident else 0)
        tot = per.get((vm.key, tid))
        if tot is None:
            index = ident.vcpu_index.get(tid) if ident else None
            tot = per[(vm.key, tid)] = ThreadTotals(
                tid=tid, vm=vm.key, comm=ident.comms.get(tid, "") if ident else "", tgid=pid,
                vcpu=index if index is not None else vcpu_id, vcpu_id=vcpu_id)
        return vm, tot

    for i, iv in enumerate(intervals):
        kernel = iv.kernel or kernel
        unmatched[0] += iv.status.unmatched_exits
        unmatched[1] += iv.status.unmatched_entries
        notes.update(dict.fromkeys(iv.status.notes))
        exits: list[Stat] = []
        userspace: list[Stat] = []
        hypercalls = 0
        active: set[VmKey] = set()
        for t in iv.threads:
            vm, tot = totals(iv, t.pid, t.tid, t.vcpu_id)
            if not sel.matches(tot, vm):
                continue
            vms[vm.key] = vm
            active.add(vm.key)
            tot.vcpu_id = tot.vcpu_id if tot.vcpu_id is not None else t.vcpu_id
            _add(tot.reasons, t.reasons)
            _add(tot.userspace, t.userspace)
            _add(tot.hypercalls, t.hypercalls)
            for bit, n in t.requests.items():
                tot.requests[bit] = tot.requests.get(bit, 0) + n
            if iv.status.has("requests"):
                tot.request_exits += sum(s.count for s in t.reasons.values())
            exits += t.reasons.values()
            userspace += t.userspace.values()
            hypercalls += sum(s.count for s in t.hypercalls.values())
        sample = io_of(i) if io_of is not None else None
        if sample is not None and sample.drops:
            io_drops += sample.drops
        for a in sample.accesses if sample is not None else ():
            vm, tot = totals(iv, a.pid, a.tid, None)
            if sel.matches(tot, vm):
                vms[vm.key] = vm
                active.add(vm.key)
                _add(*io_entry(tot, a))
        rows.append(IntervalRow(iv.time, iv.interval_s, Stat.merge(exits), Stat.merge(userspace), hypercalls,
                                len(active)))
    if io_drops:
        notes[f"{io_drops:,} PIO/MMIO accesses not counted: the BPF io map was full (host-wide)"] = None
    threads = [t for t in per.values() if t.vm in vms]
    threads.sort(key=lambda t: (t.vm, t.tid))
    data = ReportData(kind="recording", source=path, threads=threads, vms=vms, kernel=kernel,
                      notes=list(notes), unmatched_total=unmatched if sel.is_empty() else None,
                      intervals=rows, meta=dict(meta),
                      read_error=warning, selection=selection)
    if rows:
        data.first_ts = int(round((rows[0].time - rows[0].interval_s) * 1e9))
        data.last_ts = int(round(rows[-1].time * 1e9))
    return data


def io_entry(tot: ThreadTotals, a: IoAccess) -> tuple[dict, dict]:
    """Where a recorded access goes in the thread's totals, keyed as a capture's ``kvm_pio``
    (``OUT``/``IN``, port) or ``kvm_mmio`` (``W``/``R``, gpa); the kernel counts no latency for them."""
    if a.space == PIO:
        return tot.pio, {("OUT" if a.write else "IN", a.addr): Stat(a.count)}
    return tot.mmio, {("W" if a.write else "R", a.addr): Stat(a.count)}


def _add(into: dict, stats: Mapping) -> None:
    for k, s in stats.items():
        into[k] = Stat.merge((into[k], s)) if k in into else s


# --------------------------------------------------------------------------- sums


def sum_stats(maps: Iterable[Mapping]) -> dict:
    """Merge {key: Stat} maps by key."""
    grouped: dict = {}
    for m in maps:
        for k, s in m.items():
            grouped.setdefault(k, []).append(s)
    return {k: Stat.merge(v) for k, v in grouped.items()}


def sum_counts(maps: Iterable[Mapping[int, int]]) -> dict[int, int]:
    out: dict[int, int] = {}
    for m in maps:
        for k, n in m.items():
            out[k] = out.get(k, 0) + n
    return out


def total_latency(stats: Iterable[Stat]) -> Latency:
    return Latency.merge(s.latency for s in stats)


__all__ = ["ReportData", "ThreadTotals", "VmInfo", "Slow", "Selection", "resolve_name", "IntervalRow", "from_trace",
           "from_recording", "merged", "sum_stats", "sum_counts", "total_latency"]
