"""No VM is lost: guests that live less than an interval, or exit mid-interval, keep their counts and names.

The BPF program announces each new thread on the new_threads ring buffer (one record per
thread, never per event); sources.new_threads names the VM from /proc at once. Real guests
(tests/kvm_guest.py) and the real BPF program throughout; the BPF side alone through
BPF_PROG_TEST_RUN.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kvmtop.sources.collector import EXITED_KEPT_POLLS
from kvmtop.testing.bpf_testrun import TestProgram

pytestmark = [pytest.mark.bpf, pytest.mark.skipif(os.geteuid() != 0, reason="BPF needs root")]

ROOT = Path(__file__).resolve().parent.parent
KVM_EXIT_IO = 2
GUESTS = 10
PIO = 50


def io_count(iv, pid: int) -> int:
    return sum(s.count for t in iv.threads if t.pid == pid for c, s in t.userspace.items() if c == KVM_EXIT_IO)


def run_short_guests(kvm_guest, prefix: str, n: int = GUESTS) -> list:
    """``n`` guests one after the other, each exiting right after its work; (guest, exits) each."""
    out = []
    for i in range(n):
        g = kvm_guest(f"{prefix}-{i}", pio=PIO, exit_when_done=True)
        g.go()
        exits = g.wait_done()
        assert g.close() == 0
        out.append((g, exits))
    return out


# --------------------------------------------------------------------------- BPF side


def test_one_ring_record_per_new_thread_never_per_event():
    tp = TestProgram()
    try:
        got = []
        tp.program.table("new_threads").open_ring_buffer(
            lambda _ctx, data, size: got.append(ctypes.string_at(data, size)))
        base = tp.program.counters()
        for t in range(5):
            tp.userspace_exit(4242, 4243, 1000 + t, KVM_EXIT_IO)  # one thread, five events
        tp.exit(4242, 4244, 2000, 1, 30)                          # a second thread (kvm_exit path)
        tp.exit(4242, 4244, 2100, 1, 30)
        tp.ioctl(4300, 4300, 3000, cmd=0xAE01)                     # KVM_CREATE_VM: a VM, before any vCPU
        tp.ioctl(4300, 4300, 3100, cmd=0x5401)                     # any other ioctl: nothing
        tp.ioctl(4242, 4243, 3200)                                 # KVM_RUN: nothing
        tp.program.bpf.ring_buffer_consume()
        records = [(int.from_bytes(r[0:4], "little"), int.from_bytes(r[4:8], "little")) for r in got]
        assert records == [(4242, 4243), (4242, 4244), (4300, 0)]
        comm = got[0][8:24].rstrip(b"\0").decode()
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
            assert comm == f.read().strip()  # the comm of the thread that ran the handler
        assert tp.program.counters()["lost_new_threads"] == base["lost_new_threads"]
    finally:
        tp.close()


# --------------------------------------------------------------------------- live, real guests


@pytest.mark.kvm
def test_a_vm_is_named_when_it_is_created_before_any_vcpu_runs(live, kvm_guest):
    src = live()
    g = kvm_guest("kvmtop-created")  # VM and vCPU made; never run
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        s = src.namer.seen().get(g.pid)
        if s is not None and s.identity is not None:
            break
        time.sleep(0.05)
    assert s is not None and s.identity is not None and s.identity.name == "kvmtop-created"
    assert s.comms == {}  # the creating thread is no vCPU
    assert g.close() == 0
    for _ in range(EXITED_KEPT_POLLS + 1):  # never listed: it had no counts; forgotten in a few polls
        assert g.pid not in src.next_interval().vms
    assert g.pid not in src.namer.seen()


@pytest.mark.kvm
def test_back_to_back_short_guests_all_counted_and_named(live, kvm_guest):
    src = live()
    src.next_interval()
    guests = run_short_guests(kvm_guest, "kvmtop-short")
    iv = src.next_interval()
    for g, exits in guests:
        assert exits["KVM_EXIT_IO"] == PIO + 1
        vm = iv.vms.get(g.pid)
        assert vm is not None, f"{g.name} (pid {g.pid}) is missing"
        assert vm.name == g.name and vm.exited
        assert vm.vcpu_index == {g.tid: 0} and vm.comms[g.tid] == "CPU 0/KVM"
        assert io_count(iv, g.pid) == exits["KVM_EXIT_IO"]
    pids = {g.pid for g, _ in guests}
    for _ in range(EXITED_KEPT_POLLS + 1):  # reported once; forgotten in a few polls (late counts)
        assert not pids & set(src.next_interval().vms)
    assert not pids & set(src.namer.seen()) and not any(src.footprint(pids).values())


@pytest.mark.kvm
@pytest.mark.parametrize("scan_every_s", [5.0, 0.0], ids=["no-scan", "scan-in-that-interval"])
def test_guest_gone_before_it_was_named_is_reported_by_pid_and_comm(live, kvm_guest, scan_every_s):
    src = live(scan_every_s=scan_every_s)  # a scan prunes dead threads: not before their counts are named
    src.namer.stop()  # nobody reads the ring buffer: the process is gone before it is named
    src.next_interval()
    (g, exits), = run_short_guests(kvm_guest, "kvmtop-unnamed", 1)
    iv = src.next_interval()
    vm = iv.vms[g.pid]
    assert vm.exited and vm.name == "CPU 0/KVM"  # the comm BPF captured
    assert vm.vcpu_index == {g.tid: 0}
    assert io_count(iv, g.pid) == exits["KVM_EXIT_IO"]


@pytest.mark.kvm
def test_guest_exiting_mid_interval_after_running_a_while(live, kvm_guest):
    src = live()
    g = kvm_guest("kvmtop-leaving", pio=1, loop=True)
    g.go()
    first = src.next_interval()
    assert first.vms[g.pid].name == "kvmtop-leaving" and not first.vms[g.pid].exited
    exits = g.stop()
    assert g.close() == 0
    later = [src.next_interval(), src.next_interval()]  # a gone thread's last counts may come a poll late
    while any(src.footprint({g.pid}).values()) and len(later) < 10:  # then its state is freed
        later.append(src.next_interval())
    with_data = [iv for iv in later if io_count(iv, g.pid)]
    assert with_data and with_data[0] is later[0]
    for iv in with_data:  # every interval with its counts names it, marked exited
        assert iv.vms[g.pid].name == "kvmtop-leaving" and iv.vms[g.pid].exited
    assert io_count(first, g.pid) + sum(io_count(iv, g.pid) for iv in later) == exits["KVM_EXIT_IO"]
    assert g.pid not in later[-1].vms
    assert not any(src.footprint({g.pid}).values())


def _json_lines(proc: subprocess.Popen, until, deadline: float) -> list[dict]:
    """Read kvmtop --json lines until ``until(lines)`` or the deadline."""
    lines: list[dict] = []
    buf = b""
    fd = proc.stdout.fileno()
    while not until(lines):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; got {len(lines)} lines"
        if not select.select([fd], [], [], left)[0]:
            continue
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            lines.append(json.loads(line))
    return lines


@pytest.mark.kvm
def test_cli_json_at_2s_shows_all_short_guests_with_host_totals(kvm_guest):
    proc = subprocess.Popen([sys.executable, "-m", "kvmtop", "--json", "-d", "2", "-n", "4"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        _json_lines(proc, lambda ls: len(ls) >= 1, deadline)  # attached: the first interval is out
        guests = run_short_guests(kvm_guest, "kvmtop-cli-short")
        lines = _json_lines(proc, lambda ls: False, deadline)
        assert proc.wait(30) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    seen: dict[int, list] = {}
    for d in lines:
        assert d["host"]["userspace_exits"] == sum(u["count"] for vm in d["vms"] for u in vm["userspace_exits"])
        for vm in d["vms"]:
            seen.setdefault(vm["pid"], []).append(vm)
    for g, exits in guests:
        rows = seen.get(g.pid)
        assert rows, f"{g.name} missing from every interval"
        assert {r["name"] for r in rows} == {g.name}
        assert [r["exited"] for r in rows[:-1]] == [False] * (len(rows) - 1)  # exited: its last row only
        io = sum(u["count"] for r in rows for u in r["userspace_exits"] if u["name"] == "KVM_EXIT_IO")
        assert io == exits["KVM_EXIT_IO"] == PIO + 1


# --------------------------------------------------------------------------- front ends


def test_exited_vm_is_marked_in_text_json_and_dashboard_row():
    from kvmtop.aggregate import SnapshotBuilder
    from kvmtop.model import CollectorStatus, Interval, Stat, ThreadInterval, VmIdentity
    from kvmtop.snapshot_json import snapshot_to_dict
    from kvmtop.text import render
    from kvmtop.ui.widgets.vm_table import vm_cells

    iv = Interval(time=0.0, interval_s=2.0,
                  threads=(ThreadInterval(pid=7, tid=8, userspace={KVM_EXIT_IO: Stat(51)}),),
                  vms={7: VmIdentity(pid=7, name="gone-vm", exited=True), 9: VmIdentity(pid=9, name="alive-vm")})
    snap = SnapshotBuilder().build(iv)
    assert "VM gone-vm (pid 7, exited)" in render(snap) and "VM alive-vm (pid 9)" in render(snap)
    d = snapshot_to_dict(snap)
    assert {vm["name"]: vm["exited"] for vm in d["vms"]} == {"gone-vm": True, "alive-vm": False}
    assert d["host"]["userspace_exits"] == 51
    assert vm_cells(snap.vm(7), CollectorStatus())[0].plain == "gone-vm (exited)"
    assert vm_cells(snap.vm(9), CollectorStatus())[0].plain == "alive-vm"
