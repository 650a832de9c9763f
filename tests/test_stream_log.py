"""--batch --json|--csv -o FILE: one record per interval, reopened on SIGHUP without losing one."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys

import pytest
from export_helpers import REPO, wait_for
from fake_sources import ListSource, make_interval

from kvmtop import cli
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.commands import stream
from kvmtop.snapshot_csv import COLUMNS, rows, snapshot_to_csv

DEMO_STEP = 1.0  # the demo source stamps interval n at EPOCH + n seconds, whatever -d is


def start_logging(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kvmtop", "--demo", "-d", "0.1", *args], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return err


def read(path) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def json_times(text: str) -> list[float]:
    return [json.loads(line)["time"] for line in text.splitlines()]


def csv_times(text: str) -> list[float]:
    table = list(csv.reader(io.StringIO(text)))
    assert tuple(table[0]) == COLUMNS  # every file starts with the header
    return sorted({float(r[0]) for r in table[1:]})


def assert_consecutive(times: list[float]) -> None:
    assert times == [times[0] + i * DEMO_STEP for i in range(len(times))], times


@pytest.mark.parametrize("fmt, times_of", [("--json", json_times), ("--csv", csv_times)], ids=["json", "csv"])
def test_sighup_reopens_the_file_without_losing_an_interval(tmp_path, fmt, times_of):
    log, rotated = tmp_path / "kvmtop.log", tmp_path / "kvmtop.log.1"
    proc = start_logging("--batch", fmt, "-o", str(log))
    try:
        wait_for(lambda: len(times_of(read(log)) if read(log) else []) >= 3, 60, what="three intervals")
        os.rename(log, rotated)  # logrotate's move; the exporter keeps writing to the moved file ...
        proc.send_signal(signal.SIGHUP)  # ... until told to reopen
        wait_for(lambda: read(log) and len(times_of(read(log))) >= 3, 30, what="three intervals in the new file")
    finally:
        err = stop(proc)
    assert "Traceback" not in err and proc.stdout is not None
    old, new = times_of(read(rotated)), times_of(read(log))
    assert old and new and old[-1] < new[0]
    assert_consecutive(old + new)  # nothing lost, nothing twice


def test_csv_rows_parse_with_stable_columns():
    snap = SnapshotBuilder().build(make_interval(3))
    table = list(csv.DictReader(io.StringIO(",".join(COLUMNS) + "\n" + snapshot_to_csv(snap))))
    assert len(table) == len(rows(snap))
    hlt = next(r for r in table if r["vm"] == "alpha" and r["reason"] == "HLT")
    assert (hlt["kind"], hlt["isa"], hlt["code"], hlt["count"]) == ("exit", "VMX", "12", "3")
    assert (hlt["latency_count"], hlt["latency_min_ns"], hlt["latency_max_ns"]) == ("3", "40000", "40002")
    io_row = next(r for r in table if r["kind"] == "userspace")
    assert io_row["reason"] == "KVM_EXIT_IO" and io_row["vm"] == "[b]beta[/b]\\x1b[2J"  # printable, no escape byte
    req = next(r for r in table if r["kind"] == "request")
    assert (req["reason"], req["code"], req["count"], req["latency_p50_ns"]) == ("EVENT", "14", "3", "")
    assert "\x1b" not in snapshot_to_csv(snap)


def test_csv_to_stdout_starts_with_the_header(monkeypatch, capsys):
    monkeypatch.setattr(stream, "live_source", lambda args: ListSource())
    assert cli.main(["--csv", "-n", "2", "-d", "0.1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ",".join(COLUMNS)
    assert sum(1 for ln in lines if ln.startswith("1700000001.0,")) == 4  # HLT, EPT_VIOLATION, request, IO
    assert sum(1 for ln in lines if ln.startswith("1700000002.0,")) == 4


def test_unwritable_output_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(stream, "live_source", lambda args: ListSource())
    assert cli.main(["--json", "-n", "1", "-d", "0.1", "-o", str(tmp_path / "no" / "such" / "dir.log")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("kvmtop: cannot open") and err.count("\n") == 1


def test_output_file_appends_whole_records(monkeypatch, tmp_path):
    monkeypatch.setattr(stream, "live_source", lambda args: ListSource())
    out = tmp_path / "x.jsonl"
    out.write_text('{"earlier": true}\n')
    assert cli.main(["--json", "-n", "2", "-d", "0.1", "-o", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert json.loads(lines[0]) == {"earlier": True}
    assert [json.loads(x)["vms"][0]["exits"] for x in lines[1:]] == [3, 6]
