"""VMs named at first sight: the BPF ``new_threads`` ring buffer, read on its own thread.

kvmtop.bpf.c sends one record (pid, tid, comm) per new vCPU thread, never per event, and one
with tid 0 when a process creates a VM (KVM_CREATE_VM: before any vCPU runs, where the
``sys_enter_ioctl`` tracepoint exists). ``NewThreadNamer`` waits on that ring buffer and reads
``/proc/PID`` as soon as a record arrives, so a VM that starts, runs and exits between two
polls still has its name when its counts are read. Where the process is gone before it could
be read, the comm BPF captured is kept instead.

The collector asks ``seen()`` once per poll and ``forget()``s the processes it has
reported as exited, so what is kept is bounded by the VMs alive or just exited.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import threading
from dataclasses import dataclass, field, replace

from ..identity import PROC, start_time, thread_comm, vcpu_index, vm_name
from ..model import VmIdentity

POLL_MS = 100  # the longest the reader waits before it looks at its stop flag
READER_NICE = -10  # this thread only (Linux nice values are per thread)


class _Record(ct.Structure):
    """struct new_thread in kvmtop.bpf.c."""

    _fields_ = [("pid", ct.c_uint32), ("tid", ct.c_uint32), ("comm", ct.c_char * 16)]


@dataclass
class Sighting:
    """What is known of one process from its new-thread records."""

    identity: VmIdentity | None = None  # read from /proc while the process was alive
    comms: dict[int, str] = field(default_factory=dict)  # tid -> comm as BPF captured it


class NewThreadNamer:
    """Reads ``program``'s new_threads ring buffer on a thread and names each new VM at once."""

    def __init__(self, program, pid: int | None = None, proc: str = PROC):
        self._program, self._pid, self._proc = program, pid, proc
        self._lock = threading.Lock()
        self._seen: dict[int, Sighting] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records = 0   # ring buffer records handled
        self.errors = 0    # records whose handling raised (kept out of the terminal)
        self.failure = ""  # why the reader stopped early, if it did

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._program.table("new_threads").open_ring_buffer(self._on_record)
        self._thread = threading.Thread(target=self._run, name="kvmtop-new-threads", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the reader (before the program and its ring buffer are closed)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # woken first on a busy host: a VM may be gone ms after its first exit
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), READER_NICE)
        bpf = self._program.bpf
        try:
            while not self._stop.is_set():
                bpf.ring_buffer_poll(POLL_MS)
        except Exception as e:
            self.failure = f"{type(e).__name__}: {e}".splitlines()[0]

    # ------------------------------------------------------------------ the collector's side

    def seen(self) -> dict[int, Sighting]:
        """A copy of every process sighted and not forgotten, by pid."""
        with self._lock:
            return {pid: Sighting(s.identity, dict(s.comms)) for pid, s in self._seen.items()}

    def stale(self, pids) -> list[int]:
        """Of ``pids`` (sighted ones), those whose process is gone or is another one now."""
        seen = self.seen()
        out = []
        for pid in pids:
            s = seen.get(pid)
            st = start_time(pid, self._proc)
            if s is not None and (st is None or (s.identity is not None and s.identity.start_time != st)):
                out.append(pid)
        return out

    def forget(self, pids) -> None:
        with self._lock:
            for pid in pids:
                self._seen.pop(pid, None)

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    # ------------------------------------------------------------------ the reader's side

    def _on_record(self, _ctx, data, size) -> int:
        try:
            if size >= ct.sizeof(_Record):
                rec = ct.cast(data, ct.POINTER(_Record)).contents
                self.add(rec.pid, rec.tid, rec.comm.decode(errors="replace"))
                self.records += 1
        except Exception:
            self.errors += 1
        return 0

    def add(self, pid: int, tid: int, comm: str) -> None:
        """One new thread: name its process from /proc now, while it is (probably) alive."""
        if self._pid is not None and pid != self._pid:
            return
        with self._lock:
            known = self._seen.get(pid)
            ident = known.identity if known else None
        ident = self._identify(pid, ident)
        if ident is not None and tid:
            ident = _with_thread(ident, tid, thread_comm(pid, tid, self._proc) or comm)
        with self._lock:
            s = self._seen.setdefault(pid, Sighting())
            if tid:  # (tid 0: the VM was created, by a thread that is no vCPU)
                s.comms[tid] = comm
            if ident is not None:
                s.identity = ident

    def _identify(self, pid: int, known: VmIdentity | None) -> VmIdentity | None:
        """``known`` if ``pid`` is still that process, else a fresh read; None when it is gone."""
        st = start_time(pid, self._proc)
        if st is None:
            return known
        if known is not None and known.start_time == st:
            return known
        try:
            name = vm_name(pid, self._proc)
        except OSError:
            return None
        return VmIdentity(pid=pid, name=name, start_time=st) if start_time(pid, self._proc) == st else None


def _with_thread(ident: VmIdentity, tid: int, comm: str) -> VmIdentity:
    n = vcpu_index(comm)
    index = {**ident.vcpu_index, tid: n} if n is not None else ident.vcpu_index
    return replace(ident, comms={**ident.comms, tid: comm}, vcpu_index=index)
