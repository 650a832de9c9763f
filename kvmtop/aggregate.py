"""Intervals → Snapshots: names, rates, shares, per-VM and host roll-ups, history.

``SnapshotBuilder`` is the one place where raw measurements become what the screens,
the text tables and the JSON show; live, demo, recorded and imported data all pass here.
It works on the interval's columns (kvmtop.frame): totals are vectorized reductions and
the history is recorded with a few array operations per interval; the Python objects of
the model are made only when a front end reads them (kvmtop.snapshot_views).
"""

from __future__ import annotations

import numpy as np

from . import history
from .columns import CAT_REASON, CAT_USERSPACE
from .frame import Frame
from .gc_policy import paused as gc_paused
from .history import HistorySlot, HistoryStore
from .model import Interval, Snapshot, VmIdentity
from .snapshot_views import HOST, ColumnSnapshot, vcpu_entity, vm_entity

__all__ = ["HOST", "SnapshotBuilder", "vcpu_entity", "vm_entity"]

_U32 = np.uint64(0xFFFFFFFF)


class SnapshotBuilder:
    """Keeps the history rings and turns each Interval into a Snapshot."""

    def __init__(self, history_len: int = 120):
        self.store = HistoryStore(history_len)
        self.seq = 0
        self._live: frozenset | None = None
        self._eid_cache: dict[str, tuple] = {}

    def reset(self) -> None:
        self.store.clear()
        self.seq = 0
        self._live = None
        self._eid_cache.clear()

    def build(self, interval: Interval) -> Snapshot:
        with gc_paused():
            return self._build(interval)

    def _build(self, interval: Interval) -> Snapshot:
        dt = interval.interval_s
        self.seq += 1
        self.store.advance(dt)
        cols = interval.columns
        identities = dict(interval.vms)
        for pid in np.unique(cols.tpid).tolist():
            if pid not in identities:
                identities[pid] = VmIdentity(pid=pid, name=f"pid {pid}")
        frame = Frame.build(cols, identities, dt, interval.kernel)

        live = frozenset(vm_entity(i.pid, i.start_time) for i in identities.values())
        if live != self._live:
            self._live = live
            self.store.forget(lambda e: e == HOST or ("vm", *e[1:3]) in live)  # a vCPU lives with its VM
            self._eid_cache.clear()
        self._record(frame)
        slot = HistorySlot(self.store.freeze())  # the stats were recorded: their history is complete
        return ColumnSnapshot.of(frame, slot, interval.time, interval.status, self.seq)

    # ------------------------------------------------------------------ history

    def _eids(self, name: str, arrays: tuple[np.ndarray, ...], entities) -> np.ndarray:
        """Entity ids, reused while the same entities come in the same order."""
        cached = self._eid_cache.get(name)
        gen = self.store.eid_generation
        if cached is not None and cached[0] == gen and all(
                len(a) == len(b) and np.array_equal(a, b) for a, b in zip(cached[1], arrays)):
            return cached[2]
        eids = self.store.entity_ids(entities())
        self._eid_cache[name] = (self.store.eid_generation, arrays, eids)
        return eids

    def _record(self, frame: Frame) -> None:
        """Counts of this interval into the history (which reads them as rates): totals and
        each reason and KVM_EXIT_* code, for every vCPU, every VM and the host."""
        t, r, store = frame.t, frame.rows, self.store
        vm_pid, vm_start = t.vm_pid.tolist(), t.vm_start.tolist()
        vm_eid = self._eids("vm", (t.vm_pid, t.vm_start),
                            lambda: (vm_entity(p, s) for p, s in zip(vm_pid, vm_start)))
        vc_eid = self._eids("vcpu", (t.vm_pid, t.vm_start, t.vc_vm, t.vc_tid), lambda: (
            vcpu_entity(vm_pid[v], vm_start[v], tid) for v, tid in zip(t.vc_vm.tolist(), t.vc_tid.tolist())))
        host_eid = np.array([store.entity_id(HOST)], np.int64)

        kb = np.where(t.key_cat == CAT_REASON, t.key_isa, history.KB_USERSPACE).astype(np.uint64)
        packable = ((t.key_cat == CAT_REASON) & (t.key_isa < history.KB_USERSPACE)) | (t.key_cat == CAT_USERSPACE)
        packable &= t.key_code <= _U32
        recorded = (t.key_cat == CAT_REASON) | (t.key_cat == CAT_USERSPACE)
        kpart = (kb << np.uint64(32)) | (t.key_code & _U32)

        keys: list[np.ndarray] = []
        values: list[np.ndarray] = []

        def totals(eids, exits, user):
            e = eids.astype(np.uint64) << np.uint64(40)
            keys.extend((e | np.uint64(history.KB_TOTAL << 32), e | np.uint64(history.KB_USERSPACE_TOTAL << 32)))
            values.extend((exits, user))

        def series(owner_eids, kid, counts, entity_of):
            ok = packable[kid]
            keys.append((owner_eids[ok].astype(np.uint64) << np.uint64(40)) | kpart[kid[ok]])
            values.append(counts[ok])
            for i in np.flatnonzero(~ok & recorded[kid]).tolist():  # keys that do not pack: one by one
                cat, isa, code = t.keys.tuples()[int(kid[i])]
                kind, key = (history.REASON, (isa, code)) if cat == CAT_REASON else (history.USERSPACE, code)
                store.add(entity_of(i), kind, key, int(counts[i]))

        totals(vc_eid, r.vc_exits, r.vc_user)
        sel = np.flatnonzero(recorded[r.kid]) if len(r.kid) else np.zeros(0, np.int64)
        if t.duplicate_threads:  # the same thread twice: one series per (vCPU, key)
            packed = r.vc[sel] * max(1, len(t.keys)) + r.kid[sel]
            uniq, inv = np.unique(packed, return_inverse=True)
            counts = np.zeros(len(uniq), np.uint64)
            np.add.at(counts, inv.reshape(-1), r.count[sel])
            vcs, kids = uniq // max(1, len(t.keys)), uniq % max(1, len(t.keys))
        else:
            vcs, kids, counts = r.vc[sel], r.kid[sel], r.count[sel]
        series(vc_eid[vcs], kids, counts, lambda i: vcpu_entity(
            vm_pid[int(t.vc_vm[vcs[i]])], vm_start[int(t.vc_vm[vcs[i]])], int(t.vc_tid[vcs[i]])))

        totals(vm_eid, r.vm_exits, r.vm_user)
        g_vm, g_kid, g_count, _ = r.groups()
        gsel = np.flatnonzero(recorded[g_kid]) if len(g_kid) else np.zeros(0, np.int64)
        series(vm_eid[g_vm[gsel]], g_kid[gsel], g_count[gsel],
               lambda i: vm_entity(vm_pid[int(g_vm[gsel][i])], vm_start[int(g_vm[gsel][i])]))

        totals(host_eid, np.array([r.host_exits], np.uint64), np.array([r.host_user], np.uint64))
        host_count = np.zeros(len(t.keys), np.uint64)
        present = np.zeros(len(t.keys), bool)
        if len(g_kid):
            np.add.at(host_count, g_kid, g_count)
            present[g_kid] = True
        hk = np.flatnonzero(present & recorded)
        series(np.repeat(host_eid, len(hk)), hk, host_count[hk], lambda i: HOST)

        store.add_packed(np.concatenate(keys), np.concatenate(values))
