"""kvmtop report over a recording: the same report as the capture it was made from (per-interval
totals, per VM, percentiles from the stored histograms), and over a live recording of the real
test guest."""

from __future__ import annotations

import io
import json
import os

import pytest

from kvmtop.commands.report import SLOWEST_IN_RECORDINGS, report_main
from kvmtop.offline.recording import RecordingWriter
from kvmtop.offline.report_model import Selection
from kvmtop.sources.trace import TraceSource

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TWO_VMS = os.path.join(DATA, "guest", "guest-ftrace_two-vms_round-trips.txt")
LKML = os.path.join(DATA, "traces", "lkml-2023-03-30_krause-cr0wp_vmx-newfmt_2vcpu.txt")


def report(path: str, slowest: int = 0, **selection) -> dict:
    out = io.StringIO()
    assert report_main(path, True, out, Selection(**selection), slowest) == 0
    return json.loads(out.getvalue())


def record(tmp_path, capture: str, window_s: float) -> str:
    path = str(tmp_path / (os.path.basename(capture) + ".kvmrec"))
    with RecordingWriter(path, {"source": os.path.basename(capture), "host": "testhost", "kernel": "6.18"}) as w:
        for iv in TraceSource(capture, window_s).intervals:
            w.write(iv)
    return path


def test_a_recording_reports_what_its_capture_does(tmp_path):
    rec, cap = report(record(tmp_path, TWO_VMS, 1.0)), report(TWO_VMS)
    assert rec["schema"] == "kvmtop.report/1" and rec["source"]["kind"] == "recording"
    assert rec["source"]["meta"]["host"] == "testhost"
    # counts, exact sums and the percentiles of the stored histograms
    assert rec["userspace_exits"] == cap["userspace_exits"]
    assert rec["events"] == 13  # what a recording counted: 13 userspace exits
    assert [(v["pid"], v["name"], v["userspace_exits"]) for v in rec["vms"]] == [
        (v["pid"], v["name"], v["userspace_exits"]) for v in cap["vms"]]
    assert [(t["tid"], t["vcpu"], t["comm"], t["userspace_exits"]) for t in rec["threads"]] == [
        (t["tid"], t["vcpu"], t["comm"], t["userspace_exits"]) for t in cap["threads"]]
    # a recording keeps unmatched exits and entries per interval for the whole host only
    assert rec["unmatched"] == {"exits": 0, "entries": 0} and rec["unmatched_userspace_exits"] is None
    assert rec["vms"][0]["unmatched"] == {"exits": None, "entries": None}
    # one window of 1 s, covering the capture's first (.289515) to last (.295021) event
    (row,) = rec["intervals"]
    assert (row["time"], row["interval_s"], row["vms"], row["userspace_exits"]) == (2300.295021, 0.005506, 2, 13)
    assert row["userspace_exits_per_s"] == round(13 / 0.005506, 3)
    assert row["userspace_latency_ns"]["sum"] == (4406 + 5158) * 1000  # every round trip, both VMs


def test_per_interval_rows_and_exit_percentiles_of_a_vmx_recording(tmp_path):
    path = record(tmp_path, LKML, 0.0001)
    rec, cap = report(path, slowest=3), report(LKML)
    assert rec["reasons"] == cap["reasons"] and rec["unmatched"] == {"exits": 1, "entries": 0}
    # windows of 100 us: exits 1, 4, 6, 1, 1 (see test_report_shared_traces); the first and the
    # last window cover 34 us and 30 us of the capture
    assert [r["exits"] for r in rec["intervals"]] == [1, 4, 6, 1, 1]
    assert [round(r["interval_s"] * 1e6, 3) for r in rec["intervals"]] == [34, 100, 100, 100, 30]
    assert [r["exits_per_s"] for r in rec["intervals"]] == [round(1 / 34e-6, 3), 40000.0, 60000.0, 10000.0,
                                                            round(1 / 30e-6, 3)]
    # the 4 EXTERNAL_INTERRUPT exits of .3894xx: 14, 8 and 0 us; p50 = rank 2 = 8000 -> 7935
    assert rec["intervals"][1]["latency_ns"]["p50"] == 7935
    assert "slowest" not in rec and SLOWEST_IN_RECORDINGS in rec["notes"]
    text = io.StringIO()
    assert report_main(path, False, text) == 0
    t = text.getvalue()
    assert "a recording of 5 intervals from host testhost, kernel 6.18" in t
    assert "t=1404.389400s (trace clock)" in t and "Per interval:" in t and "EXTERNAL_INTERRUPT" in t


def test_narrowing_a_recording(tmp_path):
    path = record(tmp_path, TWO_VMS, 1.0)
    b = report(path, pid=26405)
    assert [v["pid"] for v in b["vms"]] == [26405] and [t["tid"] for t in b["threads"]] == [26406]
    assert sum(u["count"] for u in b["userspace_exits"]) == 6
    assert [(r["vms"], r["userspace_exits"]) for r in b["intervals"]] == [(1, 6)]
    # the whole host's unmatched counts say nothing of one VM
    assert b["unmatched"] == {"exits": None, "entries": None}
    assert sum(u["count"] for u in report(path, name="cpu n/kvm", tid=26404)["userspace_exits"]) == 7


def test_narrowing_a_recording_to_nothing_lists_its_vms(tmp_path, capsys):
    path = record(tmp_path, TWO_VMS, 1.0)
    assert report_main(path, True, io.StringIO(), Selection(name="nosuchvm")) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "VM 'nosuchvm'" in err and "CPU N/KVM (pid 26402)" in err


@pytest.mark.bpf
@pytest.mark.kvm
@pytest.mark.skipif(os.geteuid() != 0, reason="the live source needs root")
def test_live_recording_of_the_test_guest(kvm_guest, tmp_path):
    from kvmtop.sources.collector import LiveSource

    src = LiveSource()
    src.open()
    try:
        first = src.next_interval()  # start clean
        guest = kvm_guest("report-rec", pio=3, mmio=2, hlt=1, mmio_sleep_ms=5)
        guest.go()
        exits = guest.wait_done()
        second = src.next_interval()
    finally:
        src.close()
    path = str(tmp_path / "live.kvmrec")
    with RecordingWriter(path, {"source": "live"}) as w:
        w.write(first)
        w.write(second)
    d = report(path, pid=guest.pid)
    assert [(v["pid"], v["name"]) for v in d["vms"]] == [(guest.pid, "report-rec")]
    assert {u["name"]: u["count"] for u in d["userspace_exits"]} == {k: n for k, n in exits.items() if n}
    # every exit but the final DONE out was answered with KVM_RUN; MMIO includes the 5 ms handler
    lat = {u["name"]: u["latency_ns"] for u in d["userspace_exits"]}
    assert lat["KVM_EXIT_IO"]["count"] == exits["KVM_EXIT_IO"] - 1
    assert lat["KVM_EXIT_MMIO"]["count"] == 2 and lat["KVM_EXIT_MMIO"]["min"] >= 5_000_000
    assert lat["KVM_EXIT_MMIO"]["p50"] >= 5_000_000
    assert [(t["tid"], t["vcpu"], t["comm"]) for t in d["threads"]] == [(guest.tid, 0, "CPU 0/KVM")]
    assert len(d["intervals"]) == 2 and sum(r["userspace_exits"] for r in d["intervals"]) == sum(exits.values())
