"""Snapshot -> Prometheus metrics: exact buckets, cumulative counts, bounded series, escaping."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from export_helpers import KNOWN_LINT, promtool_check_metrics, samples, value
from fake_sources import make_interval
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

from kvmtop import histogram
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.exporter.buckets import DEFAULT, FINE, LAYOUTS, TOP_NS
from kvmtop.exporter.families import KvmtopCollector
from kvmtop.exporter.state import Histo, MetricState
from kvmtop.model import CollectorStatus, Interval, Latency, Stat, ThreadInterval, VmIdentity


def exposition(state: MetricState) -> str:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(KvmtopCollector(state))
    return generate_latest(reg).decode()


def le_ns(le: str) -> int | None:
    """The le label in integer ns (exact: parsed as a decimal), None for +Inf."""
    if le == "+Inf":
        return None
    ns = Decimal(le) * 10**9
    assert ns == ns.to_integral_value(), le
    return int(ns)


# --------------------------------------------------------------------------- buckets


@pytest.mark.parametrize("layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
def test_every_prometheus_bucket_is_a_union_of_whole_kernel_buckets(layout):
    ends = [le_ns(le) for le in layout.le]
    assert ends[-1] is None and ends[:-1] == [b - 1 for b in layout.boundaries]
    for i in range(histogram.NBUCKETS):
        lo, hi = histogram.bucket_bounds(i)
        s = layout.slot(i)
        upper = ends[s]
        lower = ends[s - 1] if s > 0 else -1
        # the whole kernel bucket [lo, hi) is in (lower, upper]: no kernel bucket is split
        assert lower < lo and (upper is None or hi - 1 <= upper), (i, lo, hi, s)
    # the kernel's last bucket also holds everything above 2**34 ns: only +Inf may contain it
    assert layout.slot(histogram.NBUCKETS - 1) == layout.size - 1
    assert layout.boundaries[-1] == TOP_NS


def test_default_and_fine_layouts():
    assert DEFAULT.size == 14  # 13 bounds and +Inf: "about a dozen"
    assert DEFAULT.boundaries[0] == 1024 and DEFAULT.boundaries[-2] == 2**32
    assert all(b & (b - 1) == 0 for b in DEFAULT.boundaries[:-1])  # powers of two ...
    assert 16e9 < TOP_NS < 17e9  # ... up to ~16 s
    assert FINE.size == 98 and set(DEFAULT.boundaries) <= set(FINE.boundaries)
    for a, b in zip(FINE.boundaries, FINE.boundaries[1:]):
        assert (b - a) / a <= 0.25


@pytest.mark.parametrize("layout", [DEFAULT, FINE], ids=["default", "fine"])
def test_bucket_counts_are_exact_for_every_value(layout):
    rnd = random.Random(7)
    values = [int(rnd.lognormvariate(10, 3)) for _ in range(3000)]
    for b in layout.boundaries:  # right at the edges
        values += [b - 2, b - 1, b, b + 1]
    values += [0, 1, 2**34 - 1, 2**34, 2**40]
    h = Histo({}, layout)
    h.add_latency(Latency.from_values(values), layout)
    running = 0
    for le, n in zip(layout.le, h.counts):
        running += n
        bound = le_ns(le)
        assert running == sum(1 for v in values if bound is None or v <= bound), le
    assert h.sum_ns == sum(values)


# --------------------------------------------------------------------------- cumulative state


def build_state(intervals, **kwargs) -> MetricState:
    state = MetricState(**kwargs)
    builder = SnapshotBuilder(2)
    for iv in intervals:
        state.update(builder.build(iv))
    return state


def test_counts_and_histograms_are_cumulative_since_start():
    text = exposition(build_state([make_interval(n) for n in (1, 2, 3)], kernel="6.18.0", isa="VMX"))
    s = samples(text)
    assert value(s, "kvmtop_exits_total", vm="alpha", pid="10", isa="VMX", reason="HLT") == 6
    assert value(s, "kvmtop_exits_total", vm="alpha", pid="10", isa="VMX", reason="EPT_VIOLATION") == 12
    assert value(s, "kvmtop_exit_latency_seconds_count", vm="alpha", reason="HLT") == 6
    hlt_ns = sum(40_000 + i for n in (1, 2, 3) for i in range(n))
    assert value(s, "kvmtop_exit_latency_seconds_sum", vm="alpha", reason="HLT") == pytest.approx(hlt_ns / 1e9)
    assert value(s, "kvmtop_exit_latency_seconds_bucket", vm="alpha", reason="HLT", le="1.6383e-05") == 0
    assert value(s, "kvmtop_exit_latency_seconds_bucket", vm="alpha", reason="HLT", le="6.5535e-05") == 6
    assert value(s, "kvmtop_exit_latency_seconds_bucket", vm="alpha", reason="EPT_VIOLATION", le="1.023e-06") == 12
    beta = "[b]beta[/b]\x1b[2J"
    assert value(s, "kvmtop_userspace_exits_total", vm=beta, pid="20", reason="KVM_EXIT_IO") == 6
    assert value(s, "kvmtop_userspace_exit_latency_seconds_count", vm=beta, reason="KVM_EXIT_IO") == 6
    assert value(s, "kvmtop_request_bits_total", vm="alpha", bit="14", name="EVENT") == 6
    assert value(s, "kvmtop_vm_vcpus", vm="alpha") == 1
    assert "kvmtop_vcpu_exits_total" not in s  # per-vCPU series only when asked
    assert value(s, "kvmtop_collector_poll_seconds_count") == 3
    assert value(s, "kvmtop_collector_intervals_total") == 3
    assert value(s, "kvmtop_info", kernel="6.18.0", isa="VMX", exits="true", userspace="true") == 1
    assert value(s, "kvmtop_collector_drops_total", kind="stats") == 0  # there before the first drop


def test_per_vcpu_series():
    two_vcpus = Interval(time=1.0, interval_s=1.0, threads=(
        ThreadInterval(pid=5, tid=6, reasons={(1, 12): Stat(3)}),
        ThreadInterval(pid=5, tid=7, reasons={(1, 12): Stat(4), (1, 30): Stat(1)}),
    ), vms={5: VmIdentity(5, "vm5", 1, {6: 0})})  # tid 7 has no vCPU index: named by its tid
    s = samples(exposition(build_state([two_vcpus, two_vcpus], per_vcpu=True)))
    assert value(s, "kvmtop_vcpu_exits_total", vm="vm5", vcpu="0", reason="HLT") == 6
    assert value(s, "kvmtop_vcpu_exits_total", vm="vm5", vcpu="tid 7", reason="HLT") == 8
    assert value(s, "kvmtop_vcpu_exits_total", vm="vm5", vcpu="tid 7", reason="IO_INSTRUCTION") == 2
    assert value(s, "kvmtop_exits_total", vm="vm5", reason="HLT") == 14


def test_drops_unmatched_and_features():
    iv = Interval(time=1.0, interval_s=1.0, status=CollectorStatus(
        drops=7, drops_by_map={"stats": 5, "hist": 2}, unmatched_exits=3, unmatched_entries=1, poll_ms=2.5,
        features={"exits": False, "requests": False, "hypercalls": True, "userspace": True}))
    s = samples(exposition(build_state([iv, iv], isa="")))
    assert value(s, "kvmtop_collector_drops_total", kind="stats") == 10
    assert value(s, "kvmtop_collector_drops_total", kind="hist") == 4
    assert value(s, "kvmtop_collector_unmatched_total", kind="exits") == 6
    assert value(s, "kvmtop_collector_unmatched_total", kind="entries") == 2
    assert value(s, "kvmtop_collector_poll_seconds_sum") == pytest.approx(0.005)
    # a PVM-like host: exits have no source, which is not the same as an idle host; hypercalls,
    # attributed to a kvm_exit, have none either though their tracepoint exists (CollectorStatus.has)
    assert value(s, "kvmtop_info", exits="false", requests="false", hypercalls="false", userspace="true",
                 isa="unknown") == 1


# --------------------------------------------------------------------------- bounded series


def test_exited_vm_keeps_its_series_for_the_grace_period_then_loses_them():
    now = [0.0]
    state = MetricState(forget_after_s=300, clock=lambda: now[0])
    builder = SnapshotBuilder(2)
    state.update(builder.build(make_interval(1)))
    both = state.series_count
    alpha_only = Interval(time=2.0, interval_s=1.0, threads=(make_interval(1).threads[0],),
                          vms={10: make_interval(1).vms[10]})
    for t in (10.0, 200.0, 309.0):
        now[0] = t
        state.update(builder.build(alpha_only))
        assert value(exposition(state), "kvmtop_userspace_exits_total", pid="20") == 1  # beta kept
    now[0] = 311.0  # beta gone since t=10 s: more than 300 s ago
    state.update(builder.build(alpha_only))
    text = exposition(state)
    assert 'pid="20"' not in text
    assert value(text, "kvmtop_exits_total", pid="10", reason="HLT") == 5
    assert value(text, "kvmtop_exporter_series") == state.series_count
    assert 0 < state.series_count == build_state([alpha_only]).series_count < both


# --------------------------------------------------------------------------- untrusted names


NASTY = ['quote " inside', "back\\slash\\", "new\nline", "esc \x1b[31mred\x1b[0m", "bell\a and nul-free",
         "ünïcödé ✓", 'all: "\\\n\x1b', "{braces}=,le=\"1\""]


def nasty_interval(names) -> Interval:
    threads = tuple(ThreadInterval(pid=100 + i, tid=200 + i, userspace={6: Stat(2, Latency.from_values([900, 70_000]))})
                    for i in range(len(names)))
    vms = {100 + i: VmIdentity(100 + i, name, 1, {200 + i: 0}) for i, name in enumerate(names)}
    return Interval(time=1.0, interval_s=1.0, threads=threads, vms=vms)


def test_label_values_are_escaped_and_come_back_exactly():
    state = build_state([nasty_interval(NASTY + ["lone \udc80 surrogate"])])
    text = exposition(state)
    got = {lab["vm"]: v for lab, v in samples(text)["kvmtop_userspace_exits_total"]}
    for name in NASTY:
        assert got[name] == 2, name
    assert got["lone \\udc80 surrogate"] == 2  # not encodable as UTF-8: spelled out, not a failed scrape
    # one line per sample: a newline in a name is escaped, never a line break
    assert sum(line.startswith("kvmtop_userspace_exits_total{") for line in text.splitlines()) == len(NASTY) + 1
    assert 'vm="new\\nline"' in text and 'vm="quote \\" inside"' in text and 'vm="back\\\\slash\\\\"' in text
    om = generate_openmetrics(_registry(state)).decode()
    om_got = {s.labels["vm"] for f in parse_openmetrics(om) for s in f.samples if f.name == "kvmtop_userspace_exits"}
    assert set(NASTY) <= om_got


def _registry(state):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(KvmtopCollector(state))
    return reg


def test_promtool_accepts_the_exposition_with_nasty_names():
    status, problems = promtool_check_metrics(exposition(build_state(
        [nasty_interval(NASTY), make_interval(2)], per_vcpu=True, kernel="6.1", isa="VMX")))
    assert problems == [KNOWN_LINT], problems  # nothing else: the one lint is explained in the README
    assert status in (0, 3)  # 3: lint problems only (no parse error)
