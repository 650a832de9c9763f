"""The JSON contract of a snapshot: ``kvmtop.snapshot/1`` (see README, keep it stable).

Counts are for the interval only. Fields beyond the contract are extensions (added,
never renamed): ``host`` details, per-vCPU breakdowns, ``collector.sources`` and
``collector.notes``, ``lost`` on every row and breakdown (events a full BPF map could not
take: the row's true count is ``count + lost``), ``in_userspace`` per vCPU and VM,
``collector.drops_by_kind``, ``exited`` of a VM; with ``--io`` (or a replay of a recording
made with it), ``io`` of each VM (its PIO/MMIO accesses: ``space``, ``direction``,
``address``, ``count``, ``per_s``) and ``io`` of the snapshot (``accesses``, ``drops``).
"""

from __future__ import annotations

from typing import Any

from . import decode
from .io_stats import IoSample, IoStat
from .model import Breakdown, CodeStat, InFlight, Snapshot, VcpuStat, VmStat
from .safe_text import json_dumps

SCHEMA = "kvmtop.snapshot/1"


def _round(x: float) -> float:
    return round(x, 3)


def _reasons(b: Breakdown) -> list[dict[str, Any]]:
    return [
        {"isa": r.isa, "code": r.code, "name": r.name, "count": r.count, "per_s": _round(r.per_s),
         "latency_ns": r.latency.to_json(), "lost": r.lost}
        for r in b.reasons
    ]


def _codes(items: tuple[CodeStat, ...], key: str) -> list[dict[str, Any]]:
    return [
        {key: c.code, "name": c.name, "count": c.count, "per_s": _round(c.per_s), "latency_ns": c.latency.to_json(),
         "lost": c.lost}
        for c in items
    ]


def _requests(b: Breakdown) -> list[dict[str, Any]]:
    return [{"bit": r.bit, "name": r.name, "count": r.count, "share": round(r.share, 6), "lost": r.lost}
            for r in b.requests]


def _breakdown(b: Breakdown) -> dict[str, Any]:
    return {
        "reasons": _reasons(b),
        "userspace_exits": _codes(b.userspace_exits, "code"),
        "hypercalls": _codes(b.hypercalls, "nr"),
        "requests": _requests(b),
        "lost": b.lost,
    }


def _in_userspace(f: InFlight | None) -> dict[str, Any] | None:
    """The userspace exit still with the VMM at the end of the interval, and for how long."""
    return None if f is None else {"code": f.code, "name": decode.userspace_exit_name(f.code), "ns": f.ns}


def vcpu_to_dict(v: VcpuStat) -> dict[str, Any]:
    return {"index": v.index, "tid": v.tid, "vcpu_id": v.vcpu_id, "exits": v.exits,
            "exits_per_s": _round(v.exits_per_s), "comm": v.comm, **_breakdown(v),
            "in_userspace": _in_userspace(v.in_userspace)}


def vm_to_dict(vm: VmStat) -> dict[str, Any]:
    longest = vm.longest_in_userspace
    flight = _in_userspace(longest.in_userspace) if longest is not None else None
    return {
        "pid": vm.pid, "name": vm.name, "exits": vm.exits, "exits_per_s": _round(vm.exits_per_s),
        "exited": vm.exited,
        "vcpus": [vcpu_to_dict(v) for v in vm.vcpus],
        **_breakdown(vm),
        "in_userspace": None if longest is None or flight is None else
        {"tid": longest.tid, "index": longest.index, **flight},
    }


def io_to_list(stats: list[IoStat]) -> list[dict[str, Any]]:
    """A VM's PIO/MMIO accesses in the interval, busiest first."""
    return [{"space": st.space.lower(), "direction": st.direction, "address": st.addr, "count": st.count,
             "per_s": _round(st.per_s)} for st in stats]


def _vms(snap: Snapshot, io: IoSample | None) -> list[dict[str, Any]]:
    if io is None:
        return [vm_to_dict(vm) for vm in snap.vms]
    by_vm = io.by_vm()
    return [{**vm_to_dict(vm), "io": io_to_list(by_vm.get(vm.pid, []))} for vm in snap.vms]


def snapshot_to_dict(snap: Snapshot, io: IoSample | None = None) -> dict[str, Any]:
    """``io``: the PIO/MMIO sample of the same interval (``--io``), as ``io`` of each VM and the top level."""
    h = snap.host
    c = snap.collector
    out = {
        "schema": SCHEMA,
        "time": snap.time,
        "interval_s": snap.interval_s,
        "vms": _vms(snap, io),
        "host": {
            "vms": h.vm_count, "vcpus": h.vcpu_count,
            "exits": h.exits, "exits_per_s": _round(h.exits_per_s),
            "userspace_exits": h.userspace_count, "userspace_exits_per_s": _round(h.userspace_per_s),
            "hypercalls": h.hypercall_count, "hypercalls_per_s": _round(h.hypercalls_per_s),
            "latency_ns": h.latency.to_json(),
            "userspace_latency_ns": h.userspace_latency.to_json(),
            "lost": h.lost,
        },
        "collector": {
            "drops": c.drops, "unmatched_exits": c.unmatched_exits, "unmatched_entries": c.unmatched_entries,
            "poll_ms": round(c.poll_ms, 3),
            "drops_by_map": dict(c.drops_by_map),
            "drops_by_kind": dict(c.drops_by_kind),
            "sources": {k: bool(v) for k, v in c.features.items()},
            "notes": list(c.notes),
        },
    }
    if io is not None:
        out["io"] = {"accesses": sum(a.count for a in io.accesses), "drops": io.drops}
    return out


def snapshot_to_json(snap: Snapshot, filter_text: str = "", io: IoSample | None = None) -> str:
    """One line of JSON (``filter_text``: the active reason filter, reported as ``filter``;
    ``io``: the interval's PIO/MMIO sample, when counted)."""
    return json_dumps({**snapshot_to_dict(snap, io), "filter": filter_text or None}, separators=(",", ":"))
