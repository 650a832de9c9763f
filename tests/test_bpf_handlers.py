"""The BPF handlers in the kernel, on synthetic events (BPF_PROG_TEST_RUN).

kvmtop.bpf.c built with -DKVMTOP_TEST has raw-tracepoint wrappers that take every value
(pid_tgid and the time included) from ctx->args[]; they run the same handler bodies the
tracepoint probes run. Each test reads the maps back and checks exact values, and the
histogram bucket the C picked against kvmtop.histogram.bucket_index().
"""

from __future__ import annotations

import os
import random
import threading

import pytest

from kvmtop import histogram
from kvmtop.bpf import maps
from kvmtop.bpf.program import ERRNO_FLAG, KIND_HYPERCALL, KIND_SVM, KIND_USERSPACE, KIND_VMX, KVM_RUN
from kvmtop.testing.bpf_testrun import TestProgram

pytestmark = pytest.mark.bpf

if os.geteuid() != 0:
    pytest.skip("BPF_PROG_TEST_RUN needs root", allow_module_level=True)

VMX, SVM = 1, 2
PID, TID = 4242, 4243


class Harness:
    """A loaded test program plus readers that drain its maps into dicts."""

    def __init__(self, **kwargs):
        self.tp = TestProgram(**kwargs)
        p = self.tp.program
        self.readers = {
            "stats": maps.HashReader(p.map_fd("stats"), maps.STAT_KEY, maps.STAT_VAL, p.max_keys),
            "hist": maps.HashReader(p.map_fd("hist"), maps.HIST_KEY, maps.COUNT, p.hist_keys),
            "requests": maps.HashReader(p.map_fd("requests"), maps.REQ_KEY, maps.COUNT, p.max_keys),
            "info": maps.HashReader(p.map_fd("info"), maps.TID, maps.INFO_VAL, p.pending_keys),
            "pending": maps.HashReader(p.map_fd("pending"), maps.TID, maps.PENDING_VAL, p.pending_keys),
        }
        self.base = p.counters()

    def __getattr__(self, name):  # exit, entry, hypercall, userspace_exit, ioctl
        return getattr(self.tp, name)

    def clear(self):
        for r in self.readers.values():
            r.clear()
        self.base = self.tp.program.counters()

    def counters(self) -> dict[str, int]:
        now = self.tp.program.counters()
        return {k: now[k] - self.base[k] for k in now}

    def stats(self) -> dict[tuple, tuple[int, int, int, int]]:
        k, v = self.readers["stats"].drain()
        return {(int(a["pid"]), int(a["tid"]), int(a["kind"]), int(a["code"])):
                (int(b["count"]), int(b["sum_ns"]), int(b["min_ns"]), int(b["max_ns"])) for a, b in zip(k, v)}

    def hist(self) -> dict[tuple, dict[int, int]]:
        out: dict[tuple, dict[int, int]] = {}
        k, v = self.readers["hist"].drain()
        for a, c in zip(k, v):
            key = (int(a["pid"]), int(a["tid"]), int(a["kind"]), int(a["code"]))
            out.setdefault(key, {})[int(a["bucket"])] = int(c)
        return out

    def requests(self) -> dict[tuple, int]:
        k, v = self.readers["requests"].drain()
        return {(int(a["pid"]), int(a["tid"]), int(a["bit"])): int(c) for a, c in zip(k, v)}

    def info(self) -> dict[int, tuple[int, int]]:
        k, v = self.readers["info"].read()
        return {int(t): (int(i["pid"]), int(i["vcpu_id"])) for t, i in zip(k, v)}

    def comms(self) -> dict[int, str]:
        k, v = self.readers["info"].read()
        return {int(t): i["comm"].decode() for t, i in zip(k, v)}

    def close(self):
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


def test_exit_counts_do_not_depend_on_pairing(h):
    for i in range(5):
        h.exit(PID, TID, 100 + i, VMX, 48)  # no entries at all
    assert h.stats()[(PID, TID, KIND_VMX, 48)][0] == 5
    assert h.hist() == {}


# --------------------------------------------------------------------------- hypercalls


def test_hypercall_gets_its_exits_latency(h):
    h.exit(PID, TID, 1000, VMX, 18)  # VMCALL
    h.hypercall(PID, TID, 1010, 5)  # KICK_CPU
    h.entry(PID, TID, 4000)
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
    assert h.counters()["seen_kvm_run"] == 1


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


def test_full_maps_count_drops():
    h = Harness(max_keys=4, hist_keys=2, pending_keys=1024)
    try:
        for code in range(6):  # 6 stat keys into a map of 4
            h.exit(PID, TID, 100, VMX, code)
        assert h.counters()["drop_stats"] == 2
        assert h.counters()["unmatched_exits"] == 5
        h.clear()
        for d in (10, 1000, 100_000):  # 3 buckets of one key into a map of 2
            h.exit(PID, TID, 1000, VMX, 30)
            h.entry(PID, TID, 1000 + d)
        c = h.counters()
        assert c["drop_hist"] == 1 and c["drop_stats"] == 0
        assert h.stats()[(PID, TID, KIND_VMX, 30)] == (3, 101_010, 10, 100_000)
        h.clear()
        h.exit(PID, TID, 10, VMX, 30, requests=0b11111)  # 5 bits into a map of 4
        assert h.counters()["drop_requests"] == 1
        assert len(h.requests()) == 4
    finally:
        h.close()
