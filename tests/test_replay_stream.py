"""kvmtop replay --once/--batch/--json/--csv: a capture or a recording printed by the front end
that prints live intervals (commands/stream.py), with the rates of partial windows divided by the
time they cover."""

from __future__ import annotations

import json
import os
import re

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.cli import main
from kvmtop.offline.recording import RecordingWriter
from kvmtop.snapshot_json import snapshot_to_json
from kvmtop.sources.trace import TraceSource

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TWO_VMS = os.path.join(DATA, "guest", "guest-ftrace_two-vms_round-trips.txt")
LKML = os.path.join(DATA, "traces", "lkml-2023-03-30_krause-cr0wp_vmx-newfmt_2vcpu.txt")
AMD = os.path.join(DATA, "traces", "amd-svm_kvm-lists_2019-2024_three-eras.txt")


def test_replay_json_of_a_capture_divides_by_the_time_covered(capsys):
    assert main(["replay", TWO_VMS, "--json"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    d = json.loads(line)
    assert d["schema"] == "kvmtop.snapshot/1"
    # one window of 1 s, but the capture covers .289515 -> .295021: 5506 us, not 1 s
    assert (d["time"], d["interval_s"]) == (2300.295021, 0.005506)
    h = d["host"]
    assert h["userspace_exits"] == 13 and h["userspace_exits_per_s"] == round(13 / 0.005506, 3)
    assert {v["pid"]: sum(u["count"] for u in v["userspace_exits"]) for v in d["vms"]} == {26402: 7, 26405: 6}


def test_replay_batch_text_is_the_live_text(capsys):
    # the excerpts of the AMD file: 5 stretches of capture, each followed by one empty interval
    assert main(["replay", AMD, "--batch", "-n", "3"]) == 0
    out = capsys.readouterr().out
    blocks = out.split("\n\nkvmtop ")
    assert len(blocks) == 3
    # 43752's excerpt: 3615.602298 -> .602313, 15 us; 3 exits in it; trace-clock times, not dates
    assert out.startswith("kvmtop t=3615.602313s (trace clock)  interval 15.0µs  VMs 1  vCPUs 5  exits 200k/s")
    assert "note: imported from amd-svm_kvm-lists_2019-2024_three-eras.txt: windows of 1 s of trace time" in out
    assert blocks[1].startswith("t=3617.000000s (trace clock)  interval 1.00s")


def test_replay_once_prints_one_interval(capsys):
    assert main(["replay", AMD, "--once"]) == 0
    out = capsys.readouterr().out
    # 43752's excerpt: two #GP exits (3 and 7 us), one MSR exit (3 us) in 15 us
    assert out.count("kvmtop t=") == 1
    assert re.search(r"GP excp\s+2\s+133k\s+67%\s+3\.00µs", out) and re.search(r"msr\s+1\s+66\.7k\s+33%", out)


def test_replay_of_a_recording_prints_what_live_prints(tmp_path, capsys):
    intervals = TraceSource(LKML, 0.0001).intervals
    path = str(tmp_path / "lkml.kvmrec")
    with RecordingWriter(path, {"source": "lkml"}) as w:
        for iv in intervals:
            w.write(iv)
    out = tmp_path / "out.jsonl"
    assert main(["replay", path, "--json", "-n", "4", "-o", str(out)]) == 0
    builder = SnapshotBuilder()
    assert out.read_text().splitlines() == [snapshot_to_json(builder.build(iv)) for iv in intervals[:4]]
    assert capsys.readouterr().out == ""
    assert main(["replay", path, "--csv"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].startswith("time,") and len(rows) > 5


def test_replay_of_a_cut_recording_warns_on_stderr(tmp_path, capsys):
    path = str(tmp_path / "cut.kvmrec")
    w = RecordingWriter(path, {"source": "lkml"})
    for iv in TraceSource(LKML, 0.0001).intervals:
        w.write(iv)
    w._f.flush()  # the recorder was killed: no end record
    assert main(["replay", path, "--json"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 5
    assert captured.err.startswith("kvmtop replay: recording cut.kvmrec: 5 intervals, stops at byte ")
    assert "(truncated: no end record" in captured.err
    w.close()
