"""CSV lines of a snapshot (``--batch --csv``): one row per VM and reason, stable columns.

Like ``kvm_stat -c`` it is meant for spreadsheets and scripts: a header line, then every
interval's rows. ``kind`` says what a row counts: ``exit`` (exit reason), ``userspace``
(``KVM_EXIT_*``, latency = the VMM round trip), ``hypercall`` or ``request`` (a
``vcpu->requests`` bit; no latency), and with ``--io`` ``pio`` or ``mmio`` (accesses to the
port or guest-physical address ``code``, in the direction ``reason``: ``read`` or ``write``;
no latency). Counts are for the interval only. Latencies are
integer ns, empty where there are none. Guest names are made printable (no control
characters), since CSV files end up in terminals.
"""

from __future__ import annotations

import csv
import io

from .decode import isa_name
from .io_stats import IoSample
from .model import Latency, Snapshot
from .safe_text import printable

COLUMNS = ("time", "interval_s", "pid", "vm", "kind", "isa", "code", "reason", "count", "per_s",
           "latency_count", "latency_min_ns", "latency_p50_ns", "latency_p90_ns", "latency_p99_ns",
           "latency_p999_ns", "latency_max_ns", "latency_sum_ns")


def _latency(lat: Latency | None) -> list:
    if lat is None or not lat.count:
        return [lat.count if lat is not None else ""] + [""] * 7
    return [lat.count, lat.min, lat.p50, lat.p90, lat.p99, lat.p999, lat.max, lat.sum]


def rows(snap: Snapshot, io: IoSample | None = None) -> list[list]:
    out = []
    by_vm = io.by_vm() if io is not None else {}
    for vm in snap.vms:
        head = [round(snap.time, 3), round(snap.interval_s, 3), vm.pid, printable(vm.name)]
        for r in vm.reasons:
            out.append(head + ["exit", isa_name(r.isa), r.code, r.name, r.count, round(r.per_s, 3),
                               *_latency(r.latency)])
        for u in vm.userspace_exits:
            out.append(head + ["userspace", "", u.code, u.name, u.count, round(u.per_s, 3), *_latency(u.latency)])
        for h in vm.hypercalls:
            out.append(head + ["hypercall", "", h.code, h.name, h.count, round(h.per_s, 3), *_latency(h.latency)])
        for q in vm.requests:
            per_s = q.count / snap.interval_s if snap.interval_s > 0 else 0.0
            out.append(head + ["request", "", q.bit, q.name, q.count, round(per_s, 3), *_latency(None)])
        for st in by_vm.get(vm.pid, ()):
            out.append(head + [st.space.lower(), "", st.addr, st.direction, st.count, round(st.per_s, 3),
                               *_latency(None)])
    return out


def _lines(table) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(table)
    return buf.getvalue()


def header() -> str:
    return _lines([COLUMNS])


def snapshot_to_csv(snap: Snapshot, io: IoSample | None = None) -> str:
    """The interval's rows as CSV text (no header); with ``io``, its PIO/MMIO rows too."""
    return _lines(rows(snap, io))
