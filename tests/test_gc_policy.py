"""kvmtop.gc_policy: pauses shared by threads, the freeze/collect pacing, retired objects."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from kvmtop.gc_policy import GcPolicy, paused


@pytest.fixture(autouse=True)
def _collector_on():
    was = gc.isenabled()
    gc.enable()
    yield
    gc.unfreeze()
    if not was:
        gc.disable()


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def cyclic_garbage() -> weakref.ref:
    node = Node()
    ref = weakref.ref(node)
    del node
    return ref


def test_pauses_nest_and_restore_what_was_there():
    with paused():
        assert not gc.isenabled()
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    with paused():
        pass
    assert not gc.isenabled()  # it was off before: it stays off


def test_a_pause_on_another_thread_keeps_the_collector_off():
    inside = threading.Event()
    leave = threading.Event()
    left = threading.Event()

    def worker():
        with paused():
            inside.set()
            leave.wait(10)
        left.set()

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert inside.wait(10)
        with paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the worker is still inside: this thread must not turn it on
    finally:
        leave.set()
        t.join(10)
    assert left.is_set() and gc.isenabled()


def test_small_hosts_are_left_to_the_default_collector():
    policy = GcPolicy(min_vcpus=100, every=3)
    policy.after_snapshot(10)
    assert gc.get_freeze_count() == 0 and policy.frozen == 0


def test_small_hosts_settle_once_then_collect_as_usual():
    """``settle``: what exists after the first snapshots is frozen once; garbage made later
    is still collected by the default collector, and close() unfreezes."""
    policy = GcPolicy(min_vcpus=100, every=3, settle=2)
    try:
        early = cyclic_garbage()
        policy.after_snapshot(10)
        assert gc.get_freeze_count() == 0
        policy.after_snapshot(10)
        frozen = gc.get_freeze_count()
        assert frozen > 0 and policy.frozen == 0
        late = cyclic_garbage()
        for _ in range(5):
            policy.after_snapshot(10)
        assert gc.get_freeze_count() == frozen  # once, not every snapshot
        gc.collect()
        assert late() is None and early() is not None  # only what came after is walked
    finally:
        policy.close()
    assert gc.get_freeze_count() == 0


def test_big_hosts_freeze_and_collect_every_n_snapshots():
    policy = GcPolicy(min_vcpus=100, every=3)
    try:
        ref = cyclic_garbage()
        policy.after_snapshot(1000)
        assert gc.get_freeze_count() > 0
        gc.collect()
        assert ref() is not None  # frozen: the collector does not walk it
        policy.after_snapshot(1000)
        assert ref() is not None
        policy.after_snapshot(10)  # once freezing, small snapshots count too: the third one collects
        assert ref() is None and gc.get_freeze_count() == 0 and policy.frozen == 0
    finally:
        policy.close()


def test_small_hosts_collect_fully_at_their_own_pace():
    """``small_every``: under ``small_host`` vCPUs the full collection comes that seldom; a big
    host's snapshots keep ``every``."""
    policy = GcPolicy(min_vcpus=0, every=2, small_host=100, small_every=4)
    try:
        ref = cyclic_garbage()
        for _ in range(3):
            policy.after_snapshot(10)
        assert ref() is not None and policy.frozen == 3  # a big host would have collected at 2
        policy.after_snapshot(10)
        assert ref() is None and policy.frozen == 0
        ref = cyclic_garbage()
        policy.after_snapshot(1000)
        assert ref() is not None
        policy.after_snapshot(1000)
        assert ref() is None and policy.frozen == 0
    finally:
        policy.close()


def test_close_unfreezes():
    policy = GcPolicy(min_vcpus=1, every=100)
    policy.after_snapshot(5)
    assert gc.get_freeze_count() > 0
    policy.close()
    assert gc.get_freeze_count() == 0


class Big:
    pass


def retired(policy: GcPolicy) -> weakref.ref:
    """Something the UI let go of, handed to ``policy``: only the policy holds it."""
    obj = Big()
    policy.retire(obj)
    return weakref.ref(obj)


def test_retired_objects_are_freed_by_drain():
    policy = GcPolicy()
    ref = retired(policy)
    assert ref() is not None  # held until the feed thread drains
    policy.drain()
    assert ref() is None


def test_young_collections_made_rarer_while_the_policy_runs():
    """``young``: from the first snapshot the young generation is collected that seldom; closing
    the policy gives the collector its own thresholds back."""
    before = gc.get_threshold()
    policy = GcPolicy(young=before[0] * 7 + 1)
    try:
        assert gc.get_threshold() == before  # nothing before a snapshot
        policy.after_snapshot(4)
        assert gc.get_threshold() == (before[0] * 7 + 1, *before[1:])
    finally:
        policy.close()
    assert gc.get_threshold() == before


def test_what_the_ui_let_go_of_is_freed_once_it_has_taken_the_new_snapshot():
    policy = GcPolicy()
    policy.posting()  # the feed thread posts a new snapshot...
    done = threading.Event()

    def feed_thread():
        policy.drain_when_taken(30)  # ...and waits for the UI to take it
        done.set()

    t = threading.Thread(target=feed_thread)
    t.start()
    try:
        ref = retired(policy)  # the UI replaces the old one
        assert not done.is_set() and ref() is not None  # not taken yet: still held
        policy.handed_over()
        assert done.wait(10)
        assert ref() is None
    finally:
        policy.handed_over()
        t.join(10)


def test_the_feed_thread_goes_on_when_the_ui_does_not_take_a_snapshot():
    policy = GcPolicy()
    policy.handed_over()  # an earlier snapshot was taken...
    policy.posting()  # ...this one is not
    obj = object()
    policy.retire(obj)
    policy.drain_when_taken(0.01)  # returns after the timeout, and drains anyway
    assert not policy._retired
