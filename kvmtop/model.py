"""The snapshot model: what every source produces and every front end consumes.

Two layers, both frozen:

* ``Interval`` — raw per-thread aggregates of one interval (counts and latency
  histograms keyed by exit reason, ``KVM_EXIT_*`` code, hypercall nr, request bit),
  plus who the VMs are. Live BPF maps, the demo generator, trace imports and
  recordings all yield Intervals.
* ``Snapshot`` — what the UI and the text/JSON output show: host → VM → vCPU with
  names, rates, percentiles, shares and history. ``aggregate.SnapshotBuilder`` is the
  one place that turns Intervals into Snapshots, so a screen cannot tell the sources apart.

Nothing here imports Textual, curses or bcc.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from . import histogram, history
from .columns import CAT_HYPERCALL, CAT_REASON, CAT_USERSPACE, NO_VCPU, KeyTable, StatColumns, checked_array
from .history import EMPTY_SLOT, HistorySlot, HistoryView

ReasonKey = tuple[int, int]


class cached_property:  # noqa: N801 - functools' name and meaning, without its lock (Python < 3.12)
    """Computed on first access, then stored in the instance (immutable objects only)."""

    def __init__(self, fn):
        self.fn = fn
        self.name = fn.__name__
        self.__doc__ = fn.__doc__

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value  # (isa, exit_reason) as the kvm_exit tracepoint reports them


# --------------------------------------------------------------------------- latency


class Latency:
    """Durations in ns: exact count/sum/min/max and a sparse log-linear histogram.

    Immutable. The histogram is kept packed (u8 bucket indices and u64 counts as bytes:
    ~9 bytes a bucket rather than a tuple of two ints), since a big host has tens of
    thousands of them per interval. A merged Latency keeps its parts and sums their
    buckets only when a percentile or the buckets are asked for: roll-ups are built every
    interval, but only the few on screen are ever read. A ``deferred`` one makes its
    buckets only then, the same way.
    """

    __slots__ = ("count", "sum", "min", "max", "_idx", "_cnt", "_parts", "__dict__")
    count: int
    sum: int
    min: int
    max: int
    _idx: bytes  # u8 bucket indices
    _cnt: bytes  # native u64 counts
    _parts: tuple[Latency, ...] | Callable[[], Latency] | None  # a lazy merge's parts, or what makes them

    def __init__(self, count: int = 0, sum: int = 0, min: int = 0, max: int = 0,  # noqa: A002
                 buckets: Iterable[tuple[int, int]] = ()):
        """``buckets``: sorted (bucket index, count) pairs with count > 0."""
        pairs = tuple(buckets)
        idx = bytes(i for i, _ in pairs)
        cnt = np.array([c for _, c in pairs], np.uint64).tobytes()
        self._set(count, sum, min, max, idx, cnt, None)

    def _set(self, count, total, lo, hi, idx, cnt, parts) -> None:
        for name, value in (("count", count), ("sum", total), ("min", lo), ("max", hi),
                            ("_idx", idx), ("_cnt", cnt), ("_parts", parts)):
            object.__setattr__(self, name, value)

    @classmethod
    def from_packed(cls, count: int, total: int, lo: int, hi: int, idx: bytes, cnt: bytes) -> Latency:
        """From packed buckets: u8 indices and native u64 counts, as bytes (the cheapest form)."""
        obj = object.__new__(cls)
        obj._set(count, total, lo, hi, idx, cnt, None)
        return obj

    @classmethod
    def deferred(cls, count: int, total: int, lo: int, hi: int, make: Callable[[], Latency]) -> Latency:
        """Exact count, sum, min and max now; the buckets from ``make()`` (a Latency of the same
        figures) when first asked for."""
        if not count:
            return EMPTY_LATENCY
        obj = object.__new__(cls)
        obj._set(count, total, lo, hi, b"", b"", make)
        return obj

    def __setattr__(self, name, value):
        raise AttributeError(f"Latency is immutable ({name})")

    def _leaves(self, out: list) -> list:
        """The packed Latencies a lazy merge stands for, however deeply merges were nested."""
        parts = self._parts  # read once: another thread may materialise this meanwhile
        if parts is None:
            out.append(self)
        elif callable(parts):
            parts()._leaves(out)
        else:
            for p in parts:
                p._leaves(out)
        return out

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if self._parts is not None:
            leaves = self._leaves([])
            idx = np.frombuffer(b"".join(p._idx for p in leaves), np.uint8)
            cnt = np.frombuffer(b"".join(p._cnt for p in leaves), np.uint64)
            # float64 sums are exact below 2**53 events
            acc = np.bincount(idx, weights=cnt, minlength=histogram.NBUCKETS).astype(np.uint64)
            nz = np.flatnonzero(acc)
            object.__setattr__(self, "_idx", nz.astype(np.uint8).tobytes())
            object.__setattr__(self, "_cnt", acc[nz].tobytes())
            object.__setattr__(self, "_parts", None)
        return np.frombuffer(self._idx, np.uint8), np.frombuffer(self._cnt, np.uint64)

    @property
    def buckets(self) -> tuple[tuple[int, int], ...]:
        idx, cnt = self._arrays()
        return tuple(zip(idx.tolist(), cnt.tolist()))

    def __eq__(self, other) -> bool:
        if not isinstance(other, Latency):
            return NotImplemented
        return (self.count, self.sum, self.min, self.max, self.buckets) == \
            (other.count, other.sum, other.min, other.max, other.buckets)

    def __hash__(self) -> int:
        return hash((self.count, self.sum, self.min, self.max))

    def __repr__(self) -> str:
        return f"Latency(count={self.count}, sum={self.sum}, min={self.min}, max={self.max}, buckets={self.buckets})"

    @classmethod
    def from_values(cls, values: Iterable[int]) -> Latency:
        vals = [int(v) for v in values]
        if not vals:
            return EMPTY_LATENCY
        hist: dict[int, int] = {}
        for v in vals:
            i = histogram.bucket_index(v)
            hist[i] = hist.get(i, 0) + 1
        return cls(len(vals), sum(vals), min(vals), max(vals), tuple(sorted(hist.items())))

    @classmethod
    def merge(cls, items: Iterable[Latency]) -> Latency:
        parts = [x for x in items if x.count]
        if not parts:
            return EMPTY_LATENCY
        if len(parts) == 1:
            return parts[0]
        merged = object.__new__(cls)
        merged._set(sum(x.count for x in parts), sum(x.sum for x in parts), min(x.min for x in parts),
                    max(x.max for x in parts), b"", b"", tuple(parts))
        return merged

    def percentile(self, q: float) -> int:
        if not self.count:
            return 0
        idx, cnt = self._arrays()
        return histogram.percentile(zip(idx.tolist(), cnt.tolist()), q, self.min, self.max)

    @cached_property
    def p50(self) -> int:
        return self.percentile(0.50)

    @cached_property
    def p90(self) -> int:
        return self.percentile(0.90)

    @cached_property
    def p99(self) -> int:
        return self.percentile(0.99)

    @cached_property
    def p999(self) -> int:
        return self.percentile(0.999)

    @property
    def mean(self) -> float:
        return self.sum / self.count if self.count else 0.0

    def to_json(self) -> dict[str, int]:
        return {
            "count": self.count, "min": self.min, "max": self.max, "sum": self.sum,
            "p50": self.p50, "p90": self.p90, "p99": self.p99, "p999": self.p999,
        }


EMPTY_LATENCY = Latency()


@dataclass(frozen=True)
class Stat:
    """Events of one kind in one interval, and the durations paired with them.

    ``lost``: events of this kind that a full BPF map could not take (not in ``count``)."""

    count: int
    latency: Latency = EMPTY_LATENCY
    lost: int = 0

    @classmethod
    def merge(cls, items: Iterable[Stat]) -> Stat:
        parts = list(items)
        return cls(sum(s.count for s in parts), Latency.merge(s.latency for s in parts),
                   sum(s.lost for s in parts))


@dataclass(frozen=True)
class InFlight:
    """A userspace exit whose round trip had not ended when the interval did."""

    code: int  # its KVM_EXIT_* code
    ns: int    # how long the VMM had had it, at the end of the interval


# --------------------------------------------------------------------------- intervals


@dataclass(frozen=True)
class ThreadInterval:
    """One vCPU thread's aggregates over one interval."""

    pid: int
    tid: int
    vcpu_id: int | None = None  # KVM's vcpu_id (the APIC id on x86), when a tracepoint told it
    reasons: Mapping[ReasonKey, Stat] = field(default_factory=dict)
    userspace: Mapping[int, Stat] = field(default_factory=dict)  # KVM_EXIT_* code (see decode)
    hypercalls: Mapping[int, Stat] = field(default_factory=dict)
    requests: Mapping[int, int] = field(default_factory=dict)  # bit -> exits with the bit set
    requests_lost: Mapping[int, int] = field(default_factory=dict)  # bit -> exits a full map lost
    in_userspace: InFlight | None = None


@dataclass(frozen=True)
class VmIdentity:
    """Who a VM is. ``start_time`` (clock ticks since boot) tells a reused pid apart."""

    pid: int
    name: str
    start_time: int = 0
    vcpu_index: Mapping[int, int] = field(default_factory=dict)  # tid -> vCPU index
    comms: Mapping[int, str] = field(default_factory=dict)  # tid -> thread name
    exited: bool = False  # the process was gone when the interval was read (its last counts)


# The note of a source whose kvm_exit never fires (the live collector here, the demo's imitation).
NOTE_NO_EXITS = ("kvm_exit never fired on this kernel: exit counts, latencies and request bits "
                 "have no source; userspace exits are measured")


@dataclass(frozen=True)
class CollectorStatus:
    """The collector's own health and which measurements have a source."""

    drops: int = 0
    unmatched_exits: int = 0
    unmatched_entries: int = 0
    poll_ms: float = 0.0
    drops_by_map: Mapping[str, int] = field(default_factory=dict)
    # events not recorded, per kind: "exits", "userspace", "hypercalls", "requests" (sum = drops)
    drops_by_kind: Mapping[str, int] = field(default_factory=dict)
    # feature -> available: "exits" (kvm_exit/kvm_entry), "requests", "hypercalls",
    # "userspace" (kvm_userspace_exit). Missing keys count as available.
    features: Mapping[str, bool] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # one-line explanations for what is missing

    def has(self, feature: str) -> bool:
        """Whether ``feature`` has a source. Request bits and hypercalls are read at, or
        attributed to, a kvm_exit: where exits have no source, neither have they (one rule
        for live data, recordings and captures alike)."""
        if feature in NEEDS_EXITS and not self.features.get("exits", True):
            return False
        return self.features.get(feature, True)


NEEDS_EXITS = frozenset({"requests", "hypercalls"})


@dataclass(frozen=True, eq=False, init=False)
class Interval:
    """Everything a source measured in one interval.

    The measurements (``data``) are either ThreadIntervals or the same as columns
    (kvmtop.columns.StatColumns, what the snapshot builder reads): a source gives either,
    as ``threads=`` or ``columns=``, and ``threads``/``columns`` make the other form on first
    use. ``dataclasses.replace`` works as for any dataclass (``threads=`` replaces the data).
    """

    time: float  # wall-clock end of the interval (Unix seconds)
    interval_s: float
    vms: Mapping[int, VmIdentity]  # every live VM, idle or not
    status: CollectorStatus
    kernel: str | None  # release of the traced kernel, for request-bit names
    data: tuple[ThreadInterval, ...] | StatColumns
    _other: tuple[ThreadInterval, ...] | StatColumns | None = field(default=None, init=False, repr=False,
                                                                   compare=False)  # the other form, once made

    def __init__(self, time: float, interval_s: float, threads: Iterable[ThreadInterval] | None = None,
                 vms: Mapping[int, VmIdentity] | None = None, status: CollectorStatus | None = None,
                 kernel: str | None = None, *, columns: StatColumns | None = None,
                 data: tuple[ThreadInterval, ...] | StatColumns | None = None):
        s = object.__setattr__
        s(self, "time", time)
        s(self, "interval_s", interval_s)
        s(self, "vms", {} if vms is None else vms)
        s(self, "status", CollectorStatus() if status is None else status)
        s(self, "kernel", kernel)
        if threads is not None:  # given threads win over the data of the interval they replace
            data = tuple(threads)
        elif columns is not None:
            data = columns
        s(self, "data", () if data is None else data)
        s(self, "_other", None)  # the other form, once made

    @property
    def threads(self) -> tuple[ThreadInterval, ...]:
        return self._as(tuple, threads_of)

    @property
    def columns(self) -> StatColumns:
        return self._as(StatColumns, columns_of)

    def _as(self, form: type, convert: Callable[[Any], Any]) -> Any:
        """The data in ``form``: as given, or converted once and kept."""
        data, other = self.data, self._other
        if isinstance(data, form):
            return data
        if not isinstance(other, form):
            other = convert(data)
            object.__setattr__(self, "_other", other)
        return other

    def only(self, pids: Iterable[int]) -> Interval:
        """The VMs ``pids`` (and their threads) only."""
        keep = set(pids)
        vms = {pid: v for pid, v in self.vms.items() if pid in keep}
        data = self.data
        if isinstance(data, tuple):
            return replace(self, data=tuple(t for t in data if t.pid in keep), vms=vms)
        mask = np.isin(data.tpid, np.fromiter(keep, np.int64, len(keep)))
        return replace(self, data=data.with_threads(mask), vms=vms)

    def __eq__(self, other) -> bool:
        if not isinstance(other, Interval):
            return NotImplemented
        if (self.time, self.interval_s, self.vms, self.status, self.kernel) != \
                (other.time, other.interval_s, other.vms, other.status, other.kernel):
            return False
        if not isinstance(self.data, tuple) and not isinstance(other.data, tuple):
            return self.data.equals(other.data)
        return self.threads == other.threads

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------- columns <-> threads


def columns_of(threads: Sequence[ThreadInterval]) -> StatColumns:
    """ThreadIntervals as columns (in their order; a Latency shared by rows is pooled once).
    Values out of range (a damaged recording) raise ValueError."""
    lists: list[list[int]] = [[] for _ in range(20)]
    tpid, ttid, tvcpu, tiu_code, tiu_ns, thread, cat, isa, code, count, lost = lists[:11]
    lcount, lsum, lmin, lmax, hist, qthread, qbit, qcount, qlost = lists[11:]
    pooled: dict[int, int] = {}
    idx_parts: list[bytes] = []
    cnt_parts: list[bytes] = []
    hoff = [0]
    for ti, t in enumerate(threads):
        tpid.append(t.pid)
        ttid.append(t.tid)
        tvcpu.append(NO_VCPU if t.vcpu_id is None else t.vcpu_id)
        flight = t.in_userspace
        tiu_code.append(-1 if flight is None else flight.code)
        tiu_ns.append(0 if flight is None else flight.ns)
        rows = [(CAT_REASON, k[0], k[1], s) for k, s in t.reasons.items()]
        rows += [(CAT_USERSPACE, 0, c, s) for c, s in t.userspace.items()]
        rows += [(CAT_HYPERCALL, 0, c, s) for c, s in t.hypercalls.items()]
        for category, key_isa, key_code, s in rows:
            thread.append(ti)
            cat.append(category)
            isa.append(key_isa)
            code.append(key_code)
            count.append(s.count)
            lost.append(s.lost)
            lat = s.latency
            if lat is EMPTY_LATENCY or not lat.count:
                for column, value in ((lcount, 0), (lsum, 0), (lmin, 0), (lmax, 0), (hist, -1)):
                    column.append(value)
                continue
            for column, value in ((lcount, lat.count), (lsum, lat.sum), (lmin, lat.min), (lmax, lat.max)):
                column.append(value)
            h = pooled.get(id(lat))
            if h is None:
                bi, bc = lat._arrays()
                idx_parts.append(bi.tobytes())
                cnt_parts.append(bc.astype(np.uint64).tobytes())
                hoff.append(hoff[-1] + len(bi))
                h = pooled[id(lat)] = len(hoff) - 2
            hist.append(h)
        for bit, n in {**dict.fromkeys(t.requests_lost, 0), **t.requests}.items():
            for column, value in ((qthread, ti), (qbit, bit), (qcount, n), (qlost, t.requests_lost.get(bit, 0))):
                column.append(value)
    a = checked_array
    keys, kid = KeyTable.of_rows(a(cat, np.uint8, "category"), a(isa, np.uint8, "isa"), a(code, np.uint64, "code"))
    return StatColumns(
        tpid=a(tpid, np.uint32, "pid"), ttid=a(ttid, np.uint32, "tid"), tvcpu=a(tvcpu, np.int64, "vcpu_id"),
        tiu_code=a(tiu_code, np.int64, "userspace code"), tiu_ns=a(tiu_ns, np.uint64, "time in userspace"),
        thread=np.array(thread, np.int32), kid=kid, keys=keys, count=a(count, np.uint64, "count"),
        lost=a(lost, np.uint64, "lost"), lcount=a(lcount, np.uint64, "latency count"),
        lsum=a(lsum, np.uint64, "latency sum"), lmin=a(lmin, np.uint64, "latency min"),
        lmax=a(lmax, np.uint64, "latency max"), hist=np.array(hist, np.int64), hoff=np.array(hoff, np.int64),
        bidx=np.frombuffer(b"".join(idx_parts), np.uint8), bcnt=np.frombuffer(b"".join(cnt_parts), np.uint64),
        qthread=np.array(qthread, np.int32), qbit=a(qbit, np.uint64, "request bit"),
        qcount=a(qcount, np.uint64, "request count"), qlost=a(qlost, np.uint64, "request bits lost"))


def threads_of(cols: StatColumns) -> tuple[ThreadInterval, ...]:
    """Columns as ThreadIntervals (one per thread of the table, in its order)."""
    keys = cols.keys.tuples()
    maps: list[tuple[dict, dict, dict, dict, dict]] = [({}, {}, {}, {}, {}) for _ in range(len(cols.tpid))]
    hoff = cols.hoff.tolist()
    idx_bytes = cols.bidx.tobytes()
    cnt_bytes = cols.bcnt.tobytes()
    lats: dict[tuple, Latency] = {}
    for t, k, n, lost, lc, ls, lo, hi, h in zip(
            cols.thread.tolist(), cols.kid.tolist(), cols.count.tolist(), cols.lost.tolist(),
            cols.lcount.tolist(), cols.lsum.tolist(), cols.lmin.tolist(), cols.lmax.tolist(), cols.hist.tolist()):
        if lc and h >= 0:
            lkey = (lc, ls, lo, hi, h)
            lat = lats.get(lkey)
            if lat is None:
                s, e = hoff[h], hoff[h + 1]
                lat = lats[lkey] = Latency.from_packed(lc, ls, lo, hi, idx_bytes[s:e], cnt_bytes[8 * s:8 * e])
        else:
            lat = EMPTY_LATENCY
        category, isa, code = keys[k]
        stat = Stat(n, lat, lost)
        if category == CAT_REASON:
            maps[t][0][(isa, code)] = stat
        else:
            maps[t][category][code] = stat
    for t, bit, n, lost in zip(cols.qthread.tolist(), cols.qbit.tolist(), cols.qcount.tolist(),
                               cols.qlost.tolist()):
        if n or not lost:  # a bit with only lost exits is not among the counted ones
            maps[t][3][bit] = maps[t][3].get(bit, 0) + n
        if lost:
            maps[t][4][bit] = maps[t][4].get(bit, 0) + lost
    return tuple(ThreadInterval(pid=p, tid=t, vcpu_id=None if v < 0 else v, reasons=m[0], userspace=m[1],
                                hypercalls=m[2], requests=m[3], requests_lost=m[4],
                                in_userspace=InFlight(c, ns) if c >= 0 else None)
                 for p, t, v, c, ns, m in zip(cols.tpid.tolist(), cols.ttid.tolist(), cols.tvcpu.tolist(),
                                              cols.tiu_code.tolist(), cols.tiu_ns.tolist(), maps))


# --------------------------------------------------------------------------- snapshots


_FIELDS: dict[type, frozenset[str]] = {}


class Derivable:
    """Base of the frozen snapshot classes: their one way to a changed copy."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every subclass is a dataclass

    def replace(self, **changes: object):
        """A copy with ``changes`` (fields): ``dataclasses.replace`` without running
        ``__init__`` again (a filtered snapshot of a big host copies thousands) and without
        the original's cached figures, which depend on the fields."""
        cls = type(self)
        names = _FIELDS.get(cls)
        if names is None:
            names = _FIELDS[cls] = frozenset(cls.__dataclass_fields__)
        new = object.__new__(cls)
        state = {k: v for k, v in self.__dict__.items() if k in names}
        state.update(changes)
        new.__dict__.update(state)
        return new


@dataclass(frozen=True)
class ReasonStat:
    isa: int
    code: int
    name: str
    count: int
    per_s: float
    latency: Latency
    lost: int = 0  # events a full map could not take (not in count)

    @property
    def key(self) -> ReasonKey:
        return (self.isa, self.code)


@dataclass(frozen=True)
class CodeStat:
    """A ``KVM_EXIT_*`` reason (code) or a hypercall (code = nr)."""

    code: int
    name: str
    count: int
    per_s: float
    latency: Latency
    lost: int = 0  # events a full map could not take (not in count)


@dataclass(frozen=True)
class RequestStat:
    bit: int
    name: str
    count: int  # exits with the bit set
    share: float  # of all exits in the interval
    lost: int = 0  # exits with the bit that a full map could not take


History = tuple[float, ...]  # oldest first, one value per interval (events per second)


@dataclass(frozen=True, eq=False)
class Breakdown(Derivable):
    """What a VM, a vCPU or the whole host did in one interval, and recently."""

    interval_s: float
    reasons: tuple[ReasonStat, ...] = ()  # most frequent first
    userspace_exits: tuple[CodeStat, ...] = ()
    hypercalls: tuple[CodeStat, ...] = ()
    requests: tuple[RequestStat, ...] = ()
    history_slot: HistorySlot = EMPTY_SLOT  # shared by the whole snapshot
    entity: tuple = ()  # this breakdown's key in ``hist``
    # When a reason filter is applied: which exit reasons / KVM_EXIT_* codes it admits.
    admit_reason: Callable[[ReasonKey], bool] | None = None
    admit_userspace: Callable[[int], bool] | None = None

    @property
    def hist(self) -> HistoryView:
        """The history rings as they were at this snapshot."""
        return self.history_slot.view

    @cached_property
    def exits(self) -> int:
        return sum(r.count for r in self.reasons)

    @property
    def exits_per_s(self) -> float:
        return per_second(self.exits, self.interval_s)

    @cached_property
    def userspace_count(self) -> int:
        return sum(u.count for u in self.userspace_exits)

    @property
    def userspace_per_s(self) -> float:
        return per_second(self.userspace_count, self.interval_s)

    @cached_property
    def hypercall_count(self) -> int:
        return sum(h.count for h in self.hypercalls)

    @property
    def hypercalls_per_s(self) -> float:
        return per_second(self.hypercall_count, self.interval_s)

    @cached_property
    def exits_lost(self) -> int:
        """Exits a full map could not take (the exit figures are lower bounds when > 0)."""
        return sum(r.lost for r in self.reasons)

    @cached_property
    def userspace_lost(self) -> int:
        return sum(u.lost for u in self.userspace_exits)

    @cached_property
    def hypercalls_lost(self) -> int:
        return sum(h.lost for h in self.hypercalls)

    @cached_property
    def lost(self) -> int:
        """Events of any kind (request bits included) a full map could not take."""
        return self.exits_lost + self.userspace_lost + self.hypercalls_lost + sum(r.lost for r in self.requests)

    @cached_property
    def latency(self) -> Latency:
        """Exit latency over all (shown) reasons."""
        return Latency.merge(r.latency for r in self.reasons)

    @cached_property
    def userspace_latency(self) -> Latency:
        return Latency.merge(u.latency for u in self.userspace_exits)

    @property
    def top_reason(self) -> ReasonStat | None:
        return self.reasons[0] if self.reasons else None

    @property
    def top_reason_share(self) -> float:
        top = self.top_reason
        return top.count / self.exits if top and self.exits else 0.0

    @property
    def top_request(self) -> RequestStat | None:
        return self.requests[0] if self.requests else None

    @cached_property
    def history(self) -> History:
        """Exits per second, one value per interval, oldest first (filtered if a filter is on)."""
        if self.admit_reason is None:
            return self.hist.series(self.entity, history.TOTAL)
        return self.hist.sum_series(self.entity, history.REASON, self.admit_reason)

    @cached_property
    def userspace_history(self) -> History:
        """KVM_EXIT_* round trips per second, oldest first (filtered if a filter is on)."""
        if self.admit_userspace is None:
            return self.hist.series(self.entity, history.USERSPACE_TOTAL)
        return self.hist.sum_series(self.entity, history.USERSPACE, self.admit_userspace)

    def reason_history(self, key: ReasonKey) -> History:
        return self.hist.series(self.entity, history.REASON, key)

    def reason(self, key: ReasonKey) -> ReasonStat | None:
        return next((r for r in self.reasons if r.key == key), None)


@dataclass(frozen=True, eq=False)
class VcpuStat(Breakdown):
    pid: int = 0
    tid: int = 0
    index: int | None = None  # the VMM's vCPU number ("CPU 3/KVM"), when known
    vcpu_id: int | None = None  # KVM's vcpu_id (APIC id)
    comm: str = ""
    in_userspace: InFlight | None = None  # its VMM has had an exit this long, at the end

    @property
    def label(self) -> str:
        return f"vCPU {self.index}" if self.index is not None else f"tid {self.tid}"


@dataclass(frozen=True, eq=False)
class VmStat(Breakdown):
    pid: int = 0
    name: str = ""
    start_time: int = 0
    vcpus: tuple[VcpuStat, ...] = ()
    exited: bool = False  # the process exited during this interval

    @property
    def key(self) -> tuple[int, int]:
        return (self.pid, self.start_time)

    def vcpu(self, tid: int) -> VcpuStat | None:
        return next((v for v in self.vcpus if v.tid == tid), None)

    @property
    def vcpu_count(self) -> int:
        return len(self.vcpus)

    @cached_property
    def longest_in_userspace(self) -> VcpuStat | None:
        """The vCPU whose userspace exit has been in flight longest, if any is."""
        busy = [(v.in_userspace.ns, v) for v in self.vcpus if v.in_userspace is not None]
        return max(busy, key=lambda pair: pair[0])[1] if busy else None


@dataclass(frozen=True, eq=False)
class HostStat(Breakdown):
    vm_count: int = 0
    vcpu_count: int = 0


@dataclass(frozen=True, eq=False)
class Snapshot(Derivable):
    """One interval as shown: immutable, complete, source-agnostic."""

    time: float
    interval_s: float
    host: HostStat
    vms: tuple[VmStat, ...] = ()
    collector: CollectorStatus = field(default_factory=CollectorStatus)
    seq: int = 0  # intervals since the source started (or was reset)

    def vm(self, pid: int) -> VmStat | None:
        return next((v for v in self.vms if v.pid == pid), None)

    def reasons_seen(self) -> tuple[str, ...]:
        """Names of the exit reasons and KVM_EXIT_* reasons in this interval."""
        names = {r.name for r in self.host.reasons}
        names.update(u.name for u in self.host.userspace_exits)
        return tuple(sorted(names))


def per_second(count: int, interval_s: float) -> float:
    """A count over an interval as a rate (0 for an empty interval)."""
    return count / interval_s if interval_s > 0 else 0.0
