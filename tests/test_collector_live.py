"""LiveSource end to end: a real KVM guest (kvmtop/testing/kvm_guest.py), the real BPF program."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from fake_maps import FakeReader

from kvmtop import histogram
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.bpf import maps
from kvmtop.bpf.program import (
    CLASSIC,
    KIND_HYPERCALL,
    KIND_REQUEST,
    KIND_SVM,
    KIND_USERSPACE,
    KIND_VMX,
    NO_LATENCY,
    RAW,
    WITH_HYPERCALL,
)
from kvmtop.errors import SourceError
from kvmtop.model import NOTE_NO_EXITS, InFlight, Interval, Stat, VmIdentity
from kvmtop.model import threads_of as model_threads_of
from kvmtop.snapshot_csv import snapshot_to_csv
from kvmtop.snapshot_json import snapshot_to_json
from kvmtop.sources import Source
from kvmtop.sources.collector import LiveSource, build_threads, columns_from_drained
from kvmtop.sources.pairing_state import PairingState
from kvmtop.text import render

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live source needs root")

KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_MMIO = 2, 5, 6
CODES = {"KVM_EXIT_IO": KVM_EXIT_IO, "KVM_EXIT_MMIO": KVM_EXIT_MMIO, "KVM_EXIT_HLT": KVM_EXIT_HLT}
MMIO_SLEEP_MS = 20


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
def test_full_stats_map_reports_exactly_the_events_it_lost(live, kvm_guest):
    """--max-keys 1: `stats` holds 8 rows (one per code and latency bucket); every exit
    beyond them is reported lost, on its row and per kind, and nothing else is."""
    g = kvm_guest("kvmtop-drops", pio=300, mmio=4, hlt=3, mmio_sleep_ms=1)
    src = live(pid=g.pid, max_keys=1)
    g.go()
    reported = g.wait_done()
    iv = src.next_interval()
    us = threads_of(iv, g.pid)[g.tid].userspace
    lost = 0
    for name, n in reported.items():
        stat = us[CODES[name]]
        assert stat.count + stat.lost == n, name  # exact per row
        assert stat.latency.count <= stat.count
        lost += stat.lost
    st = iv.status
    assert lost > 0
    assert st.drops == lost == st.drops_by_kind["userspace"]  # reported drops == events lost
    assert st.drops_by_map["stats"] == lost
    assert sum(s.count for s in us.values()) + lost == sum(reported.values())
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
    b = histogram.bucket_index
    sk, sv = _stats([
        (pid, tid, KIND_VMX, 30, 0, 0, b(100), 1, 100, 100, 100),
        (pid, tid, KIND_VMX, 30, 0, 0, b(900), 1, 900, 900, 900),
        (pid, tid, KIND_VMX, 30, 0, 0, b(2000), 1, 2000, 2000, 2000),
        (pid, tid, KIND_VMX, 30, 0, NO_LATENCY, 0, 7, 0, 0, 0),
        (pid, tid, KIND_VMX, vmx_failed, 0, NO_LATENCY, 0, 1, 0, 0, 0),
        (pid, tid, KIND_USERSPACE, 6, 0, 0, b(20), 1, 20, 20, 20),
        (pid, tid, KIND_USERSPACE, 6, 0, 0, b(30), 1, 30, 30, 30),
        (pid, tid, KIND_VMX, 18, 5, WITH_HYPERCALL, b(2000), 1, 2000, 2000, 2000),
    ])
    assert r["stats"].update(sk, sv) == len(sk)
    r["lost"].update(_rows(maps.LOST_KEY, [{"pid": pid, "tid": tid, "kind": KIND_USERSPACE, "code": 6}]),
                     np.array([4], maps.COUNT))
    info = np.zeros(1, maps.INFO_VAL)
    info["pid"], info["vcpu_id"], info["comm"] = pid, 2, b"CPU 3/KVM"
    r["info"].update(np.array([tid], maps.TID), info)
    # this thread has had a KVM_EXIT_MMIO for 3 s; its exits had request bits 0 (7) and 40 (3)
    state = np.array([_state(tid, pid, us_code=6, us_ns=time.monotonic_ns() - 3 * 10**9)], maps.PENDING_VAL)
    state["req"][0][[0, 40]] = 7, 3
    r["slots"].update(np.array([tid % src.program.slots], maps.INDEX), state)

    iv = src.next_interval()
    t = threads_of(iv, pid)[tid]
    assert t.vcpu_id == 2
    assert set(t.reasons) == {(1, 30), (1, vmx_failed), (1, 18)}
    exit30 = t.reasons[(1, 30)]
    assert exit30.count == 10
    assert (exit30.latency.count, exit30.latency.sum, exit30.latency.min, exit30.latency.max) == (3, 3000, 100, 2000)
    assert t.reasons[(1, vmx_failed)].count == 1 and t.reasons[(1, vmx_failed)].latency.count == 0
    assert t.userspace[6].count == 2 and t.userspace[6].latency.count == 2 and t.userspace[6].lost == 4
    assert t.hypercalls[5].count == 1 and t.hypercalls[5].latency.max == 2000
    assert t.requests == {0: 7, 40: 3}
    assert t.in_userspace.code == 6 and 3 * 10**9 <= t.in_userspace.ns < 60 * 10**9
    assert pid in iv.vms
    # the runner's own thread keeps its /proc name; BPF's comm only fills in what /proc lacks
    assert iv.vms[pid].comms[tid] != "CPU 3/KVM"
    # read and cleared; the pairing state is not cleared: the exit is still in flight
    again = threads_of(src.next_interval(), pid)
    assert not again[tid].reasons and not again[tid].requests and again[tid].in_userspace.code == 6
    src._readers["slots"].update(np.array([tid % src.program.slots], maps.INDEX), np.zeros(1, maps.PENDING_VAL))


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


def _stats(rows):
    """rows: (pid, tid, kind, code, nr, flags, bucket, count, sum, min, max)."""
    names = ("pid", "tid", "kind", "code", "nr", "flags", "bucket")
    k = _rows(maps.STAT_KEY, [dict(zip(names, r[:7])) for r in rows])
    v = _rows(maps.STAT_VAL, [dict(zip(("count", "sum_ns", "min_ns", "max_ns"), r[7:])) for r in rows])
    return k, v


def _drained():
    """Drained map rows of every sort: (stat keys, values, lost keys, counts, request bits)."""
    b = histogram.bucket_index
    x, n, h = KIND_VMX, NO_LATENCY, WITH_HYPERCALL
    rows = [
        (1, 11, x, 30, 0, 0, b(100), 1, 100, 100, 100),
        (1, 11, x, 30, 0, 0, b(200), 2, 410, 200, 210),
        (1, 11, x, 30, 0, n, 0, 2, 0, 0, 0),               # counted without a latency (unmatched)
        (1, 11, x, 30, 0, 0, b(400), 1, 400, 400, 400),
        (1, 12, x, 30, 0, n, 0, 1, 0, 0, 0),
        (1, 11, KIND_USERSPACE, 2, 0, 0, b(10), 1, 10, 10, 10),
        (1, 11, KIND_USERSPACE, 2, 0, 0, b(20), 1, 20, 20, 20),
        (2, 21, KIND_SVM, 0x7B, 0, 0, b(5000), 1, 5000, 5000, 5000),
        (1, 12, x, 18, 5, h, b(3000), 2, 6000, 2990, 3010),   # VMCALL exits that made hypercall 5
        (1, 12, KIND_SVM, 0x81, 5, h, b(3000), 1, 3001, 3001, 3001),  # another exit, same hypercall
        (1, 12, KIND_HYPERCALL, 5, 0, n, 0, 1, 0, 0, 0),    # hypercall 5 with no pending exit
    ]
    sk, sv = _stats(rows[::-1])
    requests = {(2, 21): {3: 5}, (3, 31): {40: 1}}
    lk = _rows(maps.LOST_KEY, [{"pid": 1, "tid": 11, "kind": x, "code": 30},
                               {"pid": 4, "tid": 41, "kind": KIND_USERSPACE, "code": 6},
                               {"pid": 2, "tid": 21, "kind": KIND_REQUEST, "code": 3},
                               {"pid": 1, "tid": 12, "kind": KIND_SVM, "code": 0x7B},  # no stat row
                               {"pid": 3, "tid": 31, "kind": KIND_REQUEST, "code": 50}])  # a bit only lost
    lv = np.array([7, 2, 1, 3, 4], maps.COUNT)
    return sk, sv, lk, lv, requests


def test_build_threads_groups_rows_per_thread():
    b, x = histogram.bucket_index, KIND_VMX
    threads = build_threads(*_drained())
    assert set(threads) == {(1, 11), (1, 12), (2, 21), (3, 31), (4, 41)}
    t11 = threads[(1, 11)]
    s30 = t11.reasons[(x, 30)]
    assert (s30.count, s30.lost) == (6, 7)
    lat = s30.latency
    assert (lat.count, lat.sum, lat.min, lat.max) == (4, 910, 100, 400)
    assert lat.buckets == tuple(sorted({b(100): 1, b(200): 2, b(400): 1}.items()))
    assert t11.userspace[2].latency.buckets == ((b(10), 1), (b(20), 1))
    t12 = threads[(1, 12)]
    assert t12.reasons[(x, 30)].count == 1 and t12.reasons[(x, 30)].latency.count == 0
    assert t12.reasons[(x, 18)].count == 2 and t12.reasons[(KIND_SVM, 0x81)].count == 1
    hc = t12.hypercalls[5]
    assert hc.count == 4 and hc.latency.count == 3  # both exits' rows, and the one without latency
    assert (hc.latency.sum, hc.latency.min, hc.latency.max) == (9001, 2990, 3010)
    assert hc.latency.buckets == ((b(3000), 3),)
    assert t12.requests == {}
    assert threads[(2, 21)].reasons[(KIND_SVM, 0x7B)].latency.p50 == 5000
    assert threads[(2, 21)].requests == {3: 5} and threads[(2, 21)].requests_lost == {3: 1}
    assert threads[(3, 31)].requests == {40: 1} and not threads[(3, 31)].reasons
    assert threads[(3, 31)].requests_lost == {50: 4} and t12.reasons[(KIND_SVM, 0x7B)] == Stat(0, lost=3)
    assert threads[(4, 41)].userspace[6] == Stat(0, lost=2)  # every event of the row was lost


def test_build_threads_sums_lost_rows_of_one_key():
    """Lost events of a key without a stat row, drained as several rows, make one row."""
    sk, sv = _stats([(1, 11, KIND_VMX, 30, 0, 0, histogram.bucket_index(100), 1, 100, 100, 100)])
    lost = {"pid": 4, "tid": 41, "kind": KIND_USERSPACE, "code": 6}
    lk = _rows(maps.LOST_KEY, [lost, {**lost, "code": 7}, lost])
    threads = build_threads(sk, sv, lk, np.array([2, 1, 3], maps.COUNT))
    assert threads[(4, 41)].userspace == {6: Stat(0, lost=5), 7: Stat(0, lost=1)}
    assert threads[(1, 11)].reasons[(KIND_VMX, 30)].count == 1


def test_drained_columns_show_what_their_threads_show():
    """The poll's columns (lost-only rows after every thread's, threads with only request bits
    or an exit in flight) make the snapshot their ThreadIntervals make: no count, lost mark or
    round trip in flight is dropped or lands on another row."""
    flying = {(1, 11): InFlight(6, 2 * 10**9), (5, 51): InFlight(2, 10**9)}
    cols = columns_from_drained(*_drained(), flying)
    cols = cols.with_threads(np.ones(len(cols.tpid), bool), np.arange(len(cols.tpid)))  # every vcpu_id known
    threads = {(t.pid, t.tid): t for t in model_threads_of(cols)}
    assert threads[(5, 51)].in_userspace == InFlight(2, 10**9) and not threads[(5, 51)].reasons
    assert threads[(1, 11)].in_userspace == InFlight(6, 2 * 10**9)
    vms = {pid: VmIdentity(pid, f"vm{pid}", exited=pid == 4) for pid in (1, 2, 3, 4, 5)}
    by_columns = SnapshotBuilder().build(Interval(1.0, 1.0, vms=vms, columns=cols))
    by_threads = SnapshotBuilder().build(Interval(1.0, 1.0, threads=tuple(threads.values()), vms=vms))
    assert snapshot_to_json(by_columns) == snapshot_to_json(by_threads)
    assert render(by_columns) == render(by_threads)
    assert snapshot_to_csv(by_columns) == snapshot_to_csv(by_threads)
    gone = by_columns.vm(4)  # exited, with only lost events: still there, its row marked
    assert gone.exited and gone.lost == 2 and gone.userspace_exits[0].lost == 2
    vm1 = by_columns.vm(1)
    assert vm1.reason((KIND_SVM, 0x7B)).lost == 3 and vm1.reason((KIND_VMX, 30)).lost == 7
    assert vm1.longest_in_userspace.tid == 11 and by_columns.vm(5).vcpus[0].in_userspace.code == 2
    assert {(r.bit, r.count, r.lost) for r in by_columns.vm(3).requests} == {(40, 1, 0), (50, 0, 4)}


def test_build_threads_empty():
    empty = build_threads(np.zeros(0, maps.STAT_KEY), np.zeros(0, maps.STAT_VAL), np.zeros(0, maps.LOST_KEY),
                          np.zeros(0, maps.COUNT))
    assert empty == {}


def _state(tid, pid=1, **fields):
    row = np.zeros(1, maps.PENDING_VAL)[0]
    row["tid"], row["pid"] = tid, pid
    for k, v in fields.items():
        row[k] = v
    return row


def test_pairing_state_gives_what_is_in_flight_and_request_deltas():
    slots = np.zeros(4, maps.PENDING_VAL)
    slots[1] = _state(11, us_ns=1_000, us_code=6)
    slots[2] = _state(12, exit_ns=500)  # an exit in flight, not a userspace one
    pending = np.array([_state(13, us_ns=4_000, us_code=2)], maps.PENDING_VAL)
    ps = PairingState(FakeReader(slots), FakeReader(pending, keyed_by_tid=True))
    flying, requests = ps.poll(now_ns=3_200_001_000)
    assert flying == {(1, 11): InFlight(6, 3_200_000_000), (1, 13): InFlight(2, 3_199_997_000)}
    assert requests == {}

    ps.slots.rows[1]["req"][14] = 5
    ps.pending.rows[0]["req"][3] = 2**32 - 2  # counts wrap: differences still hold
    assert ps.poll(0)[1] == {(1, 11): {14: 5}, (1, 13): {3: 2**32 - 2}}
    ps.slots.rows[1]["req"][14] = 7
    ps.pending.rows[0]["req"][3] = 3
    assert ps.poll(0)[1] == {(1, 11): {14: 2}, (1, 13): {3: 5}}
    assert ps.poll(0)[1] == {}

    # a thread that exited: its last counts are read on two polls, then its state is freed
    ps.slots.rows[1]["req"][14] = 9
    ps.slots.rows[1]["gone"], ps.slots.rows[1]["us_ns"] = 1, 0
    ps.pending.rows[0]["gone"] = 1
    flying, requests = ps.poll(0)
    assert requests == {(1, 11): {14: 2}} and (1, 13) not in flying
    assert ps.slots.rows[1]["tid"] == 11 and len(ps.pending.rows) == 1  # not yet
    ps.slots.rows[1]["req"][14] = 10  # (what the thread did just before it went, read late)
    assert ps.poll(0)[1] == {(1, 11): {14: 1}}
    assert ps.slots.rows[1]["tid"] == 0 and not ps.slots.rows[1]["req"].any()  # free for the next thread
    assert len(ps.pending.rows) == 0
    assert ps.poll(0) == ({}, {})


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_a_vmm_stuck_in_userspace_stays_visible(live, kvm_guest):
    """A round trip counts when it ends; until then the vCPU shows what it waits for, and how long."""
    src = live()
    g = kvm_guest("kvmtop-stuck", mmio=1, mmio_sleep_ms=2500)  # the VMM takes 2.5 s over one MMIO exit
    g.go()
    deadline = time.monotonic() + 20
    seen = None
    while time.monotonic() < deadline:
        t = threads_of(src.next_interval(), g.pid).get(g.tid)
        if t is not None and t.in_userspace is not None and t.in_userspace.ns >= 1_000_000_000:
            seen = t
            break
        time.sleep(0.05)
    assert seen is not None, "the vCPU in its VMM never showed"
    assert seen.in_userspace.code == KVM_EXIT_MMIO
    assert KVM_EXIT_MMIO not in seen.userspace  # not counted before its round trip ends
    reported = g.wait_done()
    us = threads_of(src.next_interval(), g.pid)[g.tid].userspace
    assert us[KVM_EXIT_MMIO].count == reported["KVM_EXIT_MMIO"] == 1
    assert us[KVM_EXIT_MMIO].latency.min >= 2_500_000_000
