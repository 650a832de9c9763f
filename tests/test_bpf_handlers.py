"""The BPF handlers in the kernel, on synthetic events (BPF_PROG_TEST_RUN).

kvmtop.bpf.c built with -DKVMTOP_TEST has raw-tracepoint wrappers that take every value
(pid_tgid and the time included) from ctx->args[]; they run the same handler bodies the
tracepoint probes run. Each test reads the maps back and checks exact values, and the
histogram bucket the C picked against kvmtop.histogram.bucket_index().

An event is counted when its pair completes (or when it is known never to complete: the
thread's next event of that kind, or the thread's exit); until then it is in flight in the
thread's pairing state.
"""

from __future__ import annotations

import os
import random
import threading

import numpy as np
import pytest

from kvmtop import histogram
from kvmtop.bpf.program import (
    ERRNO_FLAG,
    KIND_HYPERCALL,
    KIND_REQUEST,
    KIND_SVM,
    KIND_USERSPACE,
    KIND_VMX,
    KVM_RUN,
    NO_LATENCY,
    WITH_HYPERCALL,
)
from kvmtop.sources import collector
from kvmtop.sources.pairing_state import PairingState
from kvmtop.testing.bpf_testrun import TestProgram

pytestmark = pytest.mark.bpf

if os.geteuid() != 0:
    pytest.skip("BPF_PROG_TEST_RUN needs root", allow_module_level=True)

VMX, SVM = 1, 2
PID, TID = 4242, 4243


class Harness:
    """A loaded test program plus readers of its maps.

    ``stats()`` and ``hist()`` fold the `stats` rows (one per key and latency bucket, or a
    count without latency; an exit's row with WITH_HYPERCALL is also that hypercall's row)
    into per-key (count, sum, min, max) and buckets, the view the old separate maps gave."""

    def __init__(self, **kwargs):
        self.tp = TestProgram(**kwargs)
        p = self.tp.program
        self.readers = collector.readers(p)
        self._unread: dict[str, list] = {"stats": [], "hist": []}
        self.base = p.counters()

    def __getattr__(self, name):  # exit, entry, hypercall, userspace_exit, ioctl, thread_exit
        return getattr(self.tp, name)

    def clear(self):
        for name, r in self.readers.items():
            if name == "slots":
                idx, vals = r.read()
                r.update(idx, np.zeros(len(idx), vals.dtype))
            else:
                r.clear()
        self._unread = {"stats": [], "hist": []}
        self.base = self.tp.program.counters()

    def counters(self) -> dict[str, int]:
        now = self.tp.program.counters()
        return {k: now[k] - self.base[k] for k in now}

    def rows(self) -> dict[tuple, tuple[int, int, int, int]]:
        """Drain `stats`: (pid, tid, kind, code, nr, flags, bucket) -> (count, sum, min, max)."""
        k, v = self.readers["stats"].drain()
        return {(int(a["pid"]), int(a["tid"]), int(a["kind"]), int(a["code"]), int(a["nr"]), int(a["flags"]),
                 int(a["bucket"])): (int(b["count"]), int(b["sum_ns"]), int(b["min_ns"]), int(b["max_ns"]))
                for a, b in zip(k, v)}

    def _fold(self, view: str):
        """The `stats` rows drained since this view was last asked for, folded (each view
        keeps its own rows, as the separate stats and hist maps once did)."""
        rows = self.rows()
        for buf in self._unread.values():
            buf.append(rows)
        parts, self._unread[view] = self._unread[view], []
        stats: dict[tuple, tuple[int, int, int, int]] = {}
        hist: dict[tuple, dict[int, int]] = {}
        for part in parts:
            for (pid, tid, kind, code, nr, flags, bucket), (n, total, lo, hi) in part.items():
                keys = [(pid, tid, kind, code)]
                if flags & WITH_HYPERCALL:
                    keys.append((pid, tid, KIND_HYPERCALL, nr))
                for key in keys:
                    c, t, mn, mx = stats.get(key, (0, 0, UNSET, 0))
                    if flags & NO_LATENCY:
                        stats[key] = (c + n, t, mn, mx)
                        continue
                    stats[key] = (c + n, t + total, min(mn, lo), max(mx, hi))
                    b = hist.setdefault(key, {})
                    b[bucket] = b.get(bucket, 0) + n
        return stats if view == "stats" else hist

    def stats(self) -> dict[tuple, tuple[int, int, int, int]]:
        return self._fold("stats")

    def hist(self) -> dict[tuple, dict[int, int]]:
        return self._fold("hist")

    def requests(self) -> dict[tuple, int]:
        """(pid, tid, bit) -> exits with the bit set, from each thread's (cumulative) state."""
        return {(st["pid"], tid, bit): n for tid, st in self.state().items() for bit, n in st["req"].items()}

    def lost(self) -> dict[tuple, int]:
        k, v = self.readers["lost"].drain()
        return {(int(a["pid"]), int(a["tid"]), int(a["kind"]), int(a["code"])): int(n) for a, n in zip(k, v)}

    def state(self) -> dict[int, dict]:
        """tid -> its pairing state (from `slots` or `pending`), with where it lives."""
        out = {}
        for name in ("slots", "pending"):
            _, vals = self.readers[name].read()
            for row in vals:
                if name == "pending" or row["tid"]:
                    out[int(row["tid"])] = {"where": name, **{f: int(row[f]) for f in
                                            ("exit_ns", "us_ns", "exit_code", "us_code", "pid", "vcpu_id", "gone")},
                                            "req": {b: int(n) for b, n in enumerate(row["req"]) if n}}
        return out

    def info(self) -> dict[int, tuple[int, int]]:
        k, v = self.readers["info"].read()
        return {int(t): (int(i["pid"]), int(i["vcpu_id"])) for t, i in zip(k, v)}

    def comms(self) -> dict[int, str]:
        k, v = self.readers["info"].read()
        return {int(t): i["comm"].decode() for t, i in zip(k, v)}

    def close(self):
        self.readers["slots"].close()
        self.tp.close()


@pytest.fixture(scope="module")
def prog():
    h = Harness()
    yield h
    h.close()


@pytest.fixture
def h(prog):
    prog.clear()
    return prog


UNSET = 2**64 - 1  # stat_val.min_ns before any latency


# --------------------------------------------------------------------------- exit -> entry


DELTAS = [0, 1, 7, 8, 9, 15, 16, 100, 999, 1000, 12_345, 65_536, 1_000_000, 123_456_789,
          2_000_000_000, 10_000_000_000, 17_179_869_183, 17_179_869_184, 30_000_000_000]


def test_exit_entry_latency_exact_for_ns_to_seconds(h):
    t0 = 1_000_000
    for code, d in enumerate(DELTAS):
        h.exit(PID, TID, t0, VMX, code, vcpu_id=3)
        h.entry(PID, TID, t0 + d)
        t0 += d + 10
    stats, hist = h.stats(), h.hist()
    for code, d in enumerate(DELTAS):
        key = (PID, TID, KIND_VMX, code)
        assert stats[key] == (1, d, d, d), d
        assert hist[key] == {histogram.bucket_index(d): 1}, d
    assert len(stats) == len(DELTAS)
    c = h.counters()
    assert c["unmatched_exits"] == 0 and c["unmatched_entries"] == 0
    assert c["seen_exits"] == len(DELTAS)


def test_bucket_index_agrees_with_python_on_many_values(h):
    rng = random.Random(7)
    values = sorted({(1 << e) + off for e in range(36) for off in (-1, 0, 1)} |
                    {rng.randrange(0, 1 << rng.randrange(1, 38)) for _ in range(400)})
    values = [v for v in values if v >= 0]
    t = 1
    for code, d in enumerate(values):
        h.exit(PID, TID, t, VMX, code)
        h.entry(PID, TID, t + d)
        t += d + 1
    hist = h.hist()
    for code, d in enumerate(values):
        assert hist[(PID, TID, KIND_VMX, code)] == {histogram.bucket_index(d): 1}, d


def test_repeated_reason_aggregates_count_sum_min_max(h):
    t = 500
    deltas = [300, 5000, 40, 40, 1_000_000]
    for d in deltas:
        h.exit(PID, TID, t, SVM, 0x7B)
        h.entry(PID, TID, t + d)
        t += d + 1000
    assert h.stats() == {(PID, TID, KIND_SVM, 0x7B): (5, sum(deltas), 40, 1_000_000)}
    expect: dict[int, int] = {}
    for d in deltas:
        expect[histogram.bucket_index(d)] = expect.get(histogram.bucket_index(d), 0) + 1
    assert h.hist() == {(PID, TID, KIND_SVM, 0x7B): expect}


def test_vmx_flag_bits_are_kept_in_the_code(h):
    reason = 0x80000000 | 33  # FAILED_VMENTRY | INVALID_STATE, as the tracepoint gives it
    h.exit(PID, TID, 10, VMX, reason)
    h.entry(PID, TID, 30)
    assert h.stats() == {(PID, TID, KIND_VMX, reason): (1, 20, 20, 20)}


def test_second_exit_before_entry_leaves_the_first_unmatched(h):
    h.exit(PID, TID, 100, VMX, 30)
    h.exit(PID, TID, 200, VMX, 12)
    h.entry(PID, TID, 250)
    stats = h.stats()
    assert stats[(PID, TID, KIND_VMX, 30)] == (1, 0, UNSET, 0)  # counted, no latency
    assert stats[(PID, TID, KIND_VMX, 12)] == (1, 50, 50, 50)
    assert h.hist() == {(PID, TID, KIND_VMX, 12): {histogram.bucket_index(50): 1}}
    c = h.counters()
    assert (c["unmatched_exits"], c["unmatched_entries"]) == (1, 0)


def test_entry_without_exit_is_unmatched(h):
    h.entry(PID, TID + 100, 1000)  # thread never seen
    h.exit(PID, TID, 100, VMX, 30)
    h.entry(PID, TID, 150)
    h.entry(PID, TID, 170)  # the exit was already paired
    assert h.stats() == {(PID, TID, KIND_VMX, 30): (1, 50, 50, 50)}
    c = h.counters()
    assert (c["unmatched_exits"], c["unmatched_entries"]) == (0, 2)


def test_exits_without_entries_still_count_exactly_once(h):
    for i in range(5):
        h.exit(PID, TID, 100 + i, VMX, 48)  # no entries at all
    # each exit counts (without a latency) when the next one replaces it; the last is in flight
    assert h.stats() == {(PID, TID, KIND_VMX, 48): (4, 0, UNSET, 0)}
    assert h.state()[TID]["exit_ns"] == 104
    h.thread_exit(PID, TID)  # ... and counts when its thread exits
    assert h.stats() == {(PID, TID, KIND_VMX, 48): (1, 0, UNSET, 0)}
    assert h.hist() == {}
    assert h.state()[TID]["gone"] == 1 and h.state()[TID]["exit_ns"] == 0
    h.thread_exit(PID, TID)  # (once is enough)
    assert h.stats() == {}
    assert h.counters()["unmatched_exits"] == 5


def test_thread_exit_counts_what_is_in_flight_and_marks_its_state_gone(h):
    h.exit(PID, TID, 100, VMX, 30, requests=0b10)
    h.hypercall(PID, TID, 110, 9)
    h.userspace_exit(PID, TID + 1, 200, 6)
    assert set(h.state()) == {TID, TID + 1}
    h.thread_exit(PID, TID)
    h.thread_exit(PID, TID + 1)
    h.thread_exit(PID, TID + 2)  # a thread never seen: nothing happens
    assert h.stats() == {(PID, TID, KIND_VMX, 30): (1, 0, UNSET, 0), (PID, TID, KIND_HYPERCALL, 9): (1, 0, UNSET, 0),
                         (PID, TID + 1, KIND_USERSPACE, 6): (1, 0, UNSET, 0)}
    st = h.state()
    assert {tid: s["gone"] for tid, s in st.items()} == {TID: 1, TID + 1: 1}  # user space frees them
    assert st[TID]["req"] == {1: 1} and st[TID]["exit_ns"] == st[TID + 1]["us_ns"] == 0  # last counts kept
    h.exit(PID + 1, TID, 300, VMX, 12)  # the tid of a new thread, before user space freed the old one's
    h.entry(PID + 1, TID, 350)
    assert h.stats() == {(PID + 1, TID, KIND_VMX, 12): (1, 50, 50, 50)}
    assert h.state()[TID]["gone"] == 0 and h.state()[TID]["pid"] == PID + 1


def test_threads_sharing_a_slot_pair_separately(h):
    slots = h.tp.program.slots
    a, b, c = TID, TID + slots, TID + 2 * slots  # one slot index: a owns it, b and c use the hash
    for i, tid in enumerate((a, b, c)):
        h.exit(PID, tid, 1000 + i, VMX, 30)
    where = {tid: st["where"] for tid, st in h.state().items()}
    assert where == {a: "slots", b: "pending", c: "pending"}
    for i, tid in enumerate((c, a, b)):
        h.entry(PID, tid, 2000 + i)
    assert h.stats() == {(PID, a, KIND_VMX, 30): (1, 1001, 1001, 1001), (PID, b, KIND_VMX, 30): (1, 1001, 1001, 1001),
                         (PID, c, KIND_VMX, 30): (1, 998, 998, 998)}
    h.thread_exit(PID, a)
    PairingState(h.readers["slots"], h.readers["pending"]).forget([a])  # as user space does
    h.userspace_exit(PID, TID + 3 * slots, 3000, 2)  # the next new thread of that index takes the slot
    assert {tid: st["where"] for tid, st in h.state().items()} == {b: "pending", c: "pending",
                                                                    TID + 3 * slots: "slots"}
    assert h.counters()["unmatched_entries"] == 0


# --------------------------------------------------------------------------- hypercalls


def test_hypercall_gets_its_exits_latency(h):
    h.exit(PID, TID, 1000, VMX, 18)  # VMCALL
    h.hypercall(PID, TID, 1010, 5)  # KICK_CPU
    h.entry(PID, TID, 4000)
    # one map row carries both: the exit's, marked with the hypercall it made
    assert h.rows() == {(PID, TID, KIND_VMX, 18, 5, WITH_HYPERCALL, histogram.bucket_index(3000)):
                        (1, 3000, 3000, 3000)}
    h.exit(PID, TID, 5000, VMX, 18)
    h.hypercall(PID, TID, 5010, 5)
    h.entry(PID, TID, 8000)
    stats, hist = h.stats(), h.hist()
    assert stats[(PID, TID, KIND_VMX, 18)] == (1, 3000, 3000, 3000)
    assert stats[(PID, TID, KIND_HYPERCALL, 5)] == (1, 3000, 3000, 3000)
    assert hist[(PID, TID, KIND_HYPERCALL, 5)] == {histogram.bucket_index(3000): 1}


def test_hypercall_without_pending_exit_is_counted_without_latency(h):
    h.hypercall(PID, TID, 10, 9)
    h.exit(PID, TID, 20, VMX, 30)  # a later, unrelated exit: the hypercall is not carried over
    h.entry(PID, TID, 25)
    stats = h.stats()
    assert stats[(PID, TID, KIND_HYPERCALL, 9)] == (1, 0, UNSET, 0)
    assert (PID, TID, KIND_HYPERCALL, 9) not in h.hist()


# --------------------------------------------------------------------------- requests


def test_request_bits_counted_per_bit(h):
    bits = 0b1001 | 1 << 40
    h.exit(PID, TID, 10, VMX, 30, requests=bits)
    h.exit(PID, TID, 20, VMX, 30, requests=1 << 63 | 1)
    h.exit(PID, TID, 30, VMX, 30, requests=0)
    h.entry(PID, TID, 40)
    assert h.requests() == {(PID, TID, 0): 2, (PID, TID, 3): 1, (PID, TID, 40): 1, (PID, TID, 63): 1}
    assert h.stats()[(PID, TID, KIND_VMX, 30)][0] == 3


def test_vcpu_id_recorded_per_thread(h):
    h.exit(PID, TID, 10, VMX, 30, vcpu_id=6)
    h.exit(PID, TID + 1, 10, VMX, 30, vcpu_id=0)
    info = h.info()
    assert info[TID] == (PID, 6) and info[TID + 1] == (PID, 0)
    h.exit(PID, TID, 20, VMX, 30, vcpu_id=7)  # a changed id is rewritten
    assert h.info()[TID] == (PID, 7)


def test_thread_info_keeps_the_comm_of_first_sight(h):
    """BPF keeps the thread name it saw (here: the test runner's, which runs the program)."""
    h.userspace_exit(PID, TID + 5, 10, 2)  # a thread seen only in userspace exits gets info too
    with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
        comm = f.read().strip()
    assert h.comms()[TID + 5] == comm[:15]
    assert h.info()[TID + 5] == (PID, 0xFFFFFFFF)  # no vcpu_id known yet


# --------------------------------------------------------------------------- userspace round trips


def test_userspace_exit_then_kvm_run_is_a_round_trip(h):
    h.userspace_exit(PID, TID, 1000, 6)  # KVM_EXIT_MMIO
    h.ioctl(PID, TID, 1500, cmd=0x1234)  # another ioctl: ignored
    h.ioctl(PID, TID, 21_000, cmd=KVM_RUN)
    h.entry(PID, TID, 21_500)  # the round trip already ended at KVM_RUN
    assert h.stats() == {(PID, TID, KIND_USERSPACE, 6): (1, 20_000, 20_000, 20_000)}
    assert h.hist() == {(PID, TID, KIND_USERSPACE, 6): {histogram.bucket_index(20_000): 1}}
    assert h.state()[TID]["us_ns"] == 0 and h.counters()["seen_userspace"] == 1


def test_userspace_exit_is_in_flight_until_its_kvm_run(h):
    h.userspace_exit(PID, TID, 1000, 6)
    st = h.state()[TID]
    assert (st["us_ns"], st["us_code"], st["pid"]) == (1000, 6, PID)
    assert h.stats() == {}  # counted when its round trip ends
    h.userspace_exit(PID, TID, 2000, 2)  # no KVM_RUN in between: the first counts without latency
    h.ioctl(PID, TID, 2500)
    assert h.stats() == {(PID, TID, KIND_USERSPACE, 6): (1, 0, UNSET, 0),
                         (PID, TID, KIND_USERSPACE, 2): (1, 500, 500, 500)}
    assert h.state()[TID]["us_ns"] == 0


def test_userspace_round_trip_ends_at_kvm_entry_without_ioctl(h):
    h.userspace_exit(PID, TID, 1000, 2)  # KVM_EXIT_IO
    h.entry(PID, TID, 1700)
    h.ioctl(PID, TID, 1800)  # too late: nothing pending
    assert h.stats() == {(PID, TID, KIND_USERSPACE, 2): (1, 700, 700, 700)}


def test_userspace_errno_code_convention(h):
    from kvmtop.decode.userspace_exits import userspace_error_code

    h.userspace_exit(PID, TID, 100, 0, errno=-4)  # -EINTR: "restart"
    h.ioctl(PID, TID, 400)
    code = ERRNO_FLAG | 4
    assert code == userspace_error_code(-4)
    assert h.stats() == {(PID, TID, KIND_USERSPACE, code): (1, 300, 300, 300)}


# --------------------------------------------------------------------------- threads, pids


def test_interleaved_threads_do_not_mix(h):
    a, b = TID, TID + 1
    h.exit(PID, a, 100, VMX, 30)
    h.exit(PID, b, 150, VMX, 30)
    h.userspace_exit(PID, b, 160, 2)
    h.entry(PID, a, 300)
    h.ioctl(PID, b, 1160)
    h.entry(PID, b, 1150 + 1000)
    stats = h.stats()
    assert stats[(PID, a, KIND_VMX, 30)] == (1, 200, 200, 200)
    assert stats[(PID, b, KIND_VMX, 30)] == (1, 2000, 2000, 2000)
    assert stats[(PID, b, KIND_USERSPACE, 2)] == (1, 1000, 1000, 1000)
    c = h.counters()
    assert (c["unmatched_exits"], c["unmatched_entries"]) == (0, 0)


def test_pid_filter_in_the_kernel():
    h = Harness(pid=PID)
    try:
        h.exit(PID + 1, 9, 10, VMX, 30)
        h.entry(PID + 1, 9, 20)
        h.userspace_exit(PID + 1, 9, 30, 2)
        h.exit(PID, TID, 10, VMX, 30)
        h.entry(PID, TID, 20)
        assert h.stats() == {(PID, TID, KIND_VMX, 30): (1, 10, 10, 10)}
        assert h.counters()["seen_exits"] == 1
    finally:
        h.close()


# --------------------------------------------------------------------------- full maps


def check_exact(h: Harness, events: dict[tuple, int]) -> dict[str, int]:
    """Every event is either in `stats` or counted as dropped, per kind and (while `lost` has
    room) per row: count + lost == the events of each row. Returns the drop counters."""
    stats, lost = h.stats(), h.lost()
    for key, n in events.items():
        assert stats.get(key, (0,))[0] + lost.get(key, 0) == n, key
    c = h.counters()
    kinds = {KIND_USERSPACE: "drop_userspace", KIND_HYPERCALL: "drop_hypercalls"}
    for name in ("drop_exits", "drop_userspace", "drop_hypercalls"):
        dropped = sum(n - stats.get(key, (0,))[0] for key, n in events.items()
                      if kinds.get(key[2], "drop_exits") == name)
        assert c[name] == dropped, name
    return c


def test_full_stats_map_drops_exactly_the_events_it_could_not_take():
    h = Harness(max_keys=4, hist_keys=4)  # `stats` holds 4 rows
    try:
        events: dict[tuple, int] = {}
        t = 1000
        for i in range(12):  # 6 reasons (one latency bucket each), twice: 6 rows into 4
            code = i % 6
            h.exit(PID, TID, t, VMX, code)
            h.entry(PID, TID, t + 100)
            events[(PID, TID, KIND_VMX, code)] = events.get((PID, TID, KIND_VMX, code), 0) + 1
            t += 1000
        c = check_exact(h, events)
        assert c["drop_exits"] == 4 and c["drop_lost"] == 0
        assert h.counters()["drop_pending"] == 0

        h.clear()
        deltas = (10, 1000, 100_000, 1000)  # 3 buckets of one reason into 2 free rows
        h.exit(PID, TID + 1, 1, VMX, 77)
        h.entry(PID, TID + 1, 2)
        h.exit(PID, TID + 1, 1, VMX, 78)
        h.entry(PID, TID + 1, 2)  # 2 of 4 rows used
        for d in deltas:
            h.exit(PID, TID, t, VMX, 30)
            h.entry(PID, TID, t + d)
            t += 200_000
        stats, lost = h.stats(), h.lost()
        # the whole event goes, count and latency together: the latencies never fall short of the count
        assert stats[(PID, TID, KIND_VMX, 30)][0] == 3 and lost == {(PID, TID, KIND_VMX, 30): 1}
        assert h.counters()["drop_exits"] == 1
    finally:
        h.close()


def test_drops_are_counted_per_kind_and_per_row():
    h = Harness(max_keys=4, hist_keys=1, lost_keys=4)  # one `stats` row, four `lost` rows
    try:
        h.exit(PID, TID, 1, VMX, 1)
        h.entry(PID, TID, 5)  # takes the only row
        h.userspace_exit(PID, TID, 10, 2)
        h.ioctl(PID, TID, 20)
        h.exit(PID, TID, 30, VMX, 18)
        h.hypercall(PID, TID, 31, 5)
        h.entry(PID, TID, 40)  # an exit and its hypercall: two events lost
        h.hypercall(PID, TID, 50, 6)  # no pending exit: counted alone, lost alone
        c = h.counters()
        assert (c["drop_exits"], c["drop_userspace"], c["drop_hypercalls"]) == (1, 1, 2)
        assert h.lost() == {(PID, TID, KIND_USERSPACE, 2): 1, (PID, TID, KIND_VMX, 18): 1,
                            (PID, TID, KIND_HYPERCALL, 5): 1, (PID, TID, KIND_HYPERCALL, 6): 1}
        assert c["drop_lost"] == 0
        h.clear()
        for code in range(6):  # `lost` itself is full after 4 rows: the per-kind counter stays exact
            h.userspace_exit(PID, TID, 100 * code + 1, code)
            h.ioctl(PID, TID, 100 * code + 50)
        c = h.counters()
        assert c["drop_userspace"] == 5 and c["drop_lost"] == 1
        assert sum(h.lost().values()) == 4
    finally:
        h.close()


def test_without_pairing_state_events_count_and_request_bits_drop_per_bit():
    h = Harness(max_keys=2, pending_keys=1)  # `pending` holds 1 thread: a third on one slot has no state
    try:
        slots = h.tp.program.slots
        a, b, c = TID, TID + slots, TID + 2 * slots
        for tid in (a, b, c):
            h.exit(PID, tid, 10, VMX, 30, requests=0b101)
            h.entry(PID, tid, 20)
        assert h.requests() == {(PID, a, 0): 1, (PID, a, 2): 1, (PID, b, 0): 1, (PID, b, 2): 1}
        c_ = h.counters()
        assert c_["drop_requests"] == 2 and c_["drop_pending"] == 1
        assert h.lost() == {(PID, c, KIND_REQUEST, 0): 1, (PID, c, KIND_REQUEST, 2): 1}
        stats = h.stats()
        assert stats[(PID, c, KIND_VMX, 30)] == (1, 0, UNSET, 0)  # counted, without a latency
        assert stats[(PID, a, KIND_VMX, 30)] == (1, 10, 10, 10)
    finally:
        h.close()
