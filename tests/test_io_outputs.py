"""`--io` beyond the dashboard: the printed stream (--json/--csv/--batch), recordings (record,
replay, report). The demo's I/O side is deterministic, so the outputs are compared with its
samples; the real test guest's port and address counts are checked exactly."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from io import StringIO

import pytest

from kvmtop.cli import main
from kvmtop.commands.record import record_main
from kvmtop.commands.report import report_main
from kvmtop.feed import Feed
from kvmtop.io_stats import MMIO, PIO, IoAccess, IoSample
from kvmtop.offline.recording import RecordingWriter, interval_from_json, interval_to_json, io_to_json
from kvmtop.offline.recording_reader import RecordingReader
from kvmtop.offline.report_model import Selection
from kvmtop.selection import NamePattern
from kvmtop.snapshot_csv import COLUMNS
from kvmtop.sources.demo import DemoSource
from kvmtop.sources.demo_io import DemoIoSource
from kvmtop.sources.recording import RecordingSource
from kvmtop.sources.selected import SelectedSource
from kvmtop.testing.kvm_guest import DONE_PORT, MMIO_ADDR, PIO_PORT

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live source needs root")


def demo_samples(n: int, vms: int = 6, vcpus: int | None = None) -> list[IoSample]:
    """The I/O samples `--demo --io [--vms --vcpus]` produces in its first n intervals."""
    src = DemoIoSource(DemoSource(vms=vms, vcpus=vcpus), io=True)
    out = []
    for _ in range(n):
        src.next_interval()
        assert src.last_io is not None
        out.append(src.last_io)
    return out


def by_vm(sample: IoSample) -> dict[int, dict[tuple[str, str, int], int]]:
    out: dict[int, dict] = {}
    for a in sample.accesses:
        key = (a.space.lower(), "write" if a.write else "read", a.addr)
        mine = out.setdefault(a.pid, {})
        mine[key] = mine.get(key, 0) + a.count
    return out


def json_io(line: dict) -> dict[int, dict[tuple[str, str, int], int]]:
    return {vm["pid"]: {(r["space"], r["direction"], r["address"]): r["count"] for r in vm["io"]}
            for vm in line["vms"] if vm["io"]}


def without_io(line: dict) -> dict:
    return {**{k: v for k, v in line.items() if k != "io"},
            "vms": [{k: v for k, v in vm.items() if k != "io"} for vm in line["vms"]]}


def run_lines(capsys, *argv: str) -> list[str]:
    assert main(list(argv)) == 0
    return capsys.readouterr().out.splitlines()


# --------------------------------------------------------------------------- the printed stream


def test_json_with_io_adds_the_accesses_and_keeps_every_other_key(capsys):
    plain = [json.loads(x) for x in run_lines(capsys, "--demo", "--json", "-n", "3", "-d", "0.1")]
    with_io = [json.loads(x) for x in run_lines(capsys, "--demo", "--io", "--json", "-n", "3", "-d", "0.1")]
    assert all("io" not in line and all("io" not in vm for vm in line["vms"]) for line in plain)
    assert [without_io(line) for line in with_io] == plain  # an addition only
    for line, sample in zip(with_io, demo_samples(3)):
        assert json_io(line) == by_vm(sample)
        assert line["io"] == {"accesses": sum(a.count for a in sample.accesses), "drops": 0}
        assert all(vm["io"] == sorted(vm["io"], key=lambda r: -r["count"]) for vm in line["vms"])


def test_csv_with_io_adds_pio_and_mmio_rows_under_the_same_header(capsys):
    plain = run_lines(capsys, "--demo", "--csv", "-n", "2", "-d", "0.1")
    rows = run_lines(capsys, "--demo", "--io", "--csv", "-n", "2", "-d", "0.1")
    assert rows[0] == plain[0] == ",".join(COLUMNS)
    table = list(csv.DictReader(rows))
    assert [r for r in rows if ",pio," not in r and ",mmio," not in r] == plain
    got: dict[tuple, int] = {}
    for r in table:
        if r["kind"] in ("pio", "mmio"):
            assert r["reason"] in ("read", "write") and r["latency_count"] == ""
            key = (float(r["time"]), int(r["pid"]), r["kind"], r["reason"], int(r["code"]))
            got[key] = int(r["count"])
    times = sorted({k[0] for k in got})
    want = {(t, pid, space, d, addr): n for t, sample in zip(times, demo_samples(2))
            for pid, keys in by_vm(sample).items() for (space, d, addr), n in keys.items()}
    assert got == want and len(times) == 2


def test_batch_text_with_io_lists_each_vms_ports_and_addresses(capsys):
    out = "\n".join(run_lines(capsys, "--demo", "--io", "--once", "--vms", "1", "--vcpus", "2"))
    sample = demo_samples(1, vms=1, vcpus=2)[0]
    table = out.split("Port / MMIO address", 1)[1]
    for (space, d, addr), n in next(iter(by_vm(sample).values())).items():
        spelled = f"{addr:#06x}" if space == "pio" else f"{addr:#x}"
        assert any(spelled in line and d in line and str(n) in line.split() for line in table.splitlines()), spelled
    assert "Port / MMIO address" not in "\n".join(run_lines(capsys, "--demo", "--once", "--vms", "1"))


def test_guest_selection_narrows_the_io_too():
    src = SelectedSource(DemoIoSource(DemoSource(vms=6), io=True), NamePattern.parse("db-*"))
    iv = src.next_interval()
    assert iv is not None and iv.vms
    pids = {a.pid for a in src.last_io.accesses}
    assert pids and pids <= set(iv.vms) and all(iv.vms[p].name.startswith("db-") for p in pids)


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_live_json_with_io_has_the_real_guests_exact_counts_and_only_the_selected_guests(kvm_guest):
    g = kvm_guest("kvmtop-io-json", pio=40, mmio=6)
    other = kvm_guest("other-io-json", pio=7)
    proc = subprocess.Popen([sys.executable, "-m", "kvmtop", "--json", "--io", "-d", "0.2", "-g", "kvmtop-io-*"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [json.loads(proc.stdout.readline())]  # the collector runs: let the guests go
        g.go()
        other.go()
        g.wait_done()
        other.wait_done()
        total: dict = {}
        want = {("pio", "write", PIO_PORT): 40, ("pio", "write", DONE_PORT): 1, ("mmio", "write", MMIO_ADDR): 6}
        for _ in range(200):  # bounded: at most 200 intervals of 0.2 s
            if total.get(g.pid) == want:
                break
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            lines.append(json.loads(line))
            for pid, keys in json_io(lines[-1]).items():
                mine = total.setdefault(pid, {})
                for k, n in keys.items():
                    mine[k] = mine.get(k, 0) + n
        assert total == {g.pid: want}  # the other guest's accesses were not selected
        assert all(line["io"]["drops"] == 0 for line in lines)
    finally:
        proc.terminate()
        proc.wait(20)
        proc.stdout.close()
        proc.stderr.close()


# --------------------------------------------------------------------------- recordings


def test_io_in_a_record_is_ignored_by_a_reader_that_does_not_know_it():
    iv = DemoSource(vms=2).next_interval()
    record = interval_to_json(iv)
    with_io = {**record, "io": io_to_json(IoSample(1.0, (IoAccess(1, 2, PIO, True, 0x3F8, 5),)))}
    assert interval_from_json(with_io) == interval_from_json(record) == iv


def record_demo(path: str, io: bool, n: int = 3) -> None:
    """`kvmtop record --demo [--io] -d 0.1 --duration n*0.1`."""
    record_main(DemoIoSource(DemoSource(vms=6), io=io), path, 0.1, n * 0.1, out=StringIO(), io=io)


def test_record_io_replays_as_the_live_stream_and_old_recordings_still_replay(tmp_path, capsys):
    path, old = str(tmp_path / "io.kvmrec"), str(tmp_path / "old.kvmrec")
    record_demo(path, io=True)
    record_demo(old, io=False)
    live = [json.loads(x) for x in run_lines(capsys, "--demo", "--io", "--json", "-n", "3", "-d", "0.1")]
    assert [json.loads(x) for x in run_lines(capsys, "replay", path, "--json")] == live
    assert [json.loads(x) for x in run_lines(capsys, "replay", old, "--json")] == [without_io(x) for x in live]
    with RecordingReader(old) as reader:
        assert [reader.io(i) for i in range(len(reader))] == [None] * 3
    with RecordingReader(path) as reader:
        assert reader.meta["io"] is True and [reader.io(i) for i in range(3)] == demo_samples(3)
    replayed = [json.loads(x) for x in run_lines(capsys, "replay", path, "--json", "-g", "db-*")]
    for line in replayed:  # -g narrows a recording's samples too
        names = {vm["pid"]: vm["name"] for vm in line["vms"]}
        assert line["vms"] and all(names[pid].startswith("db-") for pid in json_io(line))


def test_report_of_a_recording_fills_pio_and_mmio_from_its_samples(tmp_path):
    path = str(tmp_path / "io.kvmrec")
    record_demo(path, io=True)
    out = StringIO()
    assert report_main(path, True, out) == 0
    d = json.loads(out.getvalue())
    want: dict[tuple[str, str, int], int] = {}
    for sample in demo_samples(3):
        for a in sample.accesses:
            key = ("pio" if a.space == PIO else "mmio", ("OUT" if a.write else "IN") if a.space == PIO
                   else ("W" if a.write else "R"), a.addr)
            want[key] = want.get(key, 0) + a.count
    got = {("pio", r["dir"], r["port"]): r["count"] for r in d["pio"]}
    got.update({("mmio", r["dir"], r["gpa"]): r["count"] for r in d["mmio"]})
    assert got == want
    assert all(r["latency_ns"]["count"] == 0 for r in d["pio"] + d["mmio"])  # counted, not timed
    vm = d["vms"][0]
    assert sum(r["count"] for r in vm["pio"]) == sum(a.count for s in demo_samples(3) for a in s.accesses
                                                     if a.pid == vm["pid"] and a.space == PIO)
    text = StringIO()
    assert report_main(path, False, text) == 0
    assert "kvm_pio accesses," in text.getvalue() and "0x3f8:POUT" in text.getvalue()


def test_a_damaged_io_part_makes_its_record_damaged_not_a_traceback(tmp_path):
    path = str(tmp_path / "bad.kvmrec")
    src = DemoSource(vms=1)
    with RecordingWriter(path, {"io": True}) as w:
        w.write(src.next_interval(), IoSample(1.0, (IoAccess(1, 2, MMIO, False, 0xFED000F0, 3),)))
        w.write(src.next_interval(), IoSample(1.0, (IoAccess(1, 2, "VGA", False, 0xA0000, 3),)))
        w.write(src.next_interval(), IoSample(1.0, (IoAccess(1, 2, PIO, True, -1, 3),)))
    with RecordingReader(path) as reader:
        assert len(reader) == 1 and reader.damaged == 2 and "io: space 'VGA'" in reader.warning


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_live_recording_with_io_reports_the_real_guests_exact_ports_and_addresses(kvm_guest, live, tmp_path):
    src = live(io=True)
    path = str(tmp_path / "live-io.kvmrec")
    with RecordingWriter(path, {"source": "live", "io": True}) as w:
        feed = Feed(src, interval_s=0.1, tap=lambda iv: w.write(iv, feed.last_io))
        feed.next_snapshot()
        g = kvm_guest("report-io", pio=4, mmio=2)
        g.go()
        g.wait_done()
        feed.next_snapshot()
    out = StringIO()
    assert report_main(path, True, out, Selection(pid=g.pid)) == 0
    d = json.loads(out.getvalue())
    assert {(r["dir"], r["port"]): r["count"] for r in d["pio"]} == {("OUT", PIO_PORT): 4, ("OUT", DONE_PORT): 1}
    assert {(r["dir"], r["gpa"]): r["count"] for r in d["mmio"]} == {("W", MMIO_ADDR): 2}
    assert [t["tid"] for t in d["threads"]] == [g.tid] and d["threads"][0]["pio"]


# --------------------------------------------------------------------------- replay in the dashboard


@pytest.mark.ui
async def test_replay_shows_the_recorded_io_in_the_guest_screen(tmp_path):
    from ui_helpers import open_guest, region_text, wait_for

    from kvmtop.ui.app import make_app
    from kvmtop.ui.widgets.vm_table import vm_key

    path = str(tmp_path / "io.kvmrec")
    record_demo(path, io=True)
    feed = Feed(RecordingSource(path), speed=1000.0)
    app = make_app(feed)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_for(pilot, lambda: app.snapshot is not None and app.snapshot.seq == 3)
        await open_guest(pilot)
        await wait_for(pilot, lambda: app.view.io is not None)
        await pilot.pause()
        assert app.view.io == demo_samples(3)[-1] and app.view.io_supported
        vm = next(v for v in app.snapshot.vms if vm_key(v) == app.screen.vm_key)
        text = region_text(app, app.screen.query_one("#io"))
        for s in app.view.io.stats(vm.pid)[:4]:
            assert any(s.address in line and s.direction in line for line in text.splitlines()), s
