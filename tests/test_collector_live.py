"""LiveSource end to end: a real KVM guest (kvmtop/testing/kvm_guest.py), the real BPF program."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from kvmtop import histogram
from kvmtop.bpf import maps
from kvmtop.bpf.program import CLASSIC, KIND_HYPERCALL, KIND_USERSPACE, KIND_VMX, RAW
from kvmtop.errors import SourceError
from kvmtop.model import NOTE_NO_EXITS, Interval
from kvmtop.sources import Source
from kvmtop.sources.collector import LiveSource, build_threads

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live source needs root")

KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_MMIO = 2, 5, 6
CODES = {"KVM_EXIT_IO": KVM_EXIT_IO, "KVM_EXIT_MMIO": KVM_EXIT_MMIO, "KVM_EXIT_HLT": KVM_EXIT_HLT}
MMIO_SLEEP_MS = 20


@pytest.fixture
def live():
    sources: list[LiveSource] = []

    def make(**kwargs) -> LiveSource:
        src = LiveSource(**kwargs)
        sources.append(src)
        src.open()
        return src

    yield make
    for src in sources:
        src.close()


def threads_of(iv: Interval, pid: int):
    return {t.tid: t for t in iv.threads if t.pid == pid}


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
@pytest.mark.parametrize("raw", [True, False], ids=["raw", "classic"])
def test_guest_userspace_exits_counted_exactly(live, kvm_guest, raw):
    src = live(raw=raw)
    assert src.program.probes["kvm:kvm_userspace_exit"] == (RAW if raw else CLASSIC)
    src.next_interval()  # start clean
    g = kvm_guest("kvmtop-test", pio=5, mmio=3, hlt=2, mmio_sleep_ms=MMIO_SLEEP_MS)
    g.go()
    reported = g.wait_done()
    iv = src.next_interval()

    ident = iv.vms[g.pid]
    assert ident.name == "kvmtop-test"
    assert ident.vcpu_index[g.tid] == 0
    assert ident.comms[g.tid] == "CPU 0/KVM"
    ts = threads_of(iv, g.pid)
    assert set(ts) == {g.tid}
    us = ts[g.tid].userspace
    assert {code: us[code].count for code in us} == {CODES[k]: n for k, n in reported.items() if n}

    mmio, pio = us[KVM_EXIT_MMIO].latency, us[KVM_EXIT_IO].latency
    assert mmio.count == reported["KVM_EXIT_MMIO"]  # every MMIO exit was answered with KVM_RUN
    assert pio.count == reported["KVM_EXIT_IO"] - 1  # ... the final DONE_PORT exit was not
    assert mmio.p50 >= MMIO_SLEEP_MS * 1_000_000
    assert mmio.min >= MMIO_SLEEP_MS * 1_000_000
    assert pio.p50 < MMIO_SLEEP_MS * 1_000_000 / 4
    assert sum(c for _, c in mmio.buckets) == mmio.count

    st = iv.status
    assert st.features["userspace"] is True
    if any(t.reasons for t in iv.threads):  # a host where kvm_exit fires
        assert st.features["exits"] is True
    else:  # this host: kvm_userspace_exit fired, kvm_exit never did
        assert st.features["exits"] is False
        assert NOTE_NO_EXITS in st.notes
    assert all("\n" not in n for n in st.notes)
    assert st.drops == 0 and st.drops_by_map == {}
    assert st.poll_ms > 0


@pytest.mark.bpf
@needs_root
def test_interval_fields(live):
    src = live()
    assert isinstance(src, Source) and src.name == "live" and src.paced
    src.next_interval()
    time.sleep(0.2)
    iv = src.next_interval()
    assert 0.19 <= iv.interval_s < 2.0
    assert abs(iv.time - time.time()) < 5
    assert iv.kernel == os.uname().release
    assert set(iv.status.features) == {"exits", "requests", "hypercalls", "userspace"}


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_vm_that_exits_mid_run_disappears_cleanly(live, kvm_guest):
    src = live()
    g = kvm_guest("kvmtop-leaving", pio=1, loop=True)
    g.go()
    time.sleep(0.1)
    iv = src.next_interval()
    assert g.pid in iv.vms and threads_of(iv, g.pid)
    g.close()  # the VM exits between two reads
    iv = src.next_interval()  # the last counts (identity cached) or nothing: never an error
    if g.pid in iv.vms:
        assert iv.vms[g.pid].name == "kvmtop-leaving"
    iv = src.next_interval()
    assert g.pid not in iv.vms
    assert not threads_of(iv, g.pid)


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_idle_vm_is_listed(live, kvm_guest):
    g = kvm_guest("kvmtop-idle")  # VM and vCPU created, never run
    src = live()
    iv = src.next_interval()
    assert iv.vms[g.pid].name == "kvmtop-idle"
    assert not threads_of(iv, g.pid)


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_pid_filter(live, kvm_guest):
    a = kvm_guest("kvmtop-a", pio=4)
    b = kvm_guest("kvmtop-b", pio=6)
    src = live(pid=a.pid)
    assert f"-DFILTER_PID={a.pid}" in src.program.cflags
    a.go(), b.go()
    a.wait_done(), b.wait_done()
    iv = src.next_interval()
    assert set(iv.vms) == {a.pid}
    assert {t.pid for t in iv.threads} == {a.pid}
    assert threads_of(iv, a.pid)[a.tid].userspace[KVM_EXIT_IO].count == 5


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_reset_forgets_counts(live, kvm_guest):
    src = live()
    g = kvm_guest("kvmtop-reset", pio=3)
    g.go()
    g.wait_done()
    src.reset()
    iv = src.next_interval()
    assert not threads_of(iv, g.pid)


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_full_stats_map_reports_drops(live, kvm_guest):
    g = kvm_guest("kvmtop-drops", pio=2, mmio=2, hlt=2)
    src = live(pid=g.pid, max_keys=1)
    g.go()
    g.wait_done()
    iv = src.next_interval()
    assert iv.status.drops > 0
    assert iv.status.drops_by_map.get("stats", 0) > 0
    assert iv.status.drops == sum(iv.status.drops_by_map.values())
    iv = src.next_interval()
    assert iv.status.drops == 0  # deltas, not totals


@pytest.mark.bpf
@needs_root
def test_map_rows_become_thread_intervals(live):
    """Every kind of row, written into the maps from here, comes back grouped per thread."""
    pid, tid = os.getpid(), threading.get_native_id()
    src = live(pid=pid)  # the kernel filter keeps other processes' events out
    r = src._readers
    vmx_failed = 0x80000000 | 33
    stat_rows = [((pid, tid, 30, KIND_VMX), (10, 3000, 100, 2000)),
                 ((pid, tid, vmx_failed, KIND_VMX), (1, 0, 2**64 - 1, 0)),
                 ((pid, tid, 6, KIND_USERSPACE), (2, 50, 20, 30)),
                 ((pid, tid, 5, KIND_HYPERCALL), (1, 2000, 2000, 2000))]
    keys = np.zeros(len(stat_rows), maps.STAT_KEY)
    vals = np.zeros(len(stat_rows), maps.STAT_VAL)
    for i, ((p, t, code, kind), v) in enumerate(stat_rows):
        keys[i]["pid"], keys[i]["tid"], keys[i]["code"], keys[i]["kind"] = p, t, code, kind
        vals[i] = v
    assert r["stats"].update(keys, vals) == len(stat_rows)
    b = histogram.bucket_index
    hist_rows = [((30, KIND_VMX, b(100)), 1), ((30, KIND_VMX, b(900)), 1), ((30, KIND_VMX, b(2000)), 1),
                 ((6, KIND_USERSPACE, b(20)), 1), ((6, KIND_USERSPACE, b(30)), 1),
                 ((5, KIND_HYPERCALL, b(2000)), 1)]
    hk = np.zeros(len(hist_rows), maps.HIST_KEY)
    for i, ((code, kind, bucket), _) in enumerate(hist_rows):
        hk[i]["pid"], hk[i]["tid"], hk[i]["code"], hk[i]["kind"], hk[i]["bucket"] = pid, tid, code, kind, bucket
    r["hist"].update(hk, np.ones(len(hist_rows), maps.COUNT))
    rk = np.zeros(2, maps.REQ_KEY)
    rk["pid"], rk["tid"], rk["bit"] = pid, tid, [0, 40]
    r["requests"].update(rk, np.array([7, 3], maps.COUNT))
    info = np.zeros(1, maps.INFO_VAL)
    info["pid"], info["vcpu_id"], info["comm"] = pid, 2, b"CPU 3/KVM"
    r["info"].update(np.array([tid], maps.TID), info)

    iv = src.next_interval()
    t = threads_of(iv, pid)[tid]
    assert t.vcpu_id == 2
    assert set(t.reasons) == {(1, 30), (1, vmx_failed)}
    exit30 = t.reasons[(1, 30)]
    assert exit30.count == 10
    assert (exit30.latency.count, exit30.latency.sum, exit30.latency.min, exit30.latency.max) == (3, 3000, 100, 2000)
    assert t.reasons[(1, vmx_failed)].count == 1 and t.reasons[(1, vmx_failed)].latency.count == 0
    assert t.userspace[6].count == 2 and t.userspace[6].latency.count == 2
    assert t.hypercalls[5].latency.max == 2000
    assert t.requests == {0: 7, 40: 3}
    assert pid in iv.vms
    # the runner's own thread keeps its /proc name; BPF's comm only fills in what /proc lacks
    assert iv.vms[pid].comms[tid] != "CPU 3/KVM"
    # read and cleared
    assert not threads_of(src.next_interval(), pid)


@pytest.mark.bpf
@needs_root
def test_close_twice_and_use_after_close():
    src = LiveSource(max_keys=64)
    with pytest.raises(SourceError):
        src.next_interval()
    src.open()
    src.close()
    src.close()
    with pytest.raises(SourceError):
        src.next_interval()


# --------------------------------------------------------------------------- pure grouping (no root)


def _rows(dtype, rows):
    a = np.zeros(len(rows), dtype)
    for i, row in enumerate(rows):
        for name, value in row.items():
            a[i][name] = value
    return a


def test_build_threads_groups_rows_per_thread():
    sk = _rows(maps.STAT_KEY, [
        {"pid": 1, "tid": 11, "kind": KIND_VMX, "code": 30},
        {"pid": 1, "tid": 12, "kind": KIND_VMX, "code": 30},
        {"pid": 1, "tid": 11, "kind": KIND_USERSPACE, "code": 2},
        {"pid": 2, "tid": 21, "kind": 2, "code": 0x7B},
    ])
    sv = _rows(maps.STAT_VAL, [
        {"count": 4, "sum_ns": 700, "min_ns": 100, "max_ns": 400},
        {"count": 1, "sum_ns": 0, "min_ns": 2**64 - 1, "max_ns": 0},  # counted, not paired yet
        {"count": 2, "sum_ns": 30, "min_ns": 10, "max_ns": 20},
        {"count": 1, "sum_ns": 5000, "min_ns": 5000, "max_ns": 5000},
    ])
    b = histogram.bucket_index
    hist = [(1, 11, KIND_VMX, 30, b(100), 1), (1, 11, KIND_VMX, 30, b(200), 2), (1, 11, KIND_VMX, 30, b(400), 1),
            (1, 11, KIND_USERSPACE, 2, b(10), 1), (1, 11, KIND_USERSPACE, 2, b(20), 1),
            (2, 21, 2, 0x7B, b(5000), 1),
            (1, 12, KIND_HYPERCALL, 5, b(3000), 2)]  # its stats value was dropped
    hk = _rows(maps.HIST_KEY, [dict(zip(("pid", "tid", "kind", "code", "bucket"), h[:5])) for h in reversed(hist)])
    hv = np.array([h[5] for h in reversed(hist)], maps.COUNT)
    rk = _rows(maps.REQ_KEY, [{"pid": 2, "tid": 21, "bit": 3}, {"pid": 3, "tid": 31, "bit": 40}])
    rv = np.array([5, 1], maps.COUNT)

    threads = build_threads(sk, sv, hk, hv, rk, rv)
    assert set(threads) == {(1, 11), (1, 12), (2, 21), (3, 31)}
    t11 = threads[(1, 11)]
    lat = t11.reasons[(KIND_VMX, 30)].latency
    assert t11.reasons[(KIND_VMX, 30)].count == 4
    assert (lat.count, lat.sum, lat.min, lat.max) == (4, 700, 100, 400)
    assert lat.buckets == tuple(sorted({b(100): 1, b(200): 2, b(400): 1}.items()))
    assert t11.userspace[2].latency.buckets == ((b(10), 1), (b(20), 1))
    t12 = threads[(1, 12)]
    assert t12.reasons[(KIND_VMX, 30)].count == 1 and t12.reasons[(KIND_VMX, 30)].latency.count == 0
    dropped = t12.hypercalls[5]
    assert dropped.count == 0 and dropped.latency.count == 2
    lo, hi = histogram.bucket_bounds(b(3000))
    assert lo <= dropped.latency.min <= dropped.latency.max < hi
    assert threads[(2, 21)].reasons[(2, 0x7B)].latency.p50 == 5000
    assert threads[(2, 21)].requests == {3: 5}
    assert threads[(3, 31)].requests == {40: 1} and not threads[(3, 31)].reasons


def test_build_threads_empty():
    empty = build_threads(np.zeros(0, maps.STAT_KEY), np.zeros(0, maps.STAT_VAL), np.zeros(0, maps.HIST_KEY),
                          np.zeros(0, maps.COUNT), np.zeros(0, maps.REQ_KEY), np.zeros(0, maps.COUNT))
    assert empty == {}
