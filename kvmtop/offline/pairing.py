"""Per-thread pairing of trace events into counts and exact latencies.

Pairing rules (the README quotes them):

1. Everything is per thread (tid); threads never pair with each other, whichever CPU
   an event ran on (a thread that migrates between its exit and its entry still pairs).
2. A ``kvm_exit`` counts one exit for its reason. The thread's next ``kvm_entry`` ends
   it and gives one latency (entry ts − exit ts) for that exit's reason.
3. A second ``kvm_exit`` before an entry leaves the first one unmatched (it keeps its
   count, gives no latency). An entry with no pending exit is an unmatched entry. Exits
   still pending at the end of the capture are unmatched.
4. An entry stamped earlier than its pending exit (clocks of two CPUs disagreeing)
   gives no latency: that exit and that entry are both unmatched.
5. A ``kvm_userspace_exit`` counts one round trip for its ``KVM_EXIT_*`` reason; the
   thread's next ``kvm_entry``, or the entry of its next ``KVM_RUN`` ioctl where the
   capture has syscalls (``sys_enter_ioctl`` with cmd 0xae80), whichever comes first,
   gives its latency. A second userspace exit before that leaves the first unmatched;
   so does the end of the capture.
6. A ``kvm_hypercall`` counts one hypercall for its nr and belongs to its thread's
   pending exit: that exit's latency is also the hypercall's. With no pending exit it
   is counted without a latency.
7. ``kvm_pio`` / ``kvm_mmio`` count one access per (direction, port / gpa), as
   ``perf kvm stat --event=ioport/mmio`` does; the thread's next ``kvm_entry`` gives its
   latency. An ``mmio read`` that completes a pending ``unsatisfied-read`` of the same
   gpa is the same access.
8. A ``requests`` field on ``kvm_exit`` counts, for every set bit, one exit with that
   ``vcpu->requests`` bit pending.

Latencies are integer nanoseconds; count, sum, min and max are exact, percentiles come
from the histogram scheme (``kvmtop.histogram``). State is one small record per thread.
When the events are cut into windows (``TraceSource``), an exit and its latency land in
the window where the exit happened; unmatched counts in the window where they are found.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable

from ..histogram import bucket_index
from ..model import EMPTY_LATENCY, Latency, Stat
from .trace_lines import ENTRY, EXIT, HYPERCALL, MMIO, PIO, RUN, USERSPACE


def new_acc() -> list:
    """[count, latency count, sum, min, max, {bucket: n}]"""
    return [0, 0, 0, 0, 0, {}]


def add_latency(acc: list, v: int) -> None:
    if acc[1]:
        if v < acc[3]:
            acc[3] = v
        elif v > acc[4]:
            acc[4] = v
    else:
        acc[3] = acc[4] = v
    acc[1] += 1
    acc[2] += v
    i = bucket_index(v)
    h = acc[5]
    h[i] = h.get(i, 0) + 1


def acc_latency(acc: list) -> Latency:
    if not acc[1]:
        return EMPTY_LATENCY
    return Latency(acc[1], acc[2], acc[3], acc[4], tuple(sorted(acc[5].items())))


def acc_stat(acc: list) -> Stat:
    return Stat(acc[0], acc_latency(acc))


def merge_accs(accs: Iterable[list]) -> list:
    out = new_acc()
    for a in accs:
        out[0] += a[0]
        if a[1]:
            if not out[1]:
                out[3], out[4] = a[3], a[4]
            else:
                out[3] = min(out[3], a[3])
                out[4] = max(out[4], a[4])
            out[1] += a[1]
            out[2] += a[2]
            h = out[5]
            for i, n in a[5].items():
                h[i] = h.get(i, 0) + n
    return out


class Aggregates:
    """Counts and latency accumulators, keyed by (tid, what)."""

    def __init__(self) -> None:
        self.reasons: dict[tuple, list] = {}  # (tid, (isa, code)) -> acc
        self.userspace: dict[tuple, list] = {}  # (tid, KVM_EXIT code) -> acc
        self.hypercalls: dict[tuple, list] = {}  # (tid, nr) -> acc
        self.pio: dict[tuple, list] = {}  # (tid, (dir, port)) -> acc
        self.mmio: dict[tuple, list] = {}  # (tid, (dir, gpa)) -> acc
        self.requests: dict[tuple, int] = {}  # (tid, bit) -> exits with the bit set
        self.request_exits: dict[int, int] = {}  # tid -> exits that carried a requests field
        self.unmatched_by_tid: dict[int, list[int]] = {}  # tid -> [exits, entries, userspace exits]
        self.first_ts: int | None = None  # the earliest and latest event time seen (ns)
        self.last_ts: int | None = None

    @property
    def unmatched_exits(self) -> int:
        return sum(u[UNMATCHED_EXIT] for u in self.unmatched_by_tid.values())

    @property
    def unmatched_entries(self) -> int:
        return sum(u[UNMATCHED_ENTRY] for u in self.unmatched_by_tid.values())

    @property
    def unmatched_userspace(self) -> int:
        return sum(u[UNMATCHED_USERSPACE] for u in self.unmatched_by_tid.values())

    def tids(self) -> set[int]:
        out = {k[0] for k in self.reasons}
        for table in (self.userspace, self.hypercalls, self.pio, self.mmio, self.requests):
            out.update(k[0] for k in table)
        out.update(self.unmatched_by_tid)
        return out

    @staticmethod
    def by_key(table: dict[tuple, list]) -> dict:
        """Merge a (tid, key) table over threads: key -> acc."""
        grouped: dict = {}
        for (_tid, key), acc in table.items():
            grouped.setdefault(key, []).append(acc)
        return {k: merge_accs(v) for k, v in grouped.items()}

    @staticmethod
    def by_tid(table: dict[tuple, list]) -> dict:
        """Merge a (tid, key) table over keys: tid -> acc."""
        grouped: dict = {}
        for (tid, _key), acc in table.items():
            grouped.setdefault(tid, []).append(acc)
        return {t: merge_accs(v) for t, v in grouped.items()}


UNMATCHED_EXIT, UNMATCHED_ENTRY, UNMATCHED_USERSPACE = range(3)

# Thread state slots: the pending exit (time, accumulator, reason), its hypercall, the pending
# userspace exit (time, accumulator, KVM_EXIT code), the pending pio/mmio.
_EXIT_TS, _EXIT_ACC, _EXIT_KEY, _HC_ACC, _US_TS, _US_ACC, _US_CODE, _IO_TS, _IO_KEY, _IO_ACC = range(10)
_SLOTS = 10


class Pairing:
    """The per-thread state machine (rules in the module docstring).

    With ``slowest`` = N, it also keeps each thread's N slowest exits and N slowest userspace
    round trips (``slow_exits`` / ``slow_userspace``: tid -> a min-heap of at most N tuples
    ``(latency, exit time, reason key)`` / ``(latency, exit time, KVM_EXIT code, ended by)``,
    ended by ``ENTRY`` or ``RUN``): memory is N per thread, whatever the capture's length.
    """

    def __init__(self, slowest: int = 0) -> None:
        self.agg = Aggregates()
        self.states: dict[int, list] = {}
        self.slowest = slowest
        self.slow_exits: dict[int, list] = {}
        self.slow_userspace: dict[int, list] = {}
        self._window = -1

    def run(self, events: Iterable[tuple], window_ns: int | None = None,
            on_window: Callable[[int, Aggregates], None] | None = None) -> None:
        """Consume events (may be called again with more). With ``window_ns``, a new
        aggregate starts whenever ``ts // window_ns`` changes and ``on_window(index,
        agg)`` receives each one as it starts, so the caller holds every window; a pair
        lands in the window of its exit even when its entry is in a later one. Call
        ``finish`` at the end either way."""
        states = self.states
        agg = self.agg
        reasons = agg.reasons
        window = self._window
        keep = self.slowest
        lo, hi = agg.first_ts, agg.last_ts
        for ev in events:
            kind, tid, ts = ev[0], ev[1], ev[2]
            if window_ns is not None and ts // window_ns != window:
                agg.first_ts, agg.last_ts = lo, hi
                window = self._window = ts // window_ns
                agg = self.agg = Aggregates()
                reasons = agg.reasons
                lo = hi = ts
                if on_window is not None:
                    on_window(window, agg)
            elif lo is None:
                lo = hi = ts
            elif ts > hi:
                hi = ts
            elif ts < lo:
                lo = ts
            st = states.get(tid)
            if st is None:
                st = states[tid] = [None] * _SLOTS
            if kind == EXIT:
                if st[_EXIT_TS] is not None:
                    _unmatched(agg, tid, UNMATCHED_EXIT)
                    st[_HC_ACC] = None
                key = ev[3]
                k = (tid, key)
                acc = reasons.get(k)
                if acc is None:
                    acc = reasons[k] = new_acc()
                acc[0] += 1
                st[_EXIT_TS] = ts
                st[_EXIT_ACC] = acc
                st[_EXIT_KEY] = key
                req = ev[5]
                if req is not None:
                    _requests(agg, tid, req)
            elif kind == ENTRY:
                t0 = st[_EXIT_TS]
                if t0 is None:
                    _unmatched(agg, tid, UNMATCHED_ENTRY)
                else:
                    st[_EXIT_TS] = None
                    d = ts - t0
                    if d < 0:
                        _unmatched(agg, tid, UNMATCHED_EXIT)
                        _unmatched(agg, tid, UNMATCHED_ENTRY)
                    else:
                        add_latency(st[_EXIT_ACC], d)
                        if st[_HC_ACC] is not None:
                            add_latency(st[_HC_ACC], d)
                        if keep:
                            _keep(self.slow_exits, tid, keep, (d, t0, st[_EXIT_KEY]))
                    st[_HC_ACC] = None
                if st[_US_TS] is not None:
                    self._userspace_done(st, tid, ts, agg, ENTRY)
                if st[_IO_TS] is not None:
                    d = ts - st[_IO_TS]
                    if d >= 0:
                        add_latency(st[_IO_ACC], d)
                    st[_IO_TS] = None
            elif kind == USERSPACE:
                if st[_US_TS] is not None:
                    _unmatched(agg, tid, UNMATCHED_USERSPACE)
                k = (tid, ev[3])
                acc = agg.userspace.get(k)
                if acc is None:
                    acc = agg.userspace[k] = new_acc()
                acc[0] += 1
                st[_US_TS] = ts
                st[_US_ACC] = acc
                st[_US_CODE] = ev[3]
            elif kind == RUN:
                if st[_US_TS] is not None:
                    self._userspace_done(st, tid, ts, agg, RUN)
            elif kind == HYPERCALL:
                k = (tid, ev[3])
                acc = agg.hypercalls.get(k)
                if acc is None:
                    acc = agg.hypercalls[k] = new_acc()
                acc[0] += 1
                if st[_EXIT_TS] is not None:
                    st[_HC_ACC] = acc
            elif kind in (PIO, MMIO):
                k = (tid, ev[3])
                if kind == MMIO and ev[4] and st[_IO_TS] is not None and st[_IO_KEY] == k:
                    continue  # the completion of a pending unsatisfied read
                table = agg.pio if kind == PIO else agg.mmio
                acc = table.get(k)
                if acc is None:
                    acc = table[k] = new_acc()
                acc[0] += 1
                st[_IO_TS] = ts
                st[_IO_KEY] = k
                st[_IO_ACC] = acc
        agg.first_ts, agg.last_ts = lo, hi

    def finish(self) -> Aggregates:
        """Count what is still pending as unmatched (in the current aggregate) and return it."""
        agg = self.agg
        for tid, st in self.states.items():
            if st[_EXIT_TS] is not None:
                _unmatched(agg, tid, UNMATCHED_EXIT)
            if st[_US_TS] is not None:
                _unmatched(agg, tid, UNMATCHED_USERSPACE)
        self.states.clear()
        return agg

    def _userspace_done(self, st: list, tid: int, ts: int, agg: Aggregates, ended_by: int) -> None:
        t0 = st[_US_TS]
        st[_US_TS] = None
        d = ts - t0
        if d < 0:
            _unmatched(agg, tid, UNMATCHED_USERSPACE)
            return
        add_latency(st[_US_ACC], d)
        if self.slowest:
            _keep(self.slow_userspace, tid, self.slowest, (d, t0, st[_US_CODE], ended_by))


def _unmatched(agg: Aggregates, tid: int, what: int) -> None:
    u = agg.unmatched_by_tid.get(tid)
    if u is None:
        u = agg.unmatched_by_tid[tid] = [0, 0, 0]
    u[what] += 1


def _keep(heaps: dict[int, list], tid: int, n: int, item: tuple) -> None:
    """Keep ``item`` in the thread's min-heap of the n largest (ties: the first one stays)."""
    h = heaps.get(tid)
    if h is None:
        h = heaps[tid] = []
    if len(h) < n:
        heapq.heappush(h, item)
    elif item[0] > h[0][0]:
        heapq.heapreplace(h, item)


def _requests(agg: Aggregates, tid: int, req: int) -> None:
    agg.request_exits[tid] = agg.request_exits.get(tid, 0) + 1
    table = agg.requests
    while req:
        low = req & -req
        k = (tid, low.bit_length() - 1)
        table[k] = table.get(k, 0) + 1
        req ^= low
