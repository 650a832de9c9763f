"""identity: VMM command lines, thread names, /proc/PID/stat, and a real guest's identity."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kvmtop import identity
from kvmtop.identity import IdentityCache, name_from_cmdline, qemu_opts, start_time, vcpu_index

# --------------------------------------------------------------------------- command lines


@pytest.mark.parametrize(
    "argv, name",
    [
        (["qemu-system-x86_64", "-machine", "q35", "-name", "guest=web01,debug-threads=on", "-m", "1G"], "web01"),
        (["/usr/libexec/qemu-kvm", "-name", "bare-vm,process=qemu-bare"], "bare-vm"),
        (["renamed-vmm", "-name", "guest=a,,b,,,debug-threads=on"], "a,b,"),
        (["qemu", "-name", "x,,y"], "x,y"),
        (["qemu", "-name", "debug-threads=on,guest=late"], "late"),
        (["qemu", "-name", "process=only-proc"], "only-proc"),
        (["qemu", "-name", "first", "-name", "guest=second"], "second"),
        (["qemu", "--name", "guest=dd"], "dd"),
        (["qemu", "-name=guest=eq,debug-threads=on"], "eq"),
        (["firecracker", "--id", "fc-vm7", "--api-sock", "/run/fc.sock"], "fc-vm7"),
        (["/usr/bin/firecracker", "--id=fc8"], "fc8"),
        (["firecracker", "--api-sock", "/tmp/fc-vm9.socket"], "fc-vm9"),
        (["cloud-hypervisor", "--api-socket", "path=/run/ch/ch-vm3.sock", "--cpus", "boot=2"], "ch-vm3"),
        (["/usr/bin/cloud-hypervisor", "--api-socket", "/var/run/libvirt/ch/dom1-socket"], "dom1"),
        (["cloud-hypervisor", "--api-socket=/tmp/plain"], "plain"),
        (["cloud-hypervisor", "--api-socket", "fd=5"], None),
        (["python3", "script.py", "--verbose"], None),
        (["qemu", "-m", "1G", "-name"], None),  # -name without a value
        (["-name", "x"], None),  # argv[0] is the program, not an option
    ],
)
def test_name_from_cmdline(argv, name):
    assert name_from_cmdline(argv) == name


def test_qemu_opts_doubled_commas_and_flags():
    assert qemu_opts("vm,,1,debug-threads,process=p,,q", implied="guest") == {
        "guest": "vm,1", "debug-threads": "on", "process": "p,q",
    }
    assert qemu_opts("guest=a=b") == {"guest": "a=b"}


# --------------------------------------------------------------------------- thread names


@pytest.mark.parametrize(
    "comm, index",
    [
        ("CPU 0/KVM", 0), ("CPU 12/KVM\n", 12), ("CPU 3/TCG", 3), ("CPU 7/hvf", 7),
        ("fc_vcpu 5", 5), ("vcpu7", 7), ("vcpu15", 15),
        ("qemu-system-x86", None), ("CPU 1/KVM extra", None), ("CPU x/KVM", None), ("CPU 1/", None),
        ("fc_vcpu", None), ("fc_api", None), ("vcpu", None), ("vcpu 3", None), ("IO mon_iothread", None),
        ("CPU \u0663/KVM", None),  # a non-ASCII digit is not an index
    ],
)
def test_vcpu_index(comm, index):
    assert vcpu_index(comm) == index


# --------------------------------------------------------------------------- a synthetic /proc


def _stat(pid: int, comm: str, start: int) -> str:
    fields = ["S"] + [str(i) for i in range(4, 53)]  # fields 3..52
    fields[22 - 3] = str(start)
    return f"{pid} ({comm}) " + " ".join(fields) + "\n"


def _proc_entry(root, pid, argv, comm, start, threads=None):
    d = root / str(pid)
    (d / "task").mkdir(parents=True, exist_ok=True)
    (d / "stat").write_text(_stat(pid, comm, start))
    (d / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (d / "comm").write_text(comm + "\n")
    for tid, tcomm in (threads or {}).items():
        (d / "task" / str(tid)).mkdir(exist_ok=True)
        (d / "task" / str(tid) / "comm").write_text(tcomm + "\n")


def test_start_time_after_tricky_comm(tmp_path):
    _proc_entry(tmp_path, 42, ["x"], "a) b (c", 98765)
    assert start_time(42, proc=str(tmp_path)) == 98765
    (tmp_path / "43").mkdir()
    (tmp_path / "43" / "stat").write_text("43 (trunc")  # malformed: no closing paren
    assert start_time(43, proc=str(tmp_path)) is None
    assert start_time(44, proc=str(tmp_path)) is None  # no such process


def test_start_time_of_a_real_process_renamed_to_a_tricky_comm():
    child = subprocess.Popen(
        [sys.executable, "-c",
         "import ctypes, sys\n"
         "print('up', flush=True); sys.stdin.readline()\n"
         "ctypes.CDLL(None).prctl(15, b'a) b (c', 0, 0, 0)\n"
         "print('renamed', flush=True); sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "up\n"
        with open(f"/proc/{child.pid}/stat") as f:
            plain = int(f.read().split()[21])  # comm is "python3..." here: a naive split is right
        child.stdin.write("rename\n")
        child.stdin.flush()
        assert child.stdout.readline() == "renamed\n"
        with open(f"/proc/{child.pid}/comm") as f:
            assert f.read() == "a) b (c\n"
        assert start_time(child.pid) == plain
    finally:
        child.stdin.close()
        child.wait(10)


def test_vm_name_falls_back_to_libvirt_pid_file_then_comm(tmp_path):
    proc, run = tmp_path / "proc", tmp_path / "run"
    run.mkdir()
    _proc_entry(proc, 10, ["qemu-system-x86_64", "-name", "guest=q1"], "qemu-system-x86", 1)
    _proc_entry(proc, 11, ["cloud-hypervisor", "--api-socket", "fd=3"], "cloud-hyperviso", 1)
    _proc_entry(proc, 12, ["python3", "vmm.py"], "myvmm", 1)
    (run / "dom-ch.pid").write_text("11\n")
    (run / "other.pid").write_text("111\n")
    args = dict(proc=str(proc), libvirt_dirs=[str(run), str(tmp_path / "missing")])
    assert identity.vm_name(10, **args) == "q1"
    assert identity.vm_name(11, **args) == "dom-ch"
    assert identity.vm_name(12, **args) == "myvmm"
    with pytest.raises(OSError):
        identity.vm_name(13, **args)


def test_cache_never_merges_a_reused_pid(tmp_path):
    cache = IdentityCache(proc=str(tmp_path), libvirt_dirs=())
    _proc_entry(tmp_path, 7, ["qemu", "-name", "old"], "qemu", 100, {7: "qemu", 8: "CPU 0/KVM"})
    old = cache.resolve(7, [8])
    assert (old.name, old.start_time, dict(old.vcpu_index)) == ("old", 100, {8: 0})
    assert cache.resolve(7, [8]) is old  # nothing new: the cached object

    _proc_entry(tmp_path, 7, ["fc", "--id", "new"], "fc", 200, {9: "fc_vcpu 1"})
    new = cache.resolve(7, [9])
    assert (new.name, new.start_time, dict(new.vcpu_index), dict(new.comms)) == ("new", 200, {9: 1}, {9: "fc_vcpu 1"})
    assert not cache.alive(7, 100) and cache.alive(7, 200)


def test_cache_rereads_a_thread_until_it_is_named(tmp_path):
    cache = IdentityCache(proc=str(tmp_path), libvirt_dirs=())
    _proc_entry(tmp_path, 5, ["qemu", "-name", "vm"], "qemu", 1, {6: "qemu"})
    first = cache.resolve(5, [6, 99])  # 99 is not a thread of 5
    assert dict(first.comms) == {6: "qemu"} and not first.vcpu_index
    (tmp_path / "5" / "task" / "6" / "comm").write_text("CPU 2/KVM\n")
    assert dict(cache.resolve(5, [6]).vcpu_index) == {6: 2}


def test_forget_dead_drops_processes_and_threads(tmp_path):
    cache = IdentityCache(proc=str(tmp_path), libvirt_dirs=())
    _proc_entry(tmp_path, 5, ["qemu", "-name", "a"], "qemu", 1, {50: "CPU 0/KVM", 51: "CPU 1/KVM"})
    _proc_entry(tmp_path, 6, ["qemu", "-name", "b"], "qemu", 1)
    cache.resolve(5, [50, 51])
    cache.resolve(6)
    (tmp_path / "5" / "task" / "51" / "comm").unlink()
    (tmp_path / "5" / "task" / "51").rmdir()
    _proc_entry(tmp_path, 6, ["other"], "other", 2)  # pid 6 reused
    assert cache.forget_dead() == [(6, 1)]
    assert set(cache.known()) == {5}
    assert dict(cache.known()[5].vcpu_index) == {50: 0}


# --------------------------------------------------------------------------- a real guest


@pytest.mark.kvm
def test_real_guest_identity_and_exit(kvm_guest):
    guest = kvm_guest("ident-vm")
    cache = IdentityCache()
    ident = cache.resolve(guest.pid, [guest.tid, os.getpid()])  # our pid is not one of its threads
    assert ident.name == "ident-vm"
    assert dict(ident.vcpu_index) == {guest.tid: 0}
    assert dict(ident.comms) == {guest.tid: "CPU 0/KVM"}
    assert ident.start_time == start_time(guest.pid) > 0
    assert cache.alive(guest.pid, ident.start_time)

    kvm_pids = identity.scan_kvm_processes()
    assert guest.pid in kvm_pids and os.getpid() not in kvm_pids

    assert guest.close() == 0  # reaped: the pid is gone
    assert cache.resolve(guest.pid, [guest.tid]) is None
    assert not cache.alive(guest.pid, ident.start_time)
    assert cache.forget_dead() == [] and guest.pid not in cache.known()  # resolve already dropped it
    assert guest.pid not in identity.scan_kvm_processes()


@pytest.mark.kvm
def test_real_guest_name_with_commas_and_forget_dead(kvm_guest):
    guest = kvm_guest("a,b")  # passed as guest=a,,b like QEMU/libvirt would
    cache = IdentityCache()
    assert cache.resolve(guest.pid, [guest.tid]).name == "a,b"
    st = cache.known()[guest.pid].start_time
    guest.close()
    assert cache.forget_dead() == [(guest.pid, st)]
    assert cache.known() == {}


def test_vm_name_of_an_exiting_process_is_not_its_comm(tmp_path):
    """An exiting process has released its command line: naming it by comm would be wrong."""
    _proc_entry(tmp_path, 20, [], "python3", 1)
    (tmp_path / "20" / "cmdline").write_bytes(b"")
    with pytest.raises(ProcessLookupError):
        identity.vm_name(20, proc=str(tmp_path), libvirt_dirs=())
    assert IdentityCache(proc=str(tmp_path), libvirt_dirs=()).resolve(20) is None
