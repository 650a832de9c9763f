"""--once / --batch / --json output and the CLI's error handling."""

import json

import pytest
from fake_sources import ListSource, make_interval

from kvmtop import cli
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.commands import stream
from kvmtop.snapshot_json import snapshot_to_dict
from kvmtop.text import render

LATENCY_KEYS = {"count", "min", "max", "sum", "p50", "p90", "p99", "p999"}


def test_json_contract_fields():
    d = snapshot_to_dict(SnapshotBuilder().build(make_interval(4)))
    assert d["schema"] == "kvmtop.snapshot/1"
    assert {"time", "interval_s", "vms", "host", "collector"} <= d.keys()
    assert {"drops", "unmatched_exits", "unmatched_entries", "poll_ms"} <= d["collector"].keys()
    vm = next(v for v in d["vms"] if v["pid"] == 10)
    assert {"pid", "name", "exits", "exits_per_s", "vcpus", "reasons", "userspace_exits", "hypercalls",
            "requests"} <= vm.keys()
    assert {"index", "tid", "vcpu_id", "exits", "exits_per_s"} <= vm["vcpus"][0].keys()
    hlt = next(r for r in vm["reasons"] if r["name"] == "HLT")
    assert {"isa", "code", "name", "count", "per_s", "latency_ns"} <= hlt.keys()
    assert hlt["latency_ns"].keys() == LATENCY_KEYS
    assert hlt["latency_ns"]["min"] == 40_000 and hlt["latency_ns"]["max"] == 40_003
    assert vm["requests"][0] == {"bit": 14, "name": "EVENT", "count": 4, "share": round(4 / 12, 6), "lost": 0}
    beta = next(v for v in d["vms"] if v["pid"] == 20)
    assert beta["userspace_exits"][0]["name"] == "KVM_EXIT_IO"


def test_text_shows_names_literally_and_safely():
    out = render(SnapshotBuilder().build(make_interval(2)))
    assert "[b]beta[/b]\\x1b[2J" in out  # markup kept literal, the escape made visible
    assert "\x1b" not in out
    assert "EPT_VIOLATION" in out and "KVM_EXIT_IO" in out


@pytest.fixture
def fake_live(monkeypatch):
    monkeypatch.setattr(stream, "live_source", lambda args: ListSource())


def test_cli_json_batch_prints_n_lines(fake_live, capsys):
    assert cli.main(["--json", "-n", "2", "-d", "0.1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    assert [json.loads(x)["vms"][0]["exits"] for x in lines] == [3, 6]


def test_cli_once_with_filter(fake_live, capsys):
    assert cli.main(["--once", "-d", "0.1", "--filter", "HLT"]) == 0
    out = capsys.readouterr().out
    assert "HLT" in out and "EPT_VIOLATION" not in out


def test_cli_source_error_is_one_line(monkeypatch, capsys):
    from kvmtop.errors import SourceError

    class Broken(ListSource):
        def open(self):
            raise SourceError("kvm:kvm_userspace_exit tracepoint is missing")

    monkeypatch.setattr(stream, "live_source", lambda args: Broken())
    assert cli.main(["--once"]) == 1
    err = capsys.readouterr().err
    assert err == "kvmtop: kvm:kvm_userspace_exit tracepoint is missing\n"


def test_cli_rejects_bad_interval(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["-d", "abc"])
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
