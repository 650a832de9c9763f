"""Plain-text front end: ``--once`` and ``--batch`` tables (like ``kvm_stat -1`` / ``top -b``)."""

from __future__ import annotations

from collections.abc import Sequence

from . import marks, units
from .io_stats import IoSample, IoStat
from .model import Breakdown, Latency, Snapshot, VmStat
from .safe_text import safe_name

LAT_HEAD = f"{'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>8}"


def _lat(lat: Latency, available: bool = True) -> str:
    if not available or not lat.count:
        return " ".join(f"{'—':>8}" for _ in range(5))
    return " ".join(f"{units.duration(v):>8}" for v in (lat.p50, lat.p90, lat.p99, lat.p999, lat.max))


def _table(title: str, header: str, rows: Sequence[str]) -> list[str]:
    return [f"  {title:<28}{header}", *(f"  {r}" for r in rows)] if rows else []


def _count(n: int, lost: int) -> str:
    return f"{marks.at_least(str(n), lost):>9}"


def _lost(lost: int) -> str:
    return f"  ! {marks.lost_note(lost)}" if lost else ""


def render_breakdown(b: Breakdown, exits_ok: bool) -> list[str]:
    lines: list[str] = []
    exits = b.exits
    lines += _table(
        "Exit reason", f"{'count':>9} {'/s':>8} {'share':>6} {LAT_HEAD}",
        [f"{safe_name(r.name, 27):<28}{_count(r.count, r.lost)} {units.rate(r.per_s):>8} "
         f"{units.share(r.count / exits if exits else 0):>6} {_lat(r.latency)}{_lost(r.lost)}" for r in b.reasons],
    )
    lines += _table(
        "Userspace exit (round trip)", f"{'count':>9} {'/s':>8} {'':>6} {LAT_HEAD}",
        [f"{u.name:<28}{_count(u.count, u.lost)} {units.rate(u.per_s):>8} {'':>6} {_lat(u.latency)}{_lost(u.lost)}"
         for u in b.userspace_exits],
    )
    lines += _table(
        "Hypercall", f"{'count':>9} {'/s':>8} {'':>6} {LAT_HEAD}",
        [f"{h.name:<28}{_count(h.count, h.lost)} {units.rate(h.per_s):>8} {'':>6} {_lat(h.latency)}{_lost(h.lost)}"
         for h in b.hypercalls],
    )
    lines += _table(
        "Request bit at exit", f"{'exits':>9} {'share':>8}",
        [f"{f'{r.bit:>2} {r.name}':<28}{_count(r.count, r.lost)} {units.share(r.share):>8}{_lost(r.lost)}"
         for r in b.requests],
    )
    return lines


def render_io(stats: Sequence[IoStat]) -> list[str]:
    """A VM's PIO ports and MMIO addresses of the interval (``--io``), busiest first."""
    return _table("Port / MMIO address", f"{'count':>9} {'/s':>8}",
                  [f"{f'{st.space:<5}{st.direction:<6}{st.address}':<28}{st.count:>9} {units.rate(st.per_s):>8}"
                   for st in stats])


def render_vm(vm: VmStat, exits_ok: bool, hypercalls_ok: bool = True,
              io: Sequence[IoStat] | None = None) -> list[str]:
    exits = f"{units.rate(vm.exits_per_s)} exits/s" if exits_ok else "exits n/a"
    hypercalls = f"{units.rate(vm.hypercalls_per_s)}/s" if hypercalls_ok and exits_ok else "n/a"
    stuck = marks.stuck_vcpu(vm)
    lines = [
        f"VM {safe_name(vm.name)} (pid {vm.pid}{', exited' if vm.exited else ''})  {len(vm.vcpus)} vCPUs  {exits}  "
        f"userspace {units.rate(vm.userspace_per_s)}/s  hypercalls {hypercalls}"
        + (f"  ! {marks.lost_note(vm.lost)}" if vm.lost else "")
        + (f"  ! {stuck}" if stuck else "")
    ]
    lines += render_breakdown(vm, exits_ok)
    if io is not None:
        lines += render_io(io) or ["  no port or MMIO access"]
    if vm.vcpus:
        lines.append(f"  {'vCPU':<6}{'tid':>8} {'vcpu_id':>8} {'exits/s':>9} {'usr/s':>8}  top reason")
        for v in vm.vcpus:
            top = v.top_reason
            flight = v.in_userspace
            exits = marks.at_least(units.rate(v.exits_per_s), v.exits_lost) if exits_ok else "n/a"
            lines.append(
                f"  {v.index if v.index is not None else '?':<6}{v.tid:>8} "
                f"{v.vcpu_id if v.vcpu_id is not None else '—':>8} "
                f"{exits:>9} {marks.at_least(units.rate(v.userspace_per_s), v.userspace_lost):>8}  "
                f"{safe_name(top.name, 30) + f' {units.share(v.top_reason_share)}' if top else '—'}"
                + (f"  ! in userspace for {units.duration(flight.ns)}" if marks.stuck(flight) else "")
            )
    return lines


def render(snap: Snapshot, filter_text: str = "", io: IoSample | None = None) -> str:
    """One interval as a readable text block (``filter_text``: the active reason filter, said up
    front; ``io``: the interval's PIO/MMIO sample, when counted)."""
    h = snap.host
    c = snap.collector
    exits_ok = c.has("exits")
    stamp = units.timestamp(snap.time)
    exits = f"exits {units.rate(h.exits_per_s)}/s  p99 {units.duration(h.latency.p99) if h.latency.count else '—'}" \
        if exits_ok else "exits n/a"
    hypercalls = f"{units.rate(h.hypercalls_per_s)}/s" if c.has("hypercalls") else "n/a"
    lines = [
        f"kvmtop {stamp}  interval {units.duration(snap.interval_s * 1e9)}  VMs {h.vm_count}  vCPUs {h.vcpu_count}  "
        f"{exits}  userspace {units.rate(h.userspace_per_s)}/s  hypercalls {hypercalls}",
    ]
    drops = f"{c.drops} ({', '.join(f'{k} {n}' for k, n in c.drops_by_kind.items())})" \
        if c.drops_by_kind else c.drops
    counters = [f"{k} {v}" for k, v in (("drops", drops), ("unmatched exits", c.unmatched_exits),
                                          ("unmatched entries", c.unmatched_entries)) if v]
    lines.append(f"collector poll {c.poll_ms:.1f} ms" + (f"  {'  '.join(counters)}" if counters else ""))
    if filter_text:
        lines.append(f"filter: {filter_text} (other exit reasons are not shown)")
    lines += [f"note: {n}" for n in c.notes]
    if io is not None and io.drops:
        lines.append(f"I/O: {marks.lost_note(io.drops)}")
    if not snap.vms:
        lines.append("no KVM guests running")
    by_vm = io.by_vm() if io is not None else None
    for vm in sorted(snap.vms, key=lambda v: (-v.exits, -v.userspace_count, v.pid)):
        lines.append("")
        lines += render_vm(vm, exits_ok, c.has("hypercalls"), None if by_vm is None else by_vm.get(vm.pid, []))
    return "\n".join(lines)
