"""The model API (Snapshot, VmStat, VcpuStat, HostStat) as lazy views of a Frame.

A ``ColumnSnapshot`` is a Snapshot whose ``vms`` and ``host`` are made on first use, and
whose VmStat/VcpuStat/HostStat make their reasons, userspace exits, hypercalls, request
bits and vCPUs only when read. Totals that the columns already hold (exits, userspace
exits, hypercalls) are filled in at once. Everything else a consumer of the model reads
works as before; the fast paths (``frame``) let the dashboard skip the objects.
"""

from __future__ import annotations

import weakref
from dataclasses import fields

import numpy as np

from .columns import CAT_REASON, CAT_USERSPACE
from .frame import Frame
from .history import HistorySlot, HistoryView
from .model import CollectorStatus, HostStat, Snapshot, VcpuStat, VmIdentity, VmStat, cached_property

HOST = ("host",)


def vm_entity(pid: int, start_time: int) -> tuple:
    return ("vm", pid, start_time)


def vcpu_entity(pid: int, start_time: int, tid: int) -> tuple:
    return ("vcpu", pid, start_time, tid)


_VM_FROM_IDENTITY = tuple(f.name for f in fields(VmStat)
                          if f.name in {g.name for g in fields(VmIdentity)} and f.name not in ("vcpus",))


class LazyBreakdown:
    """Reasons, userspace exits and hypercalls from the frame's rows ``_lo:_hi``."""

    history_slot: HistorySlot  # (a field of the Breakdown this is mixed into)

    def replace(self, **changes: object):
        """Derivable.replace of the same figures as plain fields (a view's lazy fields are
        made first: the copy has no frame to make them from)."""
        for f in fields(self):  # type: ignore[arg-type]
            getattr(self, f.name)
        return super().replace(**changes)  # type: ignore[misc]

    _frame: Frame
    _lo: int
    _hi: int
    _first = None

    @cached_property
    def _stats(self):
        batch = self.__dict__.get("_batch")
        if batch is not None:  # one of a snapshot's every-VM tuple: made for all of them at once
            batch.fill(type(self))
            got = self.__dict__.get("_stats")
            if got is not None:
                return got
        return self._frame.stats(self._lo, self._hi, self._first)

    @cached_property
    def reasons(self):
        return self._stats[0]

    @cached_property
    def userspace_exits(self):
        return self._stats[1]

    @cached_property
    def hypercalls(self):
        return self._stats[2]


def _base(frame: Frame, slot: HistorySlot, entity, lo: int, hi: int, totals, lost) -> dict:
    exits, user, hcall = totals
    return {
        "interval_s": frame.t.dt, "history_slot": slot, "entity": entity,
        "admit_reason": frame.admit_reason, "admit_userspace": frame.admit_userspace,
        "_frame": frame, "_lo": lo, "_hi": hi,
        "exits": exits, "userspace_count": user, "hypercall_count": hcall,
        "exits_lost": lost[0], "userspace_lost": lost[1], "hypercalls_lost": lost[2],
    }


class ColumnVcpu(LazyBreakdown, VcpuStat):
    _vc: int

    @cached_property
    def requests(self):
        f = self._frame
        t, vc = f.t, self._vc
        return t.request_stats(int(t.q_lo[vc]), int(t.q_hi[vc]), int(f.unfiltered.vc_exits[vc]))

    @cached_property
    def comm(self):
        return self._frame.t.vc_comm(self._vc)

    @cached_property
    def in_userspace(self):
        return self._frame.t.in_userspace(self._vc)


class ColumnVm(LazyBreakdown, VmStat):
    _vm: int

    @property
    def top_reason(self):
        """``reasons[0]``, or the same made alone (kvmtop.ui fills it in for the rows it shows)."""
        d = self.__dict__
        if "top_reason" in d and "_stats" not in d:
            return d["top_reason"]
        return self.reasons[0] if self.reasons else None

    @cached_property
    def requests(self):
        f = self._frame
        t, vm = f.t, self._vm
        lo, hi = int(t.vm_lo[vm]), int(t.vm_hi[vm])
        q_lo = int(t.q_lo[lo]) if hi > lo else 0
        q_hi = int(t.q_hi[hi - 1]) if hi > lo else 0
        return t.request_stats(q_lo, q_hi, int(f.unfiltered.vm_exits[vm]))

    @cached_property
    def vcpus(self):
        batch = self.__dict__.get("_batch")
        if batch is not None:
            batch.fill_vcpus()
            got = self.__dict__.get("vcpus")
            if got is not None:
                return got
        f = self._frame
        t = f.t
        lo, hi = int(t.vm_lo[self._vm]), int(t.vm_hi[self._vm])
        views = tuple(vcpu_view(f, self.history_slot, vc) for vc in range(lo, hi))
        group = _VcpuGroup(f, self._vm, views)  # their figures: all in one pass, when one is read
        for v in views:
            v.__dict__["_batch"] = group
        return views

    @property
    def vcpu_count(self) -> int:
        """Without making the vCPUs' views (the guests table shows only how many)."""
        t = self._frame.t
        return int(t.vm_hi[self._vm]) - int(t.vm_lo[self._vm])

    @cached_property
    def latency(self):
        return self._frame.vm_latency(self._vm)


class ColumnHost(LazyBreakdown, HostStat):
    @cached_property
    def _first(self):
        return self._frame.host_first_seen()

    @cached_property
    def requests(self):
        f = self._frame
        t = f.t
        return t.request_stats(0, len(t.q_bit), f.unfiltered.host_exits)

    @cached_property
    def latency(self):
        return self._frame.host_latency(CAT_REASON)

    @cached_property
    def userspace_latency(self):
        return self._frame.host_latency(CAT_USERSPACE)


def vcpu_view(frame: Frame, slot: HistorySlot, vc: int) -> ColumnVcpu:
    t, r = frame.t, frame.rows
    vm = int(t.vc_vm[vc])
    pid, start, tid = int(t.vm_pid[vm]), int(t.vm_start[vm]), int(t.vc_tid[vc])
    index, vcpu_id = int(t.vc_index[vc]), int(t.vc_vcpu_id[vc])
    v = object.__new__(ColumnVcpu)
    v.__dict__.update(_base(frame, slot, vcpu_entity(pid, start, tid), int(r.vc_lo[vc]), int(r.vc_hi[vc]),
                            (int(r.vc_exits[vc]), int(r.vc_user[vc]), int(r.vc_hcall[vc])),
                            [int(a[vc]) for a in r.vc_lost]))
    v.__dict__.update(_vc=vc, pid=pid, tid=tid, index=index if index >= 0 else None,
                      vcpu_id=vcpu_id if vcpu_id >= 0 else None)
    return v


def vm_view(frame: Frame, slot: HistorySlot, vm: int) -> ColumnVm:
    t, r = frame.t, frame.rows
    ident = t.idents[vm]
    v = object.__new__(ColumnVm)
    v.__dict__.update(_base(frame, slot, vm_entity(ident.pid, ident.start_time), int(r.vm_lo[vm]),
                            int(r.vm_hi[vm]), (int(r.vm_exits[vm]), int(r.vm_user[vm]), int(r.vm_hcall[vm])),
                            [int(a[vm]) for a in r.vm_lost]))
    v.__dict__["_vm"] = vm
    for name in _VM_FROM_IDENTITY:
        v.__dict__[name] = getattr(ident, name)
    return v


def host_view(frame: Frame, slot: HistorySlot) -> ColumnHost:
    t, r = frame.t, frame.rows
    h = object.__new__(ColumnHost)
    h.__dict__.update(_base(frame, slot, HOST, 0, len(r.kid), (r.host_exits, r.host_user, r.host_hcall),
                            r.host_lost))
    h.__dict__.update(vm_count=t.vm_count, vcpu_count=t.vcpu_count)
    return h


def view_of(b: LazyBreakdown, frame: Frame):
    """The view of the same VM, vCPU or host over another frame of its interval (filtered)."""
    if isinstance(b, ColumnVm):
        return vm_view(frame, b.history_slot, b._vm)
    if isinstance(b, ColumnVcpu):
        return vcpu_view(frame, b.history_slot, b._vc)
    return host_view(frame, b.history_slot)


class _VcpuGroup:
    """The vCPU views of one VM: their reasons, userspace exits and hypercalls are made for
    all of them in one pass when the first one is read. (Views refer to their group, so the
    group refers to them weakly: no reference cycle keeps a snapshot's columns alive.)"""

    def __init__(self, frame: Frame, vm: int, views: tuple):
        self.frame, self.vm = frame, vm
        self.views = [weakref.ref(v) for v in views]

    def fill(self, cls) -> None:
        f = self.frame
        t, r = f.t, f.rows
        lo = int(t.vm_lo[self.vm])
        rows = np.arange(int(r.vm_lo[self.vm]), int(r.vm_hi[self.vm]))
        for ref, st in zip(self.views, f.grouped_stats(rows, r.vc[rows] - lo, len(self.views))):
            v = ref()
            if v is not None:
                v.__dict__.setdefault("_stats", st)


class _Batch:
    """Every VM view of a snapshot (``Snapshot.vms``): reasons, userspace exits, hypercalls
    and vCPUs are made for all of them in one pass when the first one is read (the JSON and
    text front ends and the exporter read them all)."""

    def __init__(self, frame: Frame, vms: tuple):
        self.frame = frame
        self._vms = [weakref.ref(v) for v in vms]  # weakly: the views refer to the batch
        self._vcpus: list | None = None

    @property
    def vms(self) -> list:
        return [v for v in (ref() for ref in self._vms) if v is not None]

    def fill(self, cls) -> None:
        if cls is ColumnVm:
            self._fill_vms()
        elif cls is ColumnVcpu:
            self._fill_vcpu_stats()

    def _fill_vms(self) -> None:
        f = self.frame
        r = f.rows
        stats = f.grouped_stats(np.arange(len(r.kid)), r.vm, f.t.vm_count)
        for vm in self.vms:
            vm.__dict__.setdefault("_stats", stats[vm._vm])

    def fill_vcpus(self) -> None:
        if self._vcpus is not None:
            return
        f, t = self.frame, self.frame.t
        vms = self.vms
        views = [vcpu_view(f, vm.history_slot, vc) for vm in vms
                 for vc in range(int(t.vm_lo[vm._vm]), int(t.vm_hi[vm._vm]))]
        for v in views:
            v.__dict__["_batch"] = self
        self._vcpus = [weakref.ref(v) for v in views]
        at = 0
        for vm in vms:
            n = int(t.vm_hi[vm._vm] - t.vm_lo[vm._vm])
            vm.__dict__.setdefault("vcpus", tuple(views[at:at + n]))
            at += n

    def _fill_vcpu_stats(self) -> None:
        self.fill_vcpus()
        f = self.frame
        r = f.rows
        stats = f.grouped_stats(np.arange(len(r.kid)), r.vc, f.t.vcpu_count)
        for ref in self._vcpus or ():
            v = ref()
            if v is not None:
                v.__dict__.setdefault("_stats", stats[v._vc])


class ColumnSnapshot(Snapshot):
    """A Snapshot over a Frame: ``vms`` and ``host`` are views made when first read."""

    frame: Frame
    _slot: HistorySlot

    @classmethod
    def of(cls, frame: Frame, slot: HistorySlot, time: float, collector: CollectorStatus,
           seq: int) -> ColumnSnapshot:
        s = object.__new__(cls)
        s.__dict__.update(time=time, interval_s=frame.t.dt, collector=collector, seq=seq, frame=frame,
                          _slot=slot, _views={})
        return s

    @property
    def hist(self) -> HistoryView:
        return self._slot.view

    def replace(self, **changes: object):
        """Derivable.replace with the VMs and host made first (the copy is a plain Snapshot)."""
        state = {"host": self.host, "vms": self.vms, **changes}
        new = object.__new__(Snapshot)
        new.__dict__.update({f.name: getattr(self, f.name) for f in fields(Snapshot)})
        new.__dict__.update(state)
        return new

    @cached_property
    def host(self):
        return host_view(self.frame, self._slot)

    @cached_property
    def vms(self):
        vms = tuple(self.vm_at(i) for i in range(self.frame.t.vm_count))
        batch = _Batch(self.frame, vms)
        for vm in vms:
            vm.__dict__["_batch"] = batch
        return vms

    def vm_at(self, i: int) -> ColumnVm:
        views = self.__dict__["_views"]
        v = views.get(i)
        if v is None:
            v = views[i] = vm_view(self.frame, self._slot, i)
        return v

    def vm(self, pid: int):
        i = self.frame.t.vm_by_pid(pid)
        return None if i is None else self.vm_at(i)

    def vm_by_key(self, key: str):
        i = self.frame.t.vm_by_key(key)
        return None if i is None else self.vm_at(i)

    def reasons_seen(self) -> tuple[str, ...]:
        t = self.frame.t
        kid = self.frame.rows.kid
        kids = np.flatnonzero(np.bincount(kid, minlength=len(t.keys))).tolist() if len(kid) else []
        return tuple(sorted({t.name(k) for k in kids if int(t.key_cat[k]) in (CAT_REASON, CAT_USERSPACE)}))

    def filtered(self, admit_reason, admit_userspace) -> ColumnSnapshot:
        return ColumnSnapshot.of(self.frame.filtered(admit_reason, admit_userspace), self._slot, self.time,
                                 self.collector, self.seq)
