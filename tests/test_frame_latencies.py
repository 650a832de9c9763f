"""The latencies the guests table and the header read, made the fast ways, are those of the
guests' full reason lists: every guest's summed at once (small hosts), the host's from
theirs, a top reason's buckets summed only when read."""

from __future__ import annotations

import pytest

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.filtering import ReasonFilter
from kvmtop.frame import WHOLE_PASS_VMS
from kvmtop.model import Latency
from kvmtop.sources.demo import DemoSource
from kvmtop.ui.widgets.vm_table import batch_views


def built(vms: int, exits: bool = True):
    """The same interval built twice: views to fill the fast way, views to read the slow way."""
    src = DemoSource(vms=vms, vcpus=2, exits=exits, churn=3)
    a, b = SnapshotBuilder(), SnapshotBuilder()
    for _ in range(4):
        interval = src.next_interval()
        fast, slow = a.build(interval), b.build(interval)
    return fast, slow


def figures(lat: Latency) -> tuple:
    return lat.count, lat.sum, lat.min, lat.max, lat.buckets, lat.p50, lat.p90, lat.p99, lat.p999


def fresh(lat: Latency) -> tuple:
    """The figures of a Latency with the same buckets, its percentiles computed anew."""
    return figures(Latency(lat.count, lat.sum, lat.min, lat.max, lat.buckets))


@pytest.mark.parametrize("vms", [WHOLE_PASS_VMS // 4, WHOLE_PASS_VMS + 20])
@pytest.mark.parametrize("filtered", [False, True])
def test_guest_and_host_latencies_are_their_reasons_merged(vms, filtered):
    fast, slow = built(vms)
    if filtered:
        flt = ReasonFilter.parse("HLT,EXTERNAL_INTERRUPT,KVM_EXIT_IO")
        fast, slow = flt.apply(fast), flt.apply(slow)
    picked = list(range(0, vms, 3))
    views = batch_views(fast, picked)
    assert any(v.latency.count for v in views)
    for v, i in zip(views, picked):
        ref = slow.vms[i]
        merged = Latency.merge(r.latency for r in ref.reasons)
        assert figures(v.latency) == fresh(merged), i
        if ref.reasons:
            top = v.__dict__["top_reason"]  # as batch_views made it
            assert (top.name, top.count, top.lost) == (ref.reasons[0].name, ref.reasons[0].count, ref.reasons[0].lost)
            assert figures(top.latency) == figures(ref.reasons[0].latency), i
        else:
            assert v.__dict__["top_reason"] is None
    host = Latency.merge(r.latency for r in slow.host.reasons)
    assert figures(fast.host.latency) == fresh(host)
    user = Latency.merge(c.latency for c in slow.host.userspace_exits)
    assert figures(fast.host.userspace_latency) == fresh(user)


def test_a_deferred_latency_is_what_it_stands_for():
    made = []

    def make():
        made.append(1)
        return Latency(3, 30, 5, 15, ((10, 1), (20, 2)))

    lat = Latency.deferred(3, 30, 5, 15, make)
    assert (lat.count, lat.sum, lat.min, lat.max) == (3, 30, 5, 15) and not made  # nothing summed yet
    assert figures(lat) == figures(make())
    assert figures(Latency.merge([lat, Latency(1, 7, 7, 7, ((9, 1),))])) == \
        fresh(Latency(4, 37, 5, 15, ((9, 1), (10, 1), (20, 2))))
    assert Latency.deferred(0, 0, 0, 0, make).count == 0
