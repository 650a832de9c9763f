"""TraceSource: an imported text capture replayed as Intervals (``kvmtop replay TRACE.txt``).

The capture is imported once, streaming (``kvmtop.offline.trace_import.import_file``), and cut
into windows of ``window_s`` of trace time: window k holds the events with
``ts // window`` = k, and becomes one Interval whose ``time`` is the window's end in trace
seconds (the capture's clock, usually seconds since boot, not wall-clock time). An exit
and its latency belong to the window of the exit. Between two windows, up to
``MAX_GAP_WINDOWS`` empty intervals stand for the quiet time; a longer gap (or a capture
that jumps back in time, e.g. several excerpts pasted together) is marked by one empty
interval.

Threads are grouped into VMs:

* by the tgid when the capture shows it (ftrace's ``( tgid)`` column, perf's ``pid/tid``);
  the VM is named by the comm of its main thread when that thread appears, else by the
  comm its threads share, else ``pid N``;
* otherwise by comm, with vCPU numbering taken out (``CPU N/KVM``, ``fc_vcpu N``,
  ``vcpuN``): ``qemu-system-x86-8396`` and ``-8397`` make one VM named
  ``qemu-system-x86``, whose pid is its lowest tid;
* lines without a task column are one anonymous thread (tid 0) in a VM of pid 0.

A thread's vCPU index comes from a ``CPU N/KVM`` comm, else from the ``vcpu N`` of
kvm_exit / kvm_entry. A VM is listed in the intervals from its first to its last active
window. CollectorStatus features say what the capture can show: "exits" iff it has
kvm_exit, "requests" iff some kvm_exit carried a requests field, "hypercalls" iff it has
kvm_hypercall, "userspace" iff it has kvm_userspace_exit; the notes explain the gaps.
"""

from __future__ import annotations

import os
import re

from ..errors import SourceError
from ..model import CollectorStatus, Interval, ThreadInterval, VmIdentity
from ..offline.pairing import Aggregates, acc_stat
from ..offline.trace_import import NotATrace, TraceImport, import_file
from ..offline.trace_lines import ANON_TID, ENTRY, EXIT, HYPERCALL, USERSPACE
from .base import RecordedSource

MAX_GAP_WINDOWS = 60
_VCPU_PATTERNS = (
    (re.compile(r"CPU \d+/(\w+)$"), r"CPU N/\1"),
    (re.compile(r"fc_vcpu \d+$"), "fc_vcpu N"),
    (re.compile(r"vcpu\d+$"), "vcpuN"),
)


def comm_group(comm: str) -> str:
    """A comm with its vCPU numbering taken out: the key that groups threads without a tgid."""
    for pattern, repl in _VCPU_PATTERNS:
        if pattern.match(comm):
            return pattern.sub(repl, comm)
    return comm


class TraceSource(RecordedSource):
    """An imported capture: ``intervals`` holds them all (seekable replay)."""

    def __init__(self, path: str, window_s: float = 1.0):
        if not window_s > 0:
            raise SourceError(f"the replay window must be positive, not {window_s}")
        self.path = path
        self.window_s = float(window_s)
        self.name = f"trace {os.path.basename(path)}"
        try:
            self.imported: TraceImport = import_file(path, self.window_s)
        except NotATrace as exc:
            raise SourceError(str(exc)) from exc
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        p = self.imported.parser
        if not p.events:
            raise SourceError(f"no KVM trace events in {path} ({p.lines} lines: {p.skipped} skipped, "
                              f"{p.bad_count} bad)")
        self.intervals: list[Interval] = build_intervals(self.imported, self.window_s, path)
        self.warning = (f"{p.bad_count} bad lines in {os.path.basename(path)} (see kvmtop report)"
                        if p.bad_count else None)


def _status(imp: TraceImport, path: str, window_s: float) -> tuple[dict[str, bool], tuple[str, ...]]:
    p = imp.parser
    features = {
        "exits": p.has(EXIT),
        "requests": p.requests_seen > 0,
        "hypercalls": p.has(HYPERCALL),
        "userspace": p.has(USERSPACE),
    }
    notes = [f"imported from {os.path.basename(path)}: windows of {window_s:g} s of trace time"]
    if not features["exits"]:
        notes.append("the capture has no kvm_exit events")
    elif not p.has(ENTRY):
        notes.append("the capture has no kvm_entry events: exit latencies are unknown")
    if not features["requests"]:
        notes.append("no kvm_exit carried a requests field (kernels before 6.14 lack it)")
    if not features["hypercalls"]:
        notes.append("the capture has no kvm_hypercall events")
    if not features["userspace"]:
        notes.append("the capture has no kvm_userspace_exit events")
    if p.bad_count:
        notes.append(f"{p.bad_count} bad lines were left out (see kvmtop report)")
    if imp.read_error:
        notes.append(f"reading stopped early: {imp.read_error}")
    return features, tuple(notes)


def _group_vms(imp: TraceImport) -> tuple[dict[int, int], dict[int, VmIdentity]]:
    """tid -> VM pid, and pid -> VmIdentity (see the module docstring)."""
    p = imp.parser
    groups: dict[tuple, list[int]] = {}
    for tid in sorted(imp.tids):
        meta = p.threads.get(tid)
        if tid == ANON_TID and (meta is None or not meta.comm):
            key: tuple = ("anon",)
        elif meta is not None and meta.tgid is not None:
            key = ("tgid", meta.tgid)
        else:
            key = ("comm", comm_group(meta.comm if meta else ""))
        groups.setdefault(key, []).append(tid)
    tgids = {k[1] for k in groups if k[0] == "tgid"}
    pid_of: dict[int, int] = {}
    vms: dict[int, VmIdentity] = {}
    for key, tids in groups.items():
        comms = {t: p.threads[t].comm for t in tids if t in p.threads}
        if key[0] == "anon":
            pid, name = 0, "(no task column)"
        elif key[0] == "tgid":
            pid = key[1]
            shared = {comm_group(c) for c in comms.values()}
            if pid in p.threads and p.threads[pid].comm:
                name = p.threads[pid].comm
            elif len(shared) == 1 and next(iter(shared)) not in ("", "<...>"):
                name = next(iter(shared))
            else:
                name = f"pid {pid}"
        else:
            pid = min(tids)
            while pid in tgids or pid in vms:  # keep pids unique
                pid += 1
            name = key[1] or "(no comm)"
        index = {}
        for t in tids:
            meta = p.threads.get(t)
            if meta is not None and meta.vcpu_index is not None:
                index[t] = meta.vcpu_index
        vms[pid] = VmIdentity(pid=pid, name=name, vcpu_index=index, comms=comms)
        for t in tids:
            pid_of[t] = pid
    return pid_of, vms


def _threads(agg: Aggregates, pid_of: dict[int, int], imp: TraceImport) -> tuple[ThreadInterval, ...]:
    per: dict[int, dict[str, dict]] = {}

    def slot(tid: int) -> dict[str, dict]:
        s = per.get(tid)
        if s is None:
            s = per[tid] = {"r": {}, "u": {}, "h": {}, "q": {}}
        return s

    for (tid, key), acc in agg.reasons.items():
        slot(tid)["r"][key] = acc_stat(acc)
    for (tid, code), acc in agg.userspace.items():
        slot(tid)["u"][code] = acc_stat(acc)
    for (tid, nr), acc in agg.hypercalls.items():
        slot(tid)["h"][nr] = acc_stat(acc)
    for (tid, bit), n in agg.requests.items():
        slot(tid)["q"][bit] = n
    out = []
    for tid in sorted(per):
        s = per[tid]
        meta = imp.parser.threads.get(tid)
        out.append(ThreadInterval(
            pid=pid_of.get(tid, 0), tid=tid, vcpu_id=meta.vcpu_id if meta else None,
            reasons=_sorted(s["r"]), userspace=_sorted(s["u"]), hypercalls=_sorted(s["h"]),
            requests=dict(sorted(s["q"].items())),
        ))
    return tuple(out)


def _sorted(stats: dict) -> dict:
    return {k: stats[k] for k in sorted(stats)}


def build_intervals(imp: TraceImport, window_s: float, path: str = "") -> list[Interval]:
    """The windows of an import (made with ``window_s``) as Intervals."""
    window_ns = max(1, int(round(window_s * 1e9)))
    pid_of, vms = _group_vms(imp)
    features, notes = _status(imp, path or imp.source, window_s)
    windows = imp.windows
    # a VM is listed from its first to its last active window (positions in file order)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    threads_at = []
    for pos, (_index, agg) in enumerate(windows):
        threads = _threads(agg, pid_of, imp)
        threads_at.append(threads)
        for t in threads:
            first.setdefault(t.pid, pos)
            last[t.pid] = pos

    def alive(lo: int, hi: int) -> dict[int, VmIdentity]:
        return {pid: vm for pid, vm in vms.items() if pid in first and first[pid] <= lo and last[pid] >= hi}

    out: list[Interval] = []

    def emit(index: int, threads: tuple, live: dict, agg: Aggregates | None) -> None:
        status = CollectorStatus(
            unmatched_exits=agg.unmatched_exits if agg else 0,
            unmatched_entries=agg.unmatched_entries if agg else 0,
            features=features, notes=notes,
        )
        out.append(Interval(time=(index + 1) * window_ns / 1e9, interval_s=window_s, threads=threads,
                            vms=live, status=status, kernel=None))

    prev: int | None = None
    for pos, (index, agg) in enumerate(windows):
        if prev is not None and index != prev + 1:
            live = alive(pos - 1, pos)
            if prev < index <= prev + MAX_GAP_WINDOWS + 1:
                for gap in range(prev + 1, index):
                    emit(gap, (), live, None)
            else:  # a long gap or a jump back: one empty interval marks it
                emit(prev + 1, (), live, None)
        emit(index, threads_at[pos], alive(pos, pos), agg)
        prev = index
    return out


__all__ = ["TraceSource", "build_intervals", "comm_group", "MAX_GAP_WINDOWS"]
