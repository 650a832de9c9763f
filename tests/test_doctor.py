"""kvmtop doctor: runs the real checks on this host (root, kernel 6.18 with KVM)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import termios
import threading

import pytest
from test_bpf_program import _fake_packages

import kvmtop.tracefs
from kvmtop import cli
from kvmtop.bpf import checks as doctor
from kvmtop.bpf import headers
from kvmtop.bpf.program import OPTIONAL, REQUIRED
from kvmtop.commands import doctor as doctor_command


def needs_root(test):
    """Reads tracefs: the root group, skipped without root."""
    return pytest.mark.root(pytest.mark.skipif(os.geteuid() != 0, reason="needs root")(test))


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
                with contextlib.suppress(OSError):
                    fcntl.ioctl(f, termios.FIONREAD, b"\0\0\0\0")

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
    rc = cli.main(["doctor"])
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
    monkeypatch.setattr(kvmtop.tracefs, "mount_points", lambda mounts=None: [])
    rc = cli.main(["doctor"])
    lines = lines_of(capsys)
    assert rc != 0
    fails = [ln for ln in lines if ln.startswith("FAIL")]
    assert len(fails) == 1 and "tracefs" in fails[0] and "not mounted" in fails[0]


def test_crashing_check_becomes_a_failed_line(monkeypatch, capsys):
    def boom():
        raise RuntimeError("libbcc exploded")

    monkeypatch.setattr(doctor, "check_bcc", boom)
    rc = cli.main(["doctor", "--probe-seconds", "0"])
    lines = lines_of(capsys)
    assert rc != 0
    assert "FAIL bcc: check crashed: RuntimeError: libbcc exploded" in lines


@needs_root
def test_missing_optional_tracepoint_warns_but_passes(monkeypatch, capsys):
    needs_healthy_host()
    real = kvmtop.tracefs.event_exists
    monkeypatch.setattr(kvmtop.tracefs, "event_exists",
                        lambda cat, ev, root=None: ev != "kvm_hypercall" and real(cat, ev, root))
    rc = cli.main(["doctor", "--probe-seconds", "0"])
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
    assert cli.main(["doctor", "--probe-seconds", "0"]) == 1
    fails = [ln for ln in lines_of(capsys) if ln.startswith("FAIL")]
    assert len(fails) == 1 and "kvm:kvm_entry" in fails[0] and "latency" in fails[0]


def test_headers_from_a_merged_tree_feed_bcc(monkeypatch, tmp_path):
    """The doctor runs the loader's header search: split packages merged into a tree."""
    if os.uname().machine != "x86_64":
        pytest.skip("the fake packages are amd64 ones")
    src, _common, _arch = _fake_packages(tmp_path)
    monkeypatch.setattr(headers, "module_build_dir", lambda: str(tmp_path / "no-such-build"))
    monkeypatch.setattr(headers, "SRC_DIR", src)
    monkeypatch.setattr(headers, "CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("BCC_KERNEL_SOURCE", raising=False)
    check = doctor.check_headers()
    tree = os.path.join(str(tmp_path / "cache"), "9.1.0-3-amd64")
    assert check.ok and tree in check.detail
    assert os.environ["BCC_KERNEL_SOURCE"] == tree
    assert headers.find_headers() == tree  # what the loader will use


def test_headers_missing_is_essential(monkeypatch, tmp_path):
    monkeypatch.setattr(headers, "module_build_dir", lambda: str(tmp_path / "no-such-build"))
    monkeypatch.setenv("BCC_KERNEL_SOURCE", str(tmp_path))  # no include/ or arch/
    check = doctor.check_headers()
    assert not check.ok and check.essential
    assert "BCC_KERNEL_SOURCE" in check.detail and "live mode will not start" in check.consequence
    with pytest.raises(headers.HeadersError):  # the loader refuses it the same way
        headers.prepare_headers(verbose=False)


def test_tracepoint_table_is_the_programs():
    assert {(t.category, t.event) for t in doctor.TRACEPOINTS} == set(REQUIRED) | set(OPTIONAL)
    for t in doctor.TRACEPOINTS:
        assert t.essential == ((t.category, t.event) in REQUIRED)
        assert t.fields == (REQUIRED | OPTIONAL)[(t.category, t.event)]


@needs_root
def test_missing_field_of_an_essential_tracepoint_fails(monkeypatch, capsys):
    needs_healthy_host()
    real = kvmtop.tracefs.fields

    def fields(cat, ev, root=None):
        got = real(cat, ev, root)
        return {k: v for k, v in got.items() if k != "isa"} if ev == "kvm_exit" else got

    monkeypatch.setattr(kvmtop.tracefs, "fields", fields)
    assert cli.main(["doctor", "--probe-seconds", "0"]) == 1
    fails = [ln for ln in lines_of(capsys) if ln.startswith("FAIL")]
    assert len(fails) == 1 and "kvm:kvm_exit" in fails[0] and "'isa'" in fails[0]


def test_cli_passes_doctor_options_through(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(doctor_command, "run_checks", lambda probe_seconds: seen.append(probe_seconds) or [])
    assert cli.main(["doctor", "--probe-seconds", "0"]) == 0
    assert seen == [0.0]
    assert cli.main(["doctor"]) == 0 and seen == [0.0, 1.0]
    assert "all essential checks passed" in capsys.readouterr().out
