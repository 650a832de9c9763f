"""`kvmtop export --io`: PIO/MMIO access counters with a bounded number of series per VM.

The real test guest's exact counts through a real Prometheus server; the bound (`--io-top`) keeps
every series a counter that never goes down and the VM's series summing to exactly its accesses,
however many addresses the guest touches.
"""

from __future__ import annotations

import os
import random
import shutil

import pytest
from export_helpers import (
    KNOWN_LINT,
    ExporterProcess,
    PrometheusServer,
    promtool_check_metrics,
    samples,
    scrape,
    wait_for,
)
from prometheus_client import CollectorRegistry, generate_latest

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.exporter.families import KvmtopCollector
from kvmtop.exporter.io_series import IoCounters
from kvmtop.exporter.state import MetricState
from kvmtop.io_stats import MMIO, PIO, IoAccess, IoSample, IoStat
from kvmtop.model import Interval, Stat, ThreadInterval, VmIdentity
from kvmtop.testing.kvm_guest import DONE_PORT, MMIO_ADDR, PIO_PORT

NAME = 'kvmtop io "q" \\ new\nline \x1b[31m'
FAMILY = "kvmtop_io_accesses_total"

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root")
needs_prometheus = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                      reason="prometheus/promtool are not installed (scripts/setup.sh installs them)")


def stat(space: str, write: bool, addr: int, n: int) -> IoStat:
    return IoStat(space, write, addr, n, float(n))


def series(c: IoCounters) -> dict[tuple[str, str, str], int]:
    return {(lab["space"], lab["direction"], lab["address"]): n for lab, n in c.values()}


# --------------------------------------------------------------------------- the bound


def test_a_framebuffer_gets_at_most_top_series_and_the_sum_stays_exact_and_monotonic():
    rng = random.Random(7)
    c = IoCounters({"vm": "fb", "pid": "1"}, top=5)
    total = 0
    previous: dict = {}
    for step in range(300):
        stats = [stat(MMIO, True, 0xFD00_0000 + 4 * rng.randrange(200_000), rng.randrange(1, 4)) for _ in range(300)]
        stats += [stat(PIO, True, 0x3F8, 50), stat(MMIO, True, 0xFEBD_1000, 40), stat(PIO, False, 0x3FD, 20)]
        if step >= 100:  # a device that becomes busy late, after the candidate table filled up long ago
            stats.append(stat(MMIO, True, 0xFEBC_1000, 500))
        c.add(summed(stats))
        total += sum(s.count for s in stats)
        now = series(c)
        assert sum(now.values()) == total  # nothing lost, nothing counted twice
        assert len(now) <= 5 + 3 and c.series_count == len(now)  # 5 addresses + "other" per space/direction seen
        assert len(c.counts) <= c.capacity  # memory bounded too
        for key, n in now.items():
            assert n >= previous.get(key, 0) or key not in previous, key  # counters never go down
        previous = now
    assert {a for _, _, a in now} >= {"0x3f8", "0xfebd1000", "0xfebc1000", "other"}
    assert now[("pio", "write", "0x3f8")] == 300 * 50  # it had a series from its first access


def summed(stats: list[IoStat]) -> list[IoStat]:
    """As IoSample.stats gives them: one per address and direction."""
    sample = IoSample(1.0, tuple(IoAccess(1, 2, s.space, s.write, s.addr, s.count) for s in stats))
    return sample.stats(1)


def test_two_equally_busy_addresses_do_not_take_turns():
    c = IoCounters({"vm": "a", "pid": "1"}, top=1)
    for i in range(50):
        c.add([stat(PIO, True, 0x60, 10 + i % 2), stat(PIO, True, 0x64, 10 + (i + 1) % 2)])
    assert series(c) == {("pio", "write", "0x64"): 525, ("pio", "write", "other"): 525}  # 0x64 led at first


def test_a_series_counts_from_when_its_address_got_one():
    c = IoCounters({"vm": "a", "pid": "1"}, top=1)
    c.add([stat(MMIO, False, 0x1000, 10)])
    c.add([stat(MMIO, False, 0x2000, 5)])  # not busier than twice 0x1000: summed in other
    c.add([stat(MMIO, False, 0x2000, 100)])  # now it is: 0x1000 gives its series up
    assert series(c) == {("mmio", "read", "0x2000"): 100, ("mmio", "read", "other"): 15}
    c = IoCounters({"vm": "a", "pid": "1"}, top=0)  # --io-top 0: totals per space and direction only
    c.add([stat(MMIO, False, 0x1000, 10), stat(PIO, True, 0x70, 2), stat(PIO, True, 0x71, 3)])
    assert series(c) == {("mmio", "read", "other"): 10, ("pio", "write", "other"): 5}


# --------------------------------------------------------------------------- the family


def interval(n: int) -> tuple[Interval, IoSample]:
    t = ThreadInterval(pid=10, tid=11, userspace={2: Stat(n)})
    iv = Interval(time=1_700_000_000.0 + n, interval_s=1.0, threads=(t,), vms={10: VmIdentity(10, NAME, 1, {11: 0})})
    io = IoSample(1.0, (IoAccess(10, 11, PIO, True, 0x3F8, n), IoAccess(10, 11, MMIO, False, 0xFED000F0, 2 * n),
                        IoAccess(10, 12, PIO, True, 0x3F8, 1)), drops=3)
    return iv, io


def exposition(io_top: int | None) -> str:
    state = MetricState(io_top=io_top)
    builder = SnapshotBuilder()
    for n in (1, 2, 3):
        iv, io = interval(n)
        state.update(builder.build(iv), io)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(KvmtopCollector(state))
    return generate_latest(reg).decode()


def test_the_family_sums_threads_per_vm_under_a_hostile_name_and_promtool_is_content():
    text = exposition(io_top=20)
    got = {(lab["vm"], lab["space"], lab["direction"], lab["address"]): v for lab, v in samples(text)[FAMILY]}
    assert got == {(NAME, "pio", "write", "0x3f8"): 6 + 3, (NAME, "mmio", "read", "0xfed000f0"): 12,
                   (NAME, "pio", "write", "other"): 0, (NAME, "mmio", "read", "other"): 0}
    assert ({"kind": "io"}, 9) in samples(text)["kvmtop_collector_drops_total"]
    status, problems = promtool_check_metrics(text)
    assert set(problems) <= {KNOWN_LINT}, problems


def test_without_io_there_is_no_family():
    text = exposition(io_top=None)
    assert "kvmtop_io" not in text and 'kind="io"' not in text


# --------------------------------------------------------------------------- the real guest


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
@needs_prometheus
def test_prometheus_sees_the_real_guests_exact_port_and_address_counts(kvm_guest):
    g = kvm_guest(NAME, pio=5, mmio=3)
    with ExporterProcess("-d", "0.5", "--io", "--io-top", "2") as e, PrometheusServer(e.url.split("/")[2]) as prom:
        wait_for(lambda: prom.query('up{job="kvmtop"} == 1'), 60, 0.5, what="Prometheus scraping the exporter")
        g.go()
        g.wait_done()
        want = {("pio", "write", f"{PIO_PORT:#x}"): 5, ("mmio", "write", f"{MMIO_ADDR:#x}"): 3,
                ("pio", "write", "other"): 1, ("mmio", "write", "other"): 0}  # "other": the DONE port's write

        def counts():
            got = {(r["metric"]["space"], r["metric"]["direction"], r["metric"]["address"]): float(r["value"][1])
                   for r in prom.query(f'{FAMILY}{{pid="{g.pid}"}}') if r["metric"]["vm"] == NAME}
            return got if got == want else None

        wait_for(counts, 60, 0.5, what=f"the guest's accesses in Prometheus ({want})")
        assert DONE_PORT != PIO_PORT
        text = scrape(e.url)
        status, problems = promtool_check_metrics(text)
        assert set(problems) <= {KNOWN_LINT}, problems
        assert status == (3 if problems else 0)
