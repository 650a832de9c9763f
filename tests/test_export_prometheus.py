"""`kvmtop export` scraped by a real Prometheus server: a real guest's exact counts under its name.

The test starts everything itself, on loopback: the exporter (live BPF collector), a tiny real
KVM guest (kvmtop/testing/kvm_guest.py) whose name has a quote, a backslash, a newline and an escape
byte, and Prometheus with a temporary data directory scraping every second. It then asks
Prometheus's HTTP query API, as a user would.
"""

from __future__ import annotations

import os
import shutil
import urllib.request

import pytest
from export_helpers import (
    KNOWN_LINT,
    ExporterProcess,
    PrometheusServer,
    promtool_check_metrics,
    samples,
    scrape,
    value,
    wait_for,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                      reason="prometheus/promtool are not installed (scripts/setup.sh installs them)")

NAME = 'kvmtop prom "q" \\ new\nline \x1b[31m'
MMIO_SLEEP_MS = 20


@pytest.fixture
def exporter():
    running: list[ExporterProcess] = []

    def start(*args) -> ExporterProcess:
        e = ExporterProcess(*args)
        running.append(e)
        return e.start()

    yield start
    for e in running:
        e.stop()


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
@needs_prometheus
def test_prometheus_sees_the_real_guests_exact_counts_and_round_trip(exporter, kvm_guest):
    e = exporter("-d", "0.5", "--buckets", "fine")
    g = kvm_guest(NAME, pio=5, mmio=3, mmio_sleep_ms=MMIO_SLEEP_MS)
    host_port = e.url.split("/")[2]
    with PrometheusServer(host_port) as prom:
        wait_for(lambda: prom.query('up{job="kvmtop"} == 1'), 60, 0.5, what="Prometheus scraping the exporter")
        g.go()
        exits = g.wait_done()

        def counts():
            got = {r["metric"]["reason"]: float(r["value"][1])
                   for r in prom.query(f'kvmtop_userspace_exits_total{{pid="{g.pid}"}}')
                   if r["metric"]["vm"] == NAME}  # the name came back exactly through Prometheus
            return got if got.get("KVM_EXIT_MMIO") == exits["KVM_EXIT_MMIO"] and \
                got.get("KVM_EXIT_IO") == exits["KVM_EXIT_IO"] else None

        got = wait_for(counts, 60, 0.5, what="the guest's counts in Prometheus")
        assert got["KVM_EXIT_IO"] == 6 and got["KVM_EXIT_MMIO"] == 3  # pio=5 plus the final DONE port write
        assert "KVM_EXIT_HLT" not in got  # hlt=0

        q = prom.query('histogram_quantile(0.5, sum by (le) (kvmtop_userspace_exit_latency_seconds_bucket'
                       f'{{pid="{g.pid}", reason="KVM_EXIT_MMIO"}}))')
        p50 = float(q[0]["value"][1])

        text = scrape(e.url)
        mmio = {"pid": str(g.pid), "reason": "KVM_EXIT_MMIO"}
        count = value(text, "kvmtop_userspace_exit_latency_seconds_count", **mmio)
        mean = value(text, "kvmtop_userspace_exit_latency_seconds_sum", **mmio) / count
        assert count == 3 and mean >= MMIO_SLEEP_MS / 1000
        # the bucket holding the median round trip, from the exporter's own buckets (cumulative)
        series = samples(text)["kvmtop_userspace_exit_latency_seconds_bucket"]
        buckets = sorted((float(lab["le"]), v) for lab, v in series
                         if lab["pid"] == str(g.pid) and lab["reason"] == "KVM_EXIT_MMIO")
        k = next(i for i, (_, cum) in enumerate(buckets) if cum >= count / 2)
        lower, upper = buckets[k - 1][0], buckets[k][0]
        assert upper < 1 and lower <= p50 <= upper, (lower, p50, upper)
        assert abs(p50 - mean) <= upper - lower  # within the bucket's width of the measured round trip
        assert (upper - lower) / lower < 0.2501  # --buckets fine: 4 per power of two

        assert "kvmtop_io_accesses" not in text  # no --io: no PIO/MMIO family (tests/test_export_io.py has it)
        status, problems = promtool_check_metrics(text)  # a real scrape, with the nasty name in it
        assert set(problems) <= {KNOWN_LINT}, problems  # that one only where request bits have a source
        assert status == (3 if problems else 0)


@pytest.mark.bpf
@needs_root
@needs_prometheus
def test_prometheus_scrapes_the_exporter_with_its_own_accept_header(exporter):
    """Prometheus asks for OpenMetrics or text; whichever the exporter picks, the scrape is healthy."""
    e = exporter("--demo", "-d", "0.5")
    with PrometheusServer(e.url.split("/")[2]) as prom:
        wait_for(lambda: prom.query("kvmtop_collector_intervals_total > 2"), 60, 0.5, what="scraped intervals")
        assert prom.query('scrape_samples_scraped{job="kvmtop"} > 1000')
        targets = urllib.request.urlopen(prom.url + "/api/v1/targets", timeout=10).read().decode()
        assert '"health":"up"' in targets and '"lastError":""' in targets
