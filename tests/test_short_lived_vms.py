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
        tp.program.bpf.ring_buffer_consume()
        records = [(int.from_bytes(r[0:4], "little"), int.from_bytes(r[4:8], "little")) for r in got]
        assert records == [(4242, 4243), (4242, 4244)]
        comm = got[0][8:24].rstrip(b"\0").decode()
        with open(f"/proc/self/task/{threading.get_native_id()}/comm") as f:
            assert comm == f.read().strip()  # the comm of the thread that ran the handler
        assert tp.program.counters()["lost_new_threads"] == base["lost_new_threads"]
    finally:
        tp.close()


# --------------------------------------------------------------------------- live, real guests


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
    iv = src.next_interval()  # reported once, then forgotten
    assert not {g.pid for g, _ in guests} & set(iv.vms)
    assert not {g.pid for g, _ in guests} & set(src.namer.seen())


@pytest.mark.kvm
def test_guest_gone_before_it_was_named_is_reported_by_pid_and_comm(live, kvm_guest):
    src = live()
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
    last = src.next_interval()
    vm = last.vms[g.pid]
    assert vm.exited and vm.name == "kvmtop-leaving"
    assert io_count(first, g.pid) + io_count(last, g.pid) == exits["KVM_EXIT_IO"]
    after = src.next_interval()
    assert g.pid not in after.vms


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
