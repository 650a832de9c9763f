"""pid/tid → VM name and vCPU index from /proc, guarded against pid reuse.

* VM name, from the VMM's command line: QEMU ``-name [guest=]NAME[,...]`` (QemuOpts, ``,,`` is a
  literal comma), Firecracker ``--id ID``, cloud-hypervisor (which has no name option) the stem of
  its ``--api-socket`` path (libvirt's ``<state>/NAME-socket`` gives NAME), Firecracker's
  ``--api-sock`` likewise; else a libvirt pid file naming the pid; else the process comm.
* vCPU index, from thread names: QEMU ``CPU N/KVM``, Firecracker ``fc_vcpu N``, cloud-hypervisor
  ``vcpuN``.
* A process is (pid, start time): a reused pid is a new VM, never merged with the old one.

Names are raw, untrusted text (NULs stripped); front ends sanitise them for display.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .model import VmIdentity

PROC = "/proc"
LIBVIRT_PID_DIRS = ("/run/libvirt/qemu", "/run/libvirt/ch")
KVM_VM_FD = "anon_inode:kvm-vm"

_VCPU_COMM = tuple(re.compile(p, re.ASCII) for p in (r"CPU (\d+)/\w+", r"fc_vcpu (\d+)", r"vcpu(\d+)"))
_SOCKET_SUFFIXES = ("-socket", ".socket", ".sock")
_KEY_END = re.compile(r"[=,]")


# --------------------------------------------------------------------------- pure parsing


def vcpu_index(comm: str) -> int | None:
    """The VMM's vCPU number from a thread name (``CPU 3/KVM`` → 3), or None."""
    comm = comm.rstrip("\n")
    for rx in _VCPU_COMM:
        m = rx.fullmatch(comm)
        if m:
            return int(m.group(1))
    return None


def qemu_opts(text: str, implied: str | None = None) -> dict[str, str]:
    """Parse QemuOpts text (``a=1,b=x,,y``); a first bare value goes to ``implied``, a later bare key is "on"."""
    opts: dict[str, str] = {}
    pos, first = 0, True
    while pos < len(text):
        m = _KEY_END.search(text, pos)
        if m and m.group() == "=":
            key = text[pos:m.start()]
            opts[key], pos = _opt_value(text, m.end())
        elif first and implied:
            opts[implied], pos = _opt_value(text, pos)
        else:
            end = m.start() if m else len(text)
            opts[text[pos:end]], pos = "on", end + 1
        first = False
    return opts


def _opt_value(text: str, pos: int) -> tuple[str, int]:
    """A QemuOpts value from ``pos`` to the next single comma, and the position after it."""
    out = []
    while pos < len(text):
        if text.startswith(",,", pos):
            out.append(",")
            pos += 2
        elif text[pos] == ",":
            return "".join(out), pos + 1
        else:
            out.append(text[pos])
            pos += 1
    return "".join(out), pos


def _option(argv: Sequence[str], *names: str) -> str | None:
    """The value of the last ``NAME VALUE`` or ``NAME=VALUE`` among ``names`` (argv[0] excluded)."""
    value = None
    for i in range(1, len(argv)):
        arg = argv[i]
        for name in names:
            if arg == name and i + 1 < len(argv):
                value = argv[i + 1]
            elif arg.startswith(name + "="):
                value = arg[len(name) + 1:]
    return value


def _socket_stem(value: str) -> str | None:
    """cloud-hypervisor ``path=/x/NAME.sock`` (or a bare path) → NAME; ``fd=N`` → None."""
    path = value if "=" not in value else qemu_opts(value).get("path")
    if not path:
        return None
    stem = os.path.basename(path.rstrip("/"))
    for suffix in _SOCKET_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem or None


def name_from_cmdline(argv: Sequence[str]) -> str | None:
    """The VM name a VMM's argv carries, or None (whatever the executable is called)."""
    value = _option(argv, "-name", "--name")
    if value is not None:
        opts = qemu_opts(value, implied="guest")
        name = opts.get("guest") or opts.get("process")
        if name:
            return name
    name = _option(argv, "--id")
    if name:
        return name
    for flag in ("--api-socket", "--api-sock"):
        value = _option(argv, flag)
        if value and (name := _socket_stem(value)):
            return name
    return None


# --------------------------------------------------------------------------- /proc readers


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _text(data: bytes) -> str:
    return data.decode(errors="replace").replace("\0", "")


def start_time(pid: int, proc: str = PROC) -> int | None:
    """Field 22 of /proc/PID/stat (clock ticks after boot), or None when the process is gone."""
    try:
        data = _read(f"{proc}/{pid}/stat")
    except OSError:
        return None
    _, paren, rest = data.rpartition(b")")  # comm (field 2) may hold spaces and parens
    fields = rest.split()
    if not paren or len(fields) < 20:
        return None
    return int(fields[19])  # rest starts at field 3


def _libvirt_name(pid: int, dirs: Iterable[str]) -> str | None:
    for d in dirs:
        try:
            names = sorted(os.listdir(d))
        except OSError:
            continue
        for fname in names:
            if fname.endswith(".pid") and len(fname) > 4:
                try:
                    if _read(os.path.join(d, fname)).strip() == str(pid).encode():
                        return fname[:-4]
                except OSError:
                    continue
    return None


def vm_name(pid: int, proc: str = PROC, libvirt_dirs: Iterable[str] = LIBVIRT_PID_DIRS) -> str:
    """The VM name of process ``pid`` (see the module docstring); OSError when it is gone, or
    exiting (its command line already released: the comm alone would be a wrong name)."""
    cmdline = _read(f"{proc}/{pid}/cmdline")
    if not cmdline:
        raise ProcessLookupError(f"process {pid} is exiting")
    argv = [_text(a) for a in cmdline.split(b"\0")]
    name = name_from_cmdline(argv) or _libvirt_name(pid, libvirt_dirs)
    return (name or _text(_read(f"{proc}/{pid}/comm")).rstrip("\n")).replace("\0", "")


def thread_comm(pid: int, tid: int, proc: str = PROC) -> str | None:
    """The name of thread ``tid`` of process ``pid``, or None if it is not (or no longer) one."""
    try:
        return _text(_read(f"{proc}/{pid}/task/{tid}/comm")).rstrip("\n")
    except OSError:
        return None


def scan_kvm_processes(proc: str = PROC) -> list[int]:
    """Pids holding an open KVM VM fd (idle VMs included). Walks every fd: call it sparingly."""
    pids = []
    for entry in os.scandir(proc):
        if entry.name.isdigit() and _holds_kvm_vm(f"{proc}/{entry.name}/fd"):
            pids.append(int(entry.name))
    return sorted(pids)


def _status_field(pid: int, key: str, proc: str) -> str | None:
    try:
        for line in _read(f"{proc}/{pid}/status").decode(errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name == key:
                return value.strip()
    except OSError:
        return None
    return None


def vm_pid_problem(pid: int, proc: str = PROC) -> str | None:
    """Why ``pid`` is not a VM process to watch (one line), or None when it is one (or when
    this user may not look: the BPF load then says what is missing)."""
    tgid = _status_field(pid, "Tgid", proc)
    if tgid is None:
        return f"no process {pid} is running"
    comm = _status_field(pid, "Name", proc) or "?"
    if tgid.isdigit() and int(tgid) != pid:
        return (f"{pid} is a thread ({comm}) of process {tgid}, not a process: "
                f"-p takes the VM's process id ({tgid})")
    try:
        os.listdir(f"{proc}/{pid}/fd")
    except PermissionError:
        return None
    except OSError:
        return f"no process {pid} is running"
    if not _holds_kvm_vm(f"{proc}/{pid}/fd"):
        return f"process {pid} ({comm}) is not a KVM guest: it holds no KVM VM"
    return None


def _holds_kvm_vm(fd_dir: str) -> bool:
    try:
        fds = os.listdir(fd_dir)
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"{fd_dir}/{fd}") == KVM_VM_FD:
                return True
        except OSError:
            continue
    return False


# --------------------------------------------------------------------------- cache


class IdentityCache:
    """VmIdentity per live process, keyed by (pid, start_time); thread names read once per tid."""

    COMM_TRIES = 3  # reads of a tid's comm until it names a vCPU (QEMU renames threads as they start)

    def __init__(self, proc: str = PROC, libvirt_dirs: Iterable[str] = LIBVIRT_PID_DIRS):
        self._proc, self._libvirt_dirs = proc, tuple(libvirt_dirs)
        self._vms: dict[int, VmIdentity] = {}
        self._tries: dict[int, dict[int, int]] = {}  # pid -> tid -> comm reads so far

    def resolve(self, pid: int, tids: Iterable[int] = ()) -> VmIdentity | None:
        """Who ``pid`` is now, with names of ``tids`` added; None when the process is gone."""
        for _ in range(3):  # a pid reused while we read is retried as the new process
            st = start_time(pid, self._proc)
            if st is None:
                self._drop(pid)
                return None
            ident = self._vms.get(pid)
            if ident is None or ident.start_time != st:
                self._drop(pid)
                ident = self._new(pid, st)
            if ident is not None:
                updated = self._add_threads(ident, tids)
                if updated is ident or start_time(pid, self._proc) == st:
                    self._vms[pid] = updated
                    return updated
        return None

    def alive(self, pid: int, start_time_: int) -> bool:
        """Whether ``pid`` is still the process that started at ``start_time_``."""
        return start_time(pid, self._proc) == start_time_

    def known(self) -> dict[int, VmIdentity]:
        """Every identity resolved so far and not forgotten, by pid."""
        return dict(self._vms)

    def forget_dead(self) -> list[tuple[int, int]]:
        """Drop exited (or pid-reused) processes and exited threads; return the dropped (pid, start_time)."""
        gone = []
        for pid, ident in list(self._vms.items()):
            if not self.alive(pid, ident.start_time):
                gone.append((pid, ident.start_time))
                self._drop(pid)
                continue
            dead = [t for t in ident.comms if not os.path.exists(f"{self._proc}/{pid}/task/{t}")]
            if dead:
                self._vms[pid] = replace(
                    ident,
                    comms={t: c for t, c in ident.comms.items() if t not in dead},
                    vcpu_index={t: i for t, i in ident.vcpu_index.items() if t not in dead},
                )
                tries = self._tries.get(pid, {})
                for t in dead:
                    tries.pop(t, None)
        return gone

    def _new(self, pid: int, st: int) -> VmIdentity | None:
        try:
            name = vm_name(pid, self._proc, self._libvirt_dirs)
        except OSError:
            return None
        return VmIdentity(pid=pid, name=name, start_time=st) if start_time(pid, self._proc) == st else None

    def _add_threads(self, ident: VmIdentity, tids: Iterable[int]) -> VmIdentity:
        comms, index = dict(ident.comms), dict(ident.vcpu_index)
        tries = self._tries.setdefault(ident.pid, {})
        changed = False
        for tid in tids:
            if tid in index or tries.get(tid, 0) >= self.COMM_TRIES:
                continue
            comm = thread_comm(ident.pid, tid, self._proc)
            if comm is None:
                continue
            tries[tid] = tries.get(tid, 0) + 1
            n = vcpu_index(comm)
            if comms.get(tid) != comm or n is not None:
                comms[tid] = comm
                if n is not None:
                    index[tid] = n
                changed = True
        return replace(ident, comms=comms, vcpu_index=index) if changed else ident

    def _drop(self, pid: int) -> None:
        self._vms.pop(pid, None)
        self._tries.pop(pid, None)
