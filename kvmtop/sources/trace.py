"""TraceSource: an imported text capture replayed as Intervals (``kvmtop replay TRACE.txt``).

The capture is imported once, streaming (``kvmtop.offline.trace_import.import_file``), and cut
into windows of ``window_s`` of trace time: window k holds the events with
``ts // window`` = k, and becomes one Interval whose ``time`` is the window's end in trace
seconds (the capture's clock, usually seconds since boot, not wall-clock time). An exit
and its latency belong to the window of the exit. Between two windows, up to
``MAX_GAP_WINDOWS`` empty intervals stand for the quiet time; a longer gap (or a capture
that jumps back in time, e.g. several excerpts pasted together) is marked by one empty
interval.

The first and the last window of a stretch of capture are partial: they cover the time from
the first event (to the last event), and their ``interval_s`` is that time, so rates divide
by the time the capture covers (a single instant counts as a whole window).

Threads are grouped into VMs as ``kvmtop.offline.vm_groups`` says (tgid, else comm). A VM is
listed in the intervals from its first to its last active
window. CollectorStatus features say what the capture can show: "exits" iff it has
kvm_exit, "requests" iff some kvm_exit carried a requests field, "hypercalls" iff it has
kvm_hypercall, "userspace" iff it has kvm_userspace_exit; the notes explain the gaps.
"""

from __future__ import annotations

import os

from ..errors import SourceError
from ..model import CollectorStatus, Interval, ThreadInterval, VmIdentity
from ..offline.capture_advice import missing_figures
from ..offline.pairing import Aggregates, acc_stat
from ..offline.trace_import import NotATrace, TraceImport, import_file, no_events
from ..offline.trace_lines import EXIT, HYPERCALL, USERSPACE
from ..offline.vm_groups import comm_group, group_threads
from .base import RecordedSource

MAX_GAP_WINDOWS = 60


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
        empty = no_events(self.imported, path)
        if empty:
            raise SourceError(empty)
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
    notes += [f"no {m.figure}: {m.why}" for m in missing_figures(p.counts, p.requests_seen)]
    if p.bad_count:
        notes.append(f"{p.bad_count} bad lines were left out (see kvmtop report)")
    if imp.read_error:
        notes.append(f"the capture is damaged: {imp.read_error}")
    return features, tuple(notes)


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
    pid_of, vms = group_threads(imp.parser.threads, imp.tids)
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

    def emit(index: int, threads: tuple, live: dict, agg: Aggregates | None,
             start_ns: int | None = None, end_ns: int | None = None) -> None:
        status = CollectorStatus(
            unmatched_exits=agg.unmatched_exits if agg else 0,
            unmatched_entries=agg.unmatched_entries if agg else 0,
            features=features, notes=notes,
        )
        lo = index * window_ns if start_ns is None else start_ns
        hi = (index + 1) * window_ns if end_ns is None else end_ns
        if hi <= lo:  # a single instant: no time to divide by, so the whole window
            lo, hi = index * window_ns, (index + 1) * window_ns
        out.append(Interval(time=hi / 1e9, interval_s=(hi - lo) / 1e9, threads=threads,
                            vms=live, status=status, kernel=None))

    def continues(prev: int, index: int) -> bool:
        return prev < index <= prev + MAX_GAP_WINDOWS + 1

    for pos, (index, agg) in enumerate(windows):
        # the first and last window of a stretch of capture cover only its events' time
        start = pos == 0 or not continues(windows[pos - 1][0], index)
        end = pos == len(windows) - 1 or not continues(index, windows[pos + 1][0])
        if pos:
            prev = windows[pos - 1][0]
            live = alive(pos - 1, pos)
            if continues(prev, index):
                for gap in range(prev + 1, index):
                    emit(gap, (), live, None)
            else:  # a long gap or a jump back: one empty interval marks it
                emit(prev + 1, (), live, None)
        emit(index, threads_at[pos], alive(pos, pos), agg,
             agg.first_ts if start else None, agg.last_ts if end else None)
    return out


__all__ = ["TraceSource", "build_intervals", "comm_group", "MAX_GAP_WINDOWS"]
