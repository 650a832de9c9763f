"""The demo source: deterministic, plausible, cheap at scale."""

from __future__ import annotations

import time

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.decode import ISA_VMX, exit_reason_name
from kvmtop.sources.base import Source
from kvmtop.sources.demo import EPOCH, DemoSource
from kvmtop.stepped_feed import demo_feed


def _intervals(n: int, **kwargs):
    src = DemoSource(**kwargs)
    return [src.next_interval() for _ in range(n)]


def test_is_a_paced_source():
    src = DemoSource()
    assert isinstance(src, Source)
    assert src.name == "demo" and src.paced is True
    src.open()
    src.reset()
    src.close()
    src.close()


def test_deterministic_given_seed_and_call_count():
    a, b = _intervals(5, seed=3), _intervals(5, seed=3)
    assert a == b
    c = _intervals(5, seed=4)
    assert a != c
    # time is a fixed epoch plus seq * interval, never the wall clock
    assert [i.time for i in a] == [EPOCH + k * 1.0 for k in range(1, 6)]
    slow = _intervals(2, interval_s=2.0)
    assert slow[1].time == EPOCH + 4.0 and slow[1].interval_s == 2.0


def test_guests_look_like_qemu():
    iv = DemoSource(vms=6).next_interval()
    assert len(iv.vms) == 6
    names = {vm.name for vm in iv.vms.values()}
    assert len(names) == 6
    for vm in iv.vms.values():
        assert 1 <= len(vm.vcpu_index) <= 8
        for tid, index in vm.vcpu_index.items():
            assert vm.comms[tid] == f"CPU {index}/KVM"
    reasons = {exit_reason_name(*k) for t in iv.threads for k in t.reasons}
    assert {"EXTERNAL_INTERRUPT", "EPT_VIOLATION", "EPT_MISCONFIG", "MSR_WRITE", "HLT", "IO_INSTRUCTION",
            "PAUSE_INSTRUCTION", "PREEMPTION_TIMER", "CPUID", "VMCALL"} <= reasons
    assert all(k[0] == ISA_VMX for t in iv.threads for k in t.reasons)
    hypercalls = {nr for t in iv.threads for nr in t.hypercalls}
    assert {5, 10, 11} <= hypercalls  # KICK_CPU, SEND_IPI, SCHED_YIELD
    userspace = {c for t in iv.threads for c in t.userspace}
    assert {2, 6} <= userspace  # KVM_EXIT_IO, KVM_EXIT_MMIO
    bits = {b for t in iv.threads for b in t.requests}
    assert {0, 12, 14} <= bits  # TLB_FLUSH, CLOCK_UPDATE, EVENT


def test_latencies_are_consistent_and_hlt_is_slow():
    snap = None
    b = SnapshotBuilder()
    src = DemoSource(vms=6)
    for _ in range(3):
        snap = b.build(src.next_interval())
    by_name = {r.name: r for r in snap.host.reasons}
    hlt, msr = by_name["HLT"].latency, by_name["MSR_WRITE"].latency
    assert hlt.p50 > 20 * msr.p50
    for r in snap.host.reasons:
        lat = r.latency
        assert lat.count == r.count == sum(c for _, c in lat.buckets)
        assert lat.min <= lat.p50 <= lat.p99 <= lat.max


def test_rates_move_over_time():
    b = SnapshotBuilder()
    src = DemoSource(vms=3)
    for _ in range(40):
        snap = b.build(src.next_interval())
    for vm in snap.vms:
        hist = vm.history
        assert len(hist) == 40
        assert max(hist) > 1.2 * min(hist)


def test_no_exits_mode_has_only_userspace():
    iv = DemoSource(exits=False).next_interval()
    assert iv.status.features["exits"] is False and iv.status.notes
    assert all(not t.reasons and not t.requests for t in iv.threads)
    assert any(t.userspace for t in iv.threads)


def test_churn_replaces_a_guest():
    src = DemoSource(vms=3, churn=2)
    first = set(src.next_interval().vms)
    second = set(src.next_interval().vms)
    assert len(first & second) == 2 and len(second) == 3


def test_bench_scale_is_cheap():
    src = DemoSource(vms=1000, vcpus=8)
    src.next_interval()
    t0 = time.perf_counter()
    iv = src.next_interval()
    assert len(iv.threads) == 8000
    assert time.perf_counter() - t0 < 2.0


def test_demo_feed_steps_by_hand():
    feed = demo_feed(vms=2, warmup=10)
    snap = feed.next_snapshot()
    assert snap.seq == 10 and len(snap.host.history) == 10
    feed.step()
    assert feed.next_snapshot().seq == 11
    feed.stop()
    assert feed.next_snapshot() is None
