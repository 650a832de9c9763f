"""Intervals → Snapshots: names, rates, shares, per-VM and host roll-ups, history.

``SnapshotBuilder`` is the one place where raw measurements become what the screens,
the text tables and the JSON show; live, demo, recorded and imported data all pass here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import decode, history
from .gc_policy import paused as gc_paused
from .history import HistorySlot, HistoryStore
from .model import (
    CodeStat,
    HostStat,
    Interval,
    ReasonKey,
    ReasonStat,
    RequestStat,
    Snapshot,
    Stat,
    ThreadInterval,
    VcpuStat,
    VmIdentity,
    VmStat,
    per_second,
)

HOST = ("host",)


def vm_entity(pid: int, start_time: int) -> tuple:
    return ("vm", pid, start_time)


def vcpu_entity(pid: int, start_time: int, tid: int) -> tuple:
    return ("vcpu", pid, start_time, tid)


def _by_count(items):
    return tuple(sorted(items, key=lambda s: (-s.count, getattr(s, "code", 0))))


def reason_stats(reasons: Mapping[ReasonKey, Stat], interval_s: float) -> tuple[ReasonStat, ...]:
    return _by_count(
        ReasonStat(isa, code, decode.exit_reason_name(isa, code), s.count, per_second(s.count, interval_s), s.latency,
                   s.lost)
        for (isa, code), s in reasons.items()
    )


def code_stats(stats: Mapping[int, Stat], interval_s: float, namer) -> tuple[CodeStat, ...]:
    return _by_count(
        CodeStat(code, namer(code), s.count, per_second(s.count, interval_s), s.latency, s.lost)
        for code, s in stats.items()
    )


def request_stats(requests: Mapping[int, int], exits: int, kernel: str | None,
                  lost: Mapping[int, int] | None = None) -> tuple[RequestStat, ...]:
    """``lost``: bit -> exits with the bit that a full map could not take (a bit may have only those)."""
    lost = lost or {}
    stats = (
        RequestStat(bit, decode.request_bit_name(bit, kernel), n, n / exits if exits else 0.0, lost.get(bit, 0))
        for bit, n in {**dict.fromkeys(lost, 0), **requests}.items()
    )
    return tuple(sorted(stats, key=lambda r: (-r.count, r.bit)))


def merge_maps(maps: Iterable[Mapping]) -> dict:
    """Merge {key: Stat} maps (or {key: int} maps) by key."""
    grouped: dict = {}
    for m in maps:
        for k, v in m.items():
            grouped.setdefault(k, []).append(v)
    return {k: (Stat.merge(v) if isinstance(v[0], Stat) else sum(v)) for k, v in grouped.items()}


class SnapshotBuilder:
    """Keeps the history rings and turns each Interval into a Snapshot."""

    def __init__(self, history_len: int = 120):
        self.store = HistoryStore(history_len)
        self.seq = 0

    def reset(self) -> None:
        self.store.clear()
        self.seq = 0

    def build(self, interval: Interval) -> Snapshot:
        with gc_paused():
            return self._build(interval)

    def _build(self, interval: Interval) -> Snapshot:
        dt = interval.interval_s
        self.seq += 1
        self.store.advance()

        threads_by_pid: dict[int, list[ThreadInterval]] = {}
        for t in interval.threads:
            threads_by_pid.setdefault(t.pid, []).append(t)
        identities = dict(interval.vms)
        for pid in threads_by_pid:
            identities.setdefault(pid, VmIdentity(pid=pid, name=f"pid {pid}"))

        live = {vm_entity(i.pid, i.start_time) for i in identities.values()}
        self.store.forget(lambda e: e == HOST or ("vm", *e[1:3]) in live)  # a vCPU lives with its VM

        slot = HistorySlot()
        vms = tuple(
            self._vm(ident, threads_by_pid.get(pid, []), dt, interval.kernel, slot)
            for pid, ident in sorted(identities.items())
        )
        host = HostStat(
            interval_s=dt,
            reasons=reason_stats(merge_maps(_reason_map(v) for v in vms), dt),
            userspace_exits=code_stats(merge_maps(_code_map(v.userspace_exits) for v in vms), dt,
                                       decode.userspace_exit_name),
            hypercalls=code_stats(merge_maps(_code_map(v.hypercalls) for v in vms), dt, decode.hypercall_name),
            requests=request_stats(merge_maps({r.bit: r.count for r in v.requests} for v in vms),
                                   sum(v.exits for v in vms), interval.kernel,
                                   merge_maps({r.bit: r.lost for r in v.requests if r.lost} for v in vms)),
            history_slot=slot,
            entity=HOST,
            vm_count=len(vms),
            vcpu_count=sum(len(v.vcpus) for v in vms),
        )
        self._record(HOST, host, dt)
        slot.view = self.store.freeze()  # the stats were recorded: their history is complete
        return Snapshot(time=interval.time, interval_s=dt, host=host, vms=vms,
                        collector=interval.status, seq=self.seq)

    # ------------------------------------------------------------------ helpers

    def _vm(self, ident: VmIdentity, threads: list[ThreadInterval], dt: float, kernel: str | None,
            slot: HistorySlot) -> VmStat:
        by_tid = {t.tid: t for t in threads}
        tids = set(by_tid) | set(ident.vcpu_index)
        vcpus = []
        for tid in tids:
            t = by_tid.get(tid) or ThreadInterval(pid=ident.pid, tid=tid)
            entity = vcpu_entity(ident.pid, ident.start_time, tid)
            exits = sum(s.count for s in t.reasons.values())
            vcpu = VcpuStat(
                interval_s=dt,
                reasons=reason_stats(t.reasons, dt),
                userspace_exits=code_stats(t.userspace, dt, decode.userspace_exit_name),
                hypercalls=code_stats(t.hypercalls, dt, decode.hypercall_name),
                requests=request_stats(t.requests, exits, kernel, t.requests_lost),
                history_slot=slot,
                entity=entity,
                pid=ident.pid,
                tid=tid,
                index=ident.vcpu_index.get(tid),
                vcpu_id=t.vcpu_id,
                comm=ident.comms.get(tid, ""),
                in_userspace=t.in_userspace,
            )
            self._record(entity, vcpu, dt)
            vcpus.append(vcpu)
        vcpus.sort(key=lambda v: (v.index is None, v.index if v.index is not None else 0, v.tid))
        exits = sum(v.exits for v in vcpus)
        vm = VmStat(
            interval_s=dt,
            reasons=reason_stats(merge_maps(t.reasons for t in threads), dt),
            userspace_exits=code_stats(merge_maps(t.userspace for t in threads), dt, decode.userspace_exit_name),
            hypercalls=code_stats(merge_maps(t.hypercalls for t in threads), dt, decode.hypercall_name),
            requests=request_stats(merge_maps(t.requests for t in threads), exits, kernel,
                                   merge_maps(t.requests_lost for t in threads)),
            history_slot=slot,
            entity=vm_entity(ident.pid, ident.start_time),
            pid=ident.pid,
            name=ident.name,
            start_time=ident.start_time,
            vcpus=tuple(vcpus),
            exited=ident.exited,
        )
        self._record(vm.entity, vm, dt)
        return vm

    def _record(self, entity, b, dt: float) -> None:
        add = self.store.add
        add(entity, history.TOTAL, None, per_second(b.exits, dt))
        add(entity, history.USERSPACE_TOTAL, None, per_second(b.userspace_count, dt))
        for r in b.reasons:
            add(entity, history.REASON, r.key, r.per_s)
        for u in b.userspace_exits:
            add(entity, history.USERSPACE, u.code, u.per_s)


def _reason_map(b) -> dict[ReasonKey, Stat]:
    return {r.key: Stat(r.count, r.latency, r.lost) for r in b.reasons}


def _code_map(items) -> dict[int, Stat]:
    return {c.code: Stat(c.count, c.latency, c.lost) for c in items}

