"""The real /dev/kvm guest: exact exit counts, QEMU-like naming, the MMIO round trip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from kvmtop.testing import kvm_guest

pytestmark = pytest.mark.kvm
SCRIPT = kvm_guest.__file__


def test_guest_code_is_real_mode_machine_code():
    code = kvm_guest.guest_code(pio=2, mmio=0, hlt=1)
    # mov dx,PIO; out; out; hlt; mov dx,DONE; out; hlt; jmp $-1
    assert code == bytes.fromhex("baf003 ee ee f4 baf103 ee f4 ebfd")


def test_guest_reports_exactly_the_requested_exits(kvm_guest):
    guest = kvm_guest("counts", pio=5, mmio=3, hlt=2)
    guest.go()
    exits = guest.wait_done()
    # IO includes the final marker (one out to DONE_PORT)
    assert exits == {"KVM_EXIT_IO": 5 + 1, "KVM_EXIT_MMIO": 3, "KVM_EXIT_HLT": 2}
    assert guest.done["tid"] == guest.tid
    assert guest.close() == 0


def test_counted_loops_beyond_unrolling(kvm_guest):
    guest = kvm_guest("many", pio=1000, mmio=40, hlt=300)
    guest.go()
    assert guest.wait_done() == {"KVM_EXIT_IO": 1001, "KVM_EXIT_MMIO": 40, "KVM_EXIT_HLT": 300}


def test_vcpu_thread_and_cmdline_look_like_qemu(kvm_guest):
    guest = kvm_guest("named-vm")
    assert guest.tid != guest.pid
    with open(f"/proc/{guest.pid}/task/{guest.tid}/comm") as f:
        assert f.read() == "CPU 0/KVM\n"
    with open(f"/proc/{guest.pid}/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    i = argv.index(b"-name")
    assert argv[i + 1].split(b",")[0] == b"guest=named-vm"


def test_guest_holds_a_kvm_vm_fd(kvm_guest):
    guest = kvm_guest("fds")
    links = {os.readlink(f"/proc/{guest.pid}/fd/{fd}") for fd in os.listdir(f"/proc/{guest.pid}/fd")}
    assert "anon_inode:kvm-vm" in links


def test_mmio_handling_sleep_shows_in_wall_time(kvm_guest):
    mmio, sleep_ms = 4, 50
    guest = kvm_guest("slow-mmio", pio=1, mmio=mmio, mmio_sleep_ms=sleep_ms)
    t0 = time.monotonic()
    guest.go()
    exits = guest.wait_done()
    elapsed = time.monotonic() - t0
    assert exits["KVM_EXIT_MMIO"] == mmio
    assert elapsed >= mmio * sleep_ms / 1000


def test_loop_runs_until_quit(kvm_guest):
    guest = kvm_guest("looping", pio=1, mmio=1, hlt=1, loop=True)
    guest.go()
    exits = guest.stop()
    assert guest.proc.wait(10) == 0
    io, mmio, hlt = exits["KVM_EXIT_IO"], exits["KVM_EXIT_MMIO"], exits["KVM_EXIT_HLT"]
    assert io >= 1  # go() returned after the first exit
    assert io >= mmio >= hlt >= io - 1  # rounds of out, mmio, hlt; stopped anywhere in one


def test_loop_stops_on_sigterm(kvm_guest):
    guest = kvm_guest("term", loop=True)
    guest.go()
    os.kill(guest.pid, signal.SIGTERM)
    exits = guest.wait_done()
    assert exits["KVM_EXIT_IO"] >= 1  # default round: one out
    assert exits["KVM_EXIT_MMIO"] == exits["KVM_EXIT_HLT"] == 0
    assert guest.proc.wait(10) == 0


def test_quit_before_go_exits_cleanly(kvm_guest):
    guest = kvm_guest("idle")
    assert guest.close() == 0
    assert guest.done is None


def test_bad_arguments_give_one_line_and_status_2():
    r = subprocess.run([sys.executable, SCRIPT, "--pio", "1"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and "-name" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_exit_loop_in_process():
    if not os.path.exists("/dev/kvm"):
        pytest.skip("/dev/kvm is absent: this host has no KVM")
    before = set(os.listdir("/proc/self/fd"))
    seconds = kvm_guest.run_exit_loop(2000)
    assert 0 < seconds < 60
    assert set(os.listdir("/proc/self/fd")) == before  # VM fds closed
