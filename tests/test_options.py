"""Options mean what they say: honoured or refused with one clear line, never silently ignored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from kvmtop import cli
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.filtering import FilterError, ReasonFilter
from kvmtop.model import Interval, Stat, ThreadInterval, VmIdentity
from kvmtop.offline.recording_reader import read_recording
from kvmtop.snapshot_json import snapshot_to_json

ROOT = Path(__file__).resolve().parent.parent
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root")


def usage_error(capsys, argv: list[str]) -> str:
    """The one error line argparse prints for ``argv`` (exit status 2)."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("kvmtop") and ": error: " in err[-1]
    return err[-1]


# --------------------------------------------------------------------------- global options before a command


def test_global_interval_before_record_is_honoured(tmp_path, capsys):
    out = tmp_path / "r.kvmrec"
    assert cli.main(["-d", "0.5", "--demo", "record", "-o", str(out), "--duration", "1"]) == 0
    meta, intervals, warning = read_recording(str(out))
    assert warning is None
    assert meta["interval_s"] == 0.5 and meta["source"] == "demo"
    assert len(intervals) == 2


def test_command_options_win_over_global_ones(tmp_path):
    out = tmp_path / "r.kvmrec"
    assert cli.main(["-d", "0.5", "record", "--demo", "-d", "0.25", "-o", str(out), "--duration", "0.5"]) == 0
    meta, intervals, _ = read_recording(str(out))
    assert meta["interval_s"] == 0.25 and len(intervals) == 2


@pytest.mark.parametrize("argv, refused, command", [
    (["-p", "1", "replay", "x.kvmrec"], "-p/--pid", "replay"),
    (["-d", "2", "replay", "x.kvmrec"], "-d/--delay", "replay"),
    (["--once", "record", "-o", "x"], "--once", "record"),
    (["-n", "3", "doctor"], "-n/--iterations", "doctor"),
    (["--json", "--max-keys", "9", "doctor"], "--json, --max-keys", "doctor"),
    (["--filter", "HLT", "report", "x.txt"], "--filter", "report"),
])
def test_global_options_a_command_does_not_take_are_refused(capsys, argv, refused, command):
    line = usage_error(capsys, argv)
    assert line.endswith(f"{refused} does not apply to 'kvmtop {command}'")


TRACE = "  CPU 0/KVM-100 [000] ..... 10.000000: kvm_userspace_exit: reason KVM_EXIT_IO (2)\n"


def test_global_json_before_report_is_honoured(tmp_path, capsys):
    capture = tmp_path / "t.txt"
    capture.write_text(TRACE)
    assert cli.main(["--json", "report", str(capture)]) == 0
    assert json.loads(capsys.readouterr().out)["schema"] == "kvmtop.report/1"


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_global_pid_before_record_records_only_that_vm(tmp_path, kvm_guest):
    a = kvm_guest("kvmtop-rec-a", pio=1, loop=True)
    b = kvm_guest("kvmtop-rec-b", pio=1, loop=True)
    a.go(), b.go()
    out = tmp_path / "r.kvmrec"
    assert cli.main(["-p", str(a.pid), "-d", "0.5", "record", "-o", str(out), "--duration", "1"]) == 0
    meta, intervals, _ = read_recording(str(out))
    assert meta["interval_s"] == 0.5 and len(intervals) == 2
    assert {t.pid for iv in intervals for t in iv.threads} == {a.pid}
    assert {pid for iv in intervals for pid in iv.vms} == {a.pid}


# --------------------------------------------------------------------------- -p


@needs_root
def test_pid_that_is_not_running_is_an_error(capsys):
    child = subprocess.Popen(["true"])
    child.wait()
    assert cli.main(["-p", str(child.pid), "--once"]) == 1
    assert capsys.readouterr().err == f"kvmtop: -p {child.pid}: no process {child.pid} is running\n"


@needs_root
def test_pid_of_a_process_without_a_vm_is_an_error(capsys):
    assert cli.main(["-p", str(os.getpid()), "--once"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"kvmtop: -p {os.getpid()}: process {os.getpid()} (") and "is not a KVM guest" in err


@pytest.mark.kvm
@needs_root
def test_pid_of_a_vcpu_thread_points_at_its_process(capsys, kvm_guest):
    g = kvm_guest("kvmtop-tid")
    assert cli.main(["-p", str(g.tid), "record", "-o", "/nonexistent/never-written", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert f"{g.tid} is a thread (CPU 0/KVM) of process {g.pid}" in err and f"({g.pid})" in err


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_pid_of_a_vm_is_accepted(capsys, kvm_guest):
    g = kvm_guest("kvmtop-pid-ok")
    assert cli.main(["-p", str(g.pid), "--once"]) == 0
    assert f"VM kvmtop-pid-ok (pid {g.pid})" in capsys.readouterr().out


# --------------------------------------------------------------------------- --filter


@pytest.mark.parametrize("term, close", [("BOGUS", None), ("KVM_EXIT_IOO", "KVM_EXIT_IO"),
                                          ("EPT_VIOLATON", "EPT_VIOLATION"), ("hlt,HTL", "HLT")])
def test_unknown_filter_names_are_an_error_with_close_matches(capsys, term, close):
    line = usage_error(capsys, ["--demo", "--once", "--filter", term])
    bad = term.split(",")[-1]
    assert f"unknown exit reason '{bad}'" in line
    if close:
        assert "close: " in line and close in line.split("close: ")[1]
    else:
        assert "close" not in line


def test_replay_filter_is_checked_too(capsys):
    assert "unknown exit reason 'NOPE'" in usage_error(capsys, ["replay", "x.kvmrec", "--filter", "NOPE"])


def test_filter_aliases_become_shown_names():
    assert ReasonFilter.parse("MMIO,EXIT_REASON_HLT,48,npf", strict=True).terms == \
        {"KVM_EXIT_MMIO", "HLT", "EPT_VIOLATION", "NPF"}
    assert ReasonFilter.parse("!restart", strict=True).exclude
    with pytest.raises(FilterError):
        ReasonFilter.parse(" , ", strict=True)


def test_once_and_batch_print_the_active_filter(capsys):
    assert cli.main(["--demo", "--once", "--filter", "HLT,KVM_EXIT_IO"]) == 0
    out = capsys.readouterr().out
    assert "filter: HLT,KVM_EXIT_IO (other exit reasons are not shown)" in out.splitlines()[2]
    assert cli.main(["--demo", "--json", "-n", "1", "--filter", "!hlt"]) == 0
    assert json.loads(capsys.readouterr().out)["filter"] == "not HLT"
    assert cli.main(["--demo", "--json", "-n", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["filter"] is None


# --------------------------------------------------------------------------- record --duration, replay --speed


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "0", "-1", "0.05", "1e300"])
def test_bad_record_durations_are_refused_and_write_nothing(tmp_path, capsys, value):
    out = tmp_path / "r.kvmrec"
    line = usage_error(capsys, ["record", "--demo", "-o", str(out), f"--duration={value}"])
    assert "--duration" in line
    assert not out.exists()


def test_duration_shorter_than_the_interval_is_refused(tmp_path, capsys):
    line = usage_error(capsys, ["record", "--demo", "-d", "2", "-o", str(tmp_path / "r"), "--duration", "1"])
    assert "shorter than the interval (2 s)" in line


@pytest.mark.parametrize("value", ["0", "-1", "1e-9", "nan", "inf", "1e6", "fast"])
def test_bad_replay_speeds_are_refused(capsys, value):
    line = usage_error(capsys, ["replay", "x.kvmrec", f"--speed={value}"])
    assert "--speed" in line


def test_bad_doctor_probe_time_is_refused(capsys):
    assert "--probe-seconds" in usage_error(capsys, ["doctor", "--probe-seconds", "nan"])


# --------------------------------------------------------------------------- doctor without privileges


@needs_root
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_doctor_without_privileges_says_tracefs_is_unreadable_not_unmounted():
    from kvmtop import tracefs

    if not tracefs.mount_points():
        pytest.skip("tracefs is not mounted on this host")
    if os.stat(tracefs.mount_points()[0]).st_mode & 0o005:
        pytest.skip("tracefs is world-readable here: an unprivileged user can read it")
    res = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                          sys.executable, "-m", "kvmtop", "doctor", "--probe-seconds", "0"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    line = next(ln for ln in res.stdout.splitlines() if ln.startswith("FAIL tracefs"))
    assert f"mounted at {tracefs.mount_points()[0]} but not readable by this user" in line
    assert "not mounted" not in line


def test_tracefs_mount_table_parsing(tmp_path):
    from kvmtop import tracefs

    table = tmp_path / "mounts"
    table.write_text("proc /proc proc rw 0 0\nnodev /srv/my\\040trace tracefs rw 0 0\n")
    assert tracefs.mount_points(str(table)) == ["/srv/my trace"]
    assert tracefs.missing(str(table)) == \
        "tracefs is mounted at /srv/my trace but not readable by this user (run as root)"
    table.write_text("proc /proc proc rw 0 0\n")
    assert tracefs.missing(str(table)).startswith("tracefs is not mounted")


# --------------------------------------------------------------------------- JSON is safe to print


HOSTILE = "a\x9b31mb\x9dc\u202ed\x1b[2Je\u2066f\x7fg"


def test_json_escapes_c0_c1_and_bidi_controls():
    iv = Interval(time=0.0, interval_s=1.0, threads=(ThreadInterval(pid=5, tid=6, userspace={2: Stat(1)}),),
                  vms={5: VmIdentity(pid=5, name=HOSTILE, comms={6: HOSTILE})})
    line = snapshot_to_json(SnapshotBuilder().build(iv))
    for ch in "\x9b\x9d\u202e\x1b\u2066\x7f":
        assert ch not in line
    for esc in ("\\u009b", "\\u009d", "\\u202e", "\\u001b", "\\u2066", "\\u007f"):
        assert esc in line
    d = json.loads(line)
    assert d["vms"][0]["name"] == HOSTILE and d["vms"][0]["vcpus"][0]["comm"] == HOSTILE
    assert "é" in snapshot_to_json(SnapshotBuilder().build(
        Interval(time=0.0, interval_s=1.0, vms={1: VmIdentity(pid=1, name="café")})))  # text stays text


def test_report_json_escapes_hostile_comms(tmp_path, capsys):
    trace = tmp_path / "t.txt"
    comm = "CPU\u202e0/KVM\x9b"
    trace.write_text(f"  {comm}-100 [000] ..... 10.000000: kvm_userspace_exit: reason KVM_EXIT_IO (2)\n"
                     f"  {comm}-100 [000] ..... 10.000100: kvm_userspace_exit: reason KVM_EXIT_IO (2)\n")
    assert cli.main(["report", "--json", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "\u202e" not in out and "\x9b" not in out and "\\u202e" in out
