"""The metric families (names are a contract, see README) from the cumulative MetricState.

A custom prometheus_client collector: each scrape builds a handful of families from the
state rather than keeping thousands of metric objects alive. prometheus_client escapes
label values (quotes, backslashes, newlines) when it encodes them.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from .state import FEATURES, Cell, Histo, MetricState

VM = ["vm", "pid"]


def _bool(value: bool) -> str:
    return "true" if value else "false"


class KvmtopCollector(Collector):
    def __init__(self, state: MetricState):
        self.state = state

    def describe(self):
        return []  # families vary with what has been seen; never called by our registry's users

    def collect(self) -> list[Metric]:
        with self.state.read() as st:
            return self._families(st)

    def _families(self, st: MetricState) -> list[Metric]:
        exits = CounterMetricFamily("kvmtop_exits", "VM exits by exit reason", labels=VM + ["isa", "reason"])
        latency = HistogramMetricFamily("kvmtop_exit_latency_seconds",
                                        "Exit to next entry of the same vCPU thread (the host's handling time); "
                                        "buckets are exact unions of the in-kernel log-linear buckets",
                                        labels=VM + ["reason"])
        userspace = CounterMetricFamily("kvmtop_userspace_exits",
                                        "Exits to the VMM in userspace (KVM_RUN returned), by KVM_EXIT_* reason",
                                        labels=VM + ["reason"])
        us_latency = HistogramMetricFamily("kvmtop_userspace_exit_latency_seconds",
                                           "Userspace exit to the next KVM_RUN of the same thread (the VMM round "
                                           "trip); buckets are exact unions of the in-kernel buckets",
                                           labels=VM + ["reason"])
        hypercalls = CounterMetricFamily("kvmtop_hypercalls", "Hypercalls by number", labels=VM + ["nr", "name"])
        requests = CounterMetricFamily("kvmtop_request_bits", "Exits with this vcpu->requests bit pending",
                                       labels=VM + ["bit", "name"])
        vcpus = GaugeMetricFamily("kvmtop_vm_vcpus", "vCPU threads of the VM (idle VMs included)", labels=VM)
        per_vcpu = CounterMetricFamily("kvmtop_vcpu_exits", "VM exits by vCPU and exit reason",
                                       labels=VM + ["vcpu", "isa", "reason"]) if st.per_vcpu else None
        io = CounterMetricFamily("kvmtop_io_accesses",
                                 "PIO port and MMIO address accesses (--io) by space, direction and address; at "
                                 "most --io-top addresses per VM have a series, the rest are summed in "
                                 "address=\"other\"", labels=VM + ["space", "direction", "address"]) \
            if st.io_top is not None else None
        for s in st.vms.values():
            _add_cells(vcpus, "kvmtop_vm_vcpus", (s.vcpus,))
            _add_cells(exits, "kvmtop_exits_total", s.exits.values())
            _add_histos(latency, s.exit_latency.values())
            _add_cells(userspace, "kvmtop_userspace_exits_total", s.userspace.values())
            _add_histos(us_latency, s.userspace_latency.values())
            _add_cells(hypercalls, "kvmtop_hypercalls_total", s.hypercalls.values())
            _add_cells(requests, "kvmtop_request_bits_total", s.requests.values())
            if per_vcpu is not None:
                _add_cells(per_vcpu, "kvmtop_vcpu_exits_total", s.vcpu_exits.values())
            if io is not None and s.io is not None:
                io.samples.extend([Sample("kvmtop_io_accesses_total", labels, n) for labels, n in s.io.values()])
        out = [exits] + ([per_vcpu] if per_vcpu is not None else []) + [
            latency, userspace, us_latency, hypercalls, requests, vcpus] + ([io] if io is not None else [])
        return out + self._collector_families(st)

    @staticmethod
    def _collector_families(st: MetricState) -> list[Metric]:
        c = st.collector
        poll = HistogramMetricFamily("kvmtop_collector_poll_seconds",
                                     "Time one poll of the collector took (reading and clearing the BPF maps)",
                                     labels=[])
        _add_histos(poll, (c.poll,))
        drops = CounterMetricFamily("kvmtop_collector_drops", "Events not counted because a BPF map was full",
                                    labels=["kind"])
        for kind, n in sorted(c.drops.items()):
            drops.add_metric([kind], n)
        unmatched = CounterMetricFamily("kvmtop_collector_unmatched",
                                        "Exits with no following entry, and entries with no pending exit",
                                        labels=["kind"])
        for kind, n in sorted(c.unmatched.items()):
            unmatched.add_metric([kind], n)
        failures = CounterMetricFamily("kvmtop_collector_poll_failures",
                                       "Polls that failed (the exporter logs each one and keeps serving)",
                                       value=c.poll_failures)
        intervals = CounterMetricFamily("kvmtop_collector_intervals", "Polls that succeeded", value=c.intervals)
        last = GaugeMetricFamily("kvmtop_collector_last_success_timestamp_seconds",
                                 "Unix time of the last poll that succeeded", value=c.last_success)
        series = GaugeMetricFamily("kvmtop_exporter_series", "Series the exporter holds for its VMs",
                                   value=st.series_count)
        info = InfoMetricFamily("kvmtop", "This host: kernel, ISA, and which measurements have a source here "
                                          "(a PVM host has no kvm_exit: exits=false is not an idle host)")
        info.add_metric([], {"kernel": st.kernel, "isa": st.isa or "unknown",
                             **{f: _bool(c.features.get(f, True)) for f in FEATURES}})
        return [poll, drops, unmatched, failures, intervals, last, series, info]


def _add_cells(family: Metric, name: str, cells: Iterable[Cell]) -> None:
    """Samples straight from the cells: their label dicts were built once, with the series."""
    family.samples.extend([Sample(name, c.labels, c.value) for c in cells])


def _add_histos(family: HistogramMetricFamily, histos: Iterable[Histo]) -> None:
    """What HistogramMetricFamily.add_metric adds (buckets, +Inf, _count, _sum), without rebuilding labels."""
    out = family.samples
    bucket, count, total = family.name + "_bucket", family.name + "_count", family.name + "_sum"
    for h in histos:
        run = 0
        for labels, n in zip(h.bucket_labels, h.counts):
            run += n
            out.append(Sample(bucket, labels, run))
        out.append(Sample(count, h.labels, run))
        out.append(Sample(total, h.labels, h.sum_ns / 1e9))
