"""Columns of an interval, the frame reduced from them, history through packed keys."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kvmtop import history as h
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.model import InFlight, Interval, Latency, Stat, ThreadInterval, columns_of, threads_of
from kvmtop.snapshot_json import snapshot_to_json
from kvmtop.sources.demo import DemoSource

latencies = st.lists(st.integers(1, 10**9), max_size=5).map(Latency.from_values)
stats = st.builds(Stat, st.integers(0, 10**6), latencies, st.integers(0, 3))
threads = st.builds(
    ThreadInterval, pid=st.integers(1, 50), tid=st.integers(1, 10**6),
    vcpu_id=st.one_of(st.none(), st.integers(0, 64)),
    reasons=st.dictionaries(st.tuples(st.sampled_from([1, 2]), st.integers(0, 2**32 - 1)), stats, max_size=4),
    userspace=st.dictionaries(st.integers(0, 2**32 - 1), stats, max_size=3),
    hypercalls=st.dictionaries(st.integers(0, 2**64 - 1), stats, max_size=2),
    requests=st.dictionaries(st.integers(0, 63), st.integers(1, 100), max_size=3),
    requests_lost=st.dictionaries(st.integers(0, 63), st.integers(1, 9), max_size=2),
    in_userspace=st.one_of(st.none(), st.builds(InFlight, st.integers(0, 40), st.integers(0, 10**10))))


@settings(max_examples=60, deadline=None)
@given(st.lists(threads, max_size=6))
def test_threads_round_trip_through_columns(ts):
    back = threads_of(columns_of(ts))
    assert back == tuple(ts)


def test_out_of_range_values_are_a_clear_error():
    t = ThreadInterval(pid=1, tid=2, userspace={2**70: Stat(1)})
    with pytest.raises(ValueError, match="code out of range"):
        columns_of([t])


def test_an_interval_keeps_the_form_it_was_given_and_makes_the_other():
    src = DemoSource(vms=3)
    iv = src.next_interval()
    assert not isinstance(iv.data, tuple)  # the demo gives columns
    again = Interval(time=iv.time, interval_s=iv.interval_s, threads=iv.threads, vms=iv.vms, status=iv.status,
                     kernel=iv.kernel)
    assert again == iv and again.columns.equals(columns_of(iv.threads))
    one = iv.only([next(iter(iv.vms))])
    assert {t.pid for t in one.threads} == set(one.vms) and len(one.vms) == 1


def test_one_guest_read_alone_shows_what_all_read_together_show():
    b = SnapshotBuilder()
    src = DemoSource(vms=8, churn=3)
    for _ in range(4):
        iv = src.next_interval()
        alone, together = b.build(iv), None
        b2 = SnapshotBuilder()
        together = b2.build(iv)
        for vm in together.vms:  # the snapshot-wide pass
            single = alone.vm(vm.pid)  # one guest's own pass
            assert [r.key for r in single.reasons] == [r.key for r in vm.reasons]
            assert [(r.count, r.lost, r.latency.to_json()) for r in single.reasons] == \
                [(r.count, r.lost, r.latency.to_json()) for r in vm.reasons]
            assert [v.tid for v in single.vcpus] == [v.tid for v in vm.vcpus]
            assert [v.top_reason.key if v.top_reason else None for v in single.vcpus] == \
                [v.top_reason.key if v.top_reason else None for v in vm.vcpus]
        assert snapshot_to_json(together).count('"pid"') == len(iv.vms)


def test_a_snapshot_read_every_way_is_freed_without_the_cycle_collector():
    snap = SnapshotBuilder().build(DemoSource(vms=4).next_interval())
    for vm in snap.vms:
        _ = vm.reasons, [v.reasons for v in vm.vcpus], vm.latency
    single = snap.vm_at(0)
    _ = [v.reasons for v in single.vcpus]
    frame = weakref.ref(snap.frame)
    gc.disable()
    try:
        del snap, single, vm
        assert frame() is None  # no reference cycle keeps the columns alive
    finally:
        gc.enable()


def test_history_records_many_series_at_once_and_views_keep_them():
    store = h.HistoryStore(length=4, capacity=4)
    eids = store.entity_ids([("vm", 1, 0), ("vm", 2, 0)])

    def keys(codes):
        return np.array([(int(e) << 40) | (1 << 32) | c for e in eids for c in codes], np.uint64)

    store.advance()
    store.add_packed(keys([12, 48]), np.array([1, 2, 3, 4], np.float32))
    first = store.freeze()
    store.advance()
    store.add_packed(keys([12, 30]), np.array([5, 6, 7, 8], np.float32))  # a new series; 48 idle
    second = store.freeze()
    assert first.series(("vm", 1, 0), h.REASON, (1, 48)) == (2.0,)
    assert second.series(("vm", 1, 0), h.REASON, (1, 48)) == (2.0, 0.0)
    assert second.series(("vm", 2, 0), h.REASON, (1, 30)) == (0.0, 8.0)
    owner, kb, code, rows = second.series_of(np.array(eids))
    assert sorted(zip(owner.tolist(), code.tolist())) == [(0, 12), (0, 30), (0, 48), (1, 12), (1, 30), (1, 48)]
    assert set(kb.tolist()) == {1}
    assert second.window(rows[code == 30], 1).tolist() == [[6.0], [8.0]]
    store.forget_entities([("vm", 1, 0)])
    store.advance()
    assert second.series(("vm", 1, 0), h.REASON, (1, 12)) == (1.0, 5.0)  # the view kept its values
    assert store.freeze().series(("vm", 1, 0), h.REASON, (1, 12)) == (0.0, 0.0, 0.0)
