"""kvmtop doctor: runs the real checks on this host (root, kernel 6.18 with KVM)."""

from __future__ import annotations

import fcntl
import os
import re
import termios
import threading

import pytest

import kvmtop.tracefs
from kvmtop.bpf import checks as doctor
from kvmtop.commands.doctor import main as doctor_main

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@pytest.fixture(autouse=True)
def _restore_bcc_env(monkeypatch):
    """run_checks may point BCC_KERNEL_SOURCE at a header tree; undo that after each test."""
    old = os.environ.get("BCC_KERNEL_SOURCE")
    monkeypatch.setenv("BCC_KERNEL_SOURCE", old or "")
    if old is None:
        monkeypatch.delenv("BCC_KERNEL_SOURCE")


def needs_headers():
    if not doctor.check_headers().ok:
        pytest.skip("no kernel headers for BCC (set BCC_KERNEL_SOURCE)")


def needs_healthy_host():
    """The one-line tests break one thing; everything else must pass to begin with."""
    bad = doctor.failed(doctor.run_checks(probe_seconds=0))
    if bad:
        pytest.skip(f"host not fully set up: {bad[0].name}")


def by_name(checks):
    return {c.name: c for c in checks}


def lines_of(capsys):
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return out.splitlines()


@needs_root
def test_checks_on_this_host():
    checks = by_name(doctor.run_checks(probe_seconds=0))
    assert checks["privileges"].ok
    assert checks["tracefs"].ok
    assert checks["tracepoint kvm:kvm_exit"].ok and checks["tracepoint kvm:kvm_exit"].essential
    assert checks["kvm_exit requests field"].ok  # 6.14+; this kernel is 6.18
    assert checks["/dev/kvm"].ok
    assert checks["BPF probe"].skipped


@needs_root
@pytest.mark.bpf
def test_probe_counts_each_event():
    needs_headers()
    events = [(t.category, t.event) for t in doctor.TRACEPOINTS]
    stop = threading.Event()

    def ioctls():  # keeps syscalls:sys_enter_ioctl busy for the whole probe window
        with open("/dev/null", "rb") as f:
            while not stop.is_set():
                try:
                    fcntl.ioctl(f, termios.FIONREAD, b"\0\0\0\0")
                except OSError:
                    pass

    worker = threading.Thread(target=ioctls)
    worker.start()
    try:
        counts = doctor.probe_tracepoints(events, 0.2)
    finally:
        stop.set()
        worker.join()
    assert set(counts) == {f"{c}:{e}" for c, e in events}
    assert all(isinstance(n, int) and n >= 0 for n in counts.values())
    assert counts["syscalls:sys_enter_ioctl"] > 0


@needs_root
@pytest.mark.bpf
def test_run_checks_reports_probe_per_event():
    needs_headers()
    checks = doctor.run_checks(probe_seconds=0.2)
    names = by_name(checks)
    assert names["BPF probe"].ok, names["BPF probe"].detail
    for tp in doctor.TRACEPOINTS:
        fired = names[f"fires {tp.name}"]
        assert re.match(r"\d+ events", fired.detail)
        assert fired.ok == (not fired.detail.startswith("0 events"))
        assert not fired.essential


def test_not_root_fails_with_one_clear_line(monkeypatch, capsys):
    needs_healthy_host()
    monkeypatch.setattr(doctor, "_euid", lambda: 1000)
    monkeypatch.setattr(doctor, "_effective_caps", lambda: 0)
    rc = doctor_main([])
    lines = lines_of(capsys)
    assert rc != 0
    fails = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(fails) == 1 and "privileges" in fails[0] and "root" in fails[0]
    assert any(ln.startswith("SKIP BPF probe") for ln in lines)


def test_capabilities_without_root_are_enough(monkeypatch):
    monkeypatch.setattr(doctor, "_euid", lambda: 1000)
    monkeypatch.setattr(doctor, "_effective_caps", lambda: 1 << 38 | 1 << 39)
    assert doctor.check_privileges().ok
    monkeypatch.setattr(doctor, "_effective_caps", lambda: 1 << 39)  # CAP_BPF alone is not
    assert not doctor.check_privileges().ok


def test_tracefs_missing_fails_with_one_clear_line(monkeypatch, capsys):
    needs_healthy_host()
    monkeypatch.setattr(kvmtop.tracefs, "find", lambda mount=False: None)
    rc = doctor_main([])
    lines = lines_of(capsys)
    assert rc != 0
    fails = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(fails) == 1 and "tracefs" in fails[0] and "not mounted" in fails[0]


def test_crashing_check_becomes_a_failed_line(monkeypatch, capsys):
    def boom():
        raise RuntimeError("libbcc exploded")

    monkeypatch.setattr(doctor, "check_bcc", boom)
    rc = doctor_main(["--probe-seconds", "0"])
    lines = lines_of(capsys)
    assert rc != 0
    assert "FAIL bcc: check crashed: RuntimeError: libbcc exploded" in lines


@needs_root
def test_missing_optional_tracepoint_warns_but_passes(monkeypatch, capsys):
    needs_healthy_host()
    real = kvmtop.tracefs.event_exists
    monkeypatch.setattr(kvmtop.tracefs, "event_exists",
                        lambda cat, ev, root=None: ev != "kvm_hypercall" and real(cat, ev, root))
    rc = doctor_main(["--probe-seconds", "0"])
    lines = lines_of(capsys)
    warn = [ln for ln in lines if ln.startswith("WARN tracepoint kvm:kvm_hypercall")]
    assert len(warn) == 1 and "hypercall table stays empty" in warn[0]
    assert rc == 0


@needs_root
def test_missing_essential_tracepoint_fails(monkeypatch, capsys):
    needs_healthy_host()
    real = kvmtop.tracefs.event_exists
    monkeypatch.setattr(kvmtop.tracefs, "event_exists",
                        lambda cat, ev, root=None: ev != "kvm_entry" and real(cat, ev, root))
    assert doctor_main(["--probe-seconds", "0"]) == 1
    fails = [ln for ln in lines_of(capsys) if ln.startswith("FAIL")]
    assert len(fails) == 1 and "kvm:kvm_entry" in fails[0] and "latency" in fails[0]


def test_headers_from_prepared_tree_feed_bcc(monkeypatch, tmp_path):
    if os.path.isdir(f"/lib/modules/{os.uname().release}/build"):
        pytest.skip("the running kernel has its build dir; the fallback is not used")
    (tmp_path / "include").mkdir()
    (tmp_path / "arch").mkdir()
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    monkeypatch.setattr(doctor, "_prepared_headers", lambda: str(tmp_path))
    check = doctor.check_headers()
    assert check.ok and str(tmp_path) in check.detail
    assert os.environ["BCC_KERNEL_SOURCE"] == str(tmp_path)


def test_headers_missing_is_essential(monkeypatch, tmp_path):
    if os.path.isdir(f"/lib/modules/{os.uname().release}/build"):
        pytest.skip("the running kernel has its build dir")
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        pytest.skip("kheaders available")
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tmp_path))  # no include/ or arch/
    monkeypatch.setattr(doctor, "_prepared_headers", lambda: None)
    check = doctor.check_headers()
    assert not check.ok and check.essential
    assert "BCC_KERNEL_SOURCE" in check.detail and "live mode will not start" in check.consequence
