"""Captures made here and now of the real test guest, read by kvmtop report: ftrace text made
with the command lines kvmtop prints when a figure is missing, perf.data through perf script,
trace.dat through trace-cmd report. Expected counts come from the guest itself (its ``done``
line counts every exit it handled, the final DONE out included)."""

from __future__ import annotations

import io
import json
import os
import select
import shutil
import signal
import subprocess
import time

import pytest

from kvmtop import tracefs
from kvmtop.commands.report import report_main
from kvmtop.offline.capture_advice import HOW_TO_RECORD
from kvmtop.testing.ftrace_capture import FtraceCapture

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="tracing needs root")
CODES = {"KVM_EXIT_IO": 2, "KVM_EXIT_HLT": 5, "KVM_EXIT_MMIO": 6}
PIO, MMIO, HLT = 3, 2, 1


def report(path: str) -> dict:
    out = io.StringIO()
    assert report_main(path, True, out) == 0
    return json.loads(out.getvalue())


def counts(d: dict) -> dict[str, int]:
    return {u["name"]: u["count"] for u in d["userspace_exits"]}


def paired(d: dict) -> dict[str, int]:
    return {u["name"]: u["latency_ns"]["count"] for u in d["userspace_exits"]}


def expected(exits: dict[str, int]) -> dict[str, int]:
    return {k: n for k, n in exits.items() if n}


def answered(exits: dict[str, int]) -> dict[str, int]:
    """Round trips: every exit but the final DONE out is answered with KVM_RUN."""
    return {k: n - (k == "KVM_EXIT_IO") for k, n in exits.items() if n}


@pytest.mark.kvm
@needs_root
def test_the_advised_ftrace_commands_record_every_round_trip(kvm_guest, tmp_path):
    ftrace = HOW_TO_RECORD["ftrace"]
    assert ftrace[0].startswith("cd /sys/kernel/tracing") and ftrace[-1].startswith("cat trace_pipe")
    guest = kvm_guest("advice", pio=PIO, mmio=MMIO, hlt=HLT, mmio_sleep_ms=1)
    # the advice's lines, run by sh in a private tracefs instance rather than the top level (other
    # users' tracing stays untouched), limited to the guest's tasks; the trace file instead of the
    # blocking trace_pipe
    inst = os.path.join(tracefs.require(), "instances", f"kvmtop-advice-{os.getpid()}")
    os.mkdir(inst)
    try:
        script = "\n".join([f"cd {inst}", f"echo {guest.pid} {guest.tid} > set_event_pid", *ftrace[1:-1]])
        subprocess.run(["sh", "-e", "-c", script], check=True, timeout=30)
        guest.go()
        exits = guest.wait_done()
        with open(os.path.join(inst, "trace")) as f:
            text = f.read()
    finally:
        with open(os.path.join(inst, "events", "enable"), "w") as f:
            f.write("0")
        os.rmdir(inst)
    path = tmp_path / "trace.txt"
    path.write_text(text)
    d = report(str(path))
    assert counts(d) == expected(exits) and paired(d) == answered(exits)
    assert d["unmatched_userspace_exits"] == 1
    assert not any("round trips" in m["figure"] for m in d["missing"])
    # the tgid column (options/record-tgid) groups the vCPU thread into the guest's process
    assert [(v["pid"], [t["tid"] for t in v["threads"]]) for v in d["vms"]] == [(guest.pid, [guest.tid])]
    # MMIO round trips include the guest's 1 ms handler
    mmio = next(u for u in d["userspace_exits"] if u["name"] == "KVM_EXIT_MMIO")
    assert mmio["latency_ns"]["min"] >= 1_000_000


def _open_fifo_for_writing(path: str, deadline: float) -> int:
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: perf has not opened its end yet
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _ack(fd: int, deadline: float) -> bytes:
    got = b""
    while b"\n" not in got:
        left = deadline - time.monotonic()
        assert left > 0 and select.select([fd], [], [], left)[0], "perf did not acknowledge"
        got += os.read(fd, 64)
    return got


@pytest.mark.kvm
@needs_root
@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed (scripts/setup.sh installs it)")
def test_perf_data_is_read_through_perf_script(kvm_guest, tmp_path):
    guest = kvm_guest("perf-data", pio=PIO, mmio=MMIO, hlt=HLT)
    ctl, ack = str(tmp_path / "ctl"), str(tmp_path / "ack")
    os.mkfifo(ctl)
    os.mkfifo(ack)
    data = str(tmp_path / "perf.data")
    # started disabled and enabled through its control fifo: the ack says it is recording.
    # (syscalls:sys_enter_ioctl is left out: perf recorded none of them in some runs on this host)
    perf = subprocess.Popen(
        ["perf", "record", "-q", "-D", "-1", "--control", f"fifo:{ctl},{ack}", "-o", data,
         "-e", "kvm:kvm_userspace_exit", "-e", "kvm:kvm_pio", "-e", "kvm:kvm_mmio", "-p", str(guest.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    fds: list[int] = []
    try:
        deadline = time.monotonic() + 60
        fds.append(os.open(ack, os.O_RDONLY | os.O_NONBLOCK))
        fds.append(_open_fifo_for_writing(ctl, deadline))
        os.write(fds[1], b"enable\n")
        assert _ack(fds[0], deadline).split(b"\n")[0] == b"ack"
        guest.go()
        exits = guest.wait_done()
        perf.send_signal(signal.SIGINT)
        # perf record writes its file, then re-raises the signal
        assert perf.wait(60) in (0, -signal.SIGINT), perf.stderr.read()
    finally:
        if perf.poll() is None:
            perf.kill()
            perf.wait()
        perf.stderr.close()
        for fd in fds:
            os.close(fd)
    with open(data, "rb") as f:
        assert f.read(8) == b"PERFILE2"
    d = report(data)
    assert d["read_error"] is None
    assert counts(d) == expected(exits)
    # perf script -F +pid: the pid/tid column groups the thread into the guest's process
    assert [(t["tid"], t["pid"], t["vm_pid"]) for t in d["threads"]] == [(guest.tid, guest.pid, guest.pid)]
    assert {p["name"]: p["count"] for p in d["pio"]} == {"0x3f0:POUT": PIO, "0x3f1:POUT": 1}
    assert {m["name"]: m["count"] for m in d["mmio"]} == {"0x8000:W": MMIO}
    # no KVM_RUN entries and no kvm_entry: the report says round trips need them, and how
    assert any("round trips" in m["figure"] for m in d["missing"]) and d["how_to_record"] is not None
    # perf script --ns: nanosecond timestamps (both a whole microsecond: one chance in a million)
    assert d["source"]["first_ts_ns"] % 1000 or d["source"]["last_ts_ns"] % 1000


@pytest.mark.kvm
@needs_root
@pytest.mark.skipif(shutil.which("trace-cmd") is None,
                    reason="trace-cmd is not installed (scripts/setup.sh installs it)")
def test_trace_dat_is_read_through_trace_cmd_report(kvm_guest, tmp_path):
    guest = kvm_guest("trace-dat", pio=PIO, mmio=MMIO, hlt=HLT)
    name = f"kvmtop-test-dat-{os.getpid()}"
    data = str(tmp_path / "trace.dat")
    # trace-cmd record needs to write /proc/sys/kernel/ftrace_enabled, which this host refuses;
    # trace-cmd extract writes what an instance's buffer holds
    with FtraceCapture(pids=[guest.pid, guest.tid], name=name):
        guest.go()
        exits = guest.wait_done()
        done = subprocess.run(["trace-cmd", "extract", "-B", name, "-o", data], timeout=120,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"trace-cmd extract: exit {done.returncode}: {done.stderr[-500:]}"
    d = report(data)
    assert d["read_error"] is None
    # trace-cmd report prefixes every line with the instance's name; each event is still read
    assert d["bad_line_count"] == 0
    assert counts(d) == expected(exits) and paired(d) == answered(exits)
    assert [t["tid"] for t in d["threads"]] == [guest.tid]
    # trace-cmd report -t: nanosecond timestamps (every round trip a whole microsecond: unlikely)
    assert any(u["latency_ns"]["sum"] % 1000 for u in d["userspace_exits"])


def test_a_converter_that_is_not_installed_is_one_line(tmp_path, monkeypatch, capsys):
    path = tmp_path / "perf.data"
    path.write_bytes(b"PERFILE2" + bytes(200))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert report_main(str(path), True, io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "perf script --ns -F +pid -i FILE" in err and "not installed" in err


@pytest.mark.skipif(shutil.which("trace-cmd") is None or shutil.which("perf") is None,
                    reason="perf or trace-cmd is not installed (scripts/setup.sh installs them)")
def test_a_damaged_binary_capture_says_why_it_gave_nothing(tmp_path, capsys):
    perf_data = tmp_path / "perf.data"
    perf_data.write_bytes(b"PERFILE2" + bytes(200))
    assert failure(str(perf_data), capsys).startswith(f"kvmtop report: {perf_data}: perf exited with status")
    dat = tmp_path / "trace.dat"
    dat.write_bytes(b"\x17\x08Dtracing" + bytes(200))  # trace-cmd says nothing and exits 0 on this
    assert failure(str(dat), capsys).startswith(f"kvmtop report: {dat}: trace-cmd report printed nothing")


def failure(path: str, capsys) -> str:
    """A file with no trace event at all: status 1 and one line on stderr (issue 8), no report."""
    out = io.StringIO()
    assert report_main(path, True, out) == 1 and out.getvalue() == ""
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err
