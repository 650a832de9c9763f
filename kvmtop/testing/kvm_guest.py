"""A tiny real KVM guest driven by raw /dev/kvm ioctls (no dependencies beyond the stdlib).

The guest is 16-bit real-mode code that does, in this order, ``pio`` ``out`` instructions
to PIO_PORT (KVM_EXIT_IO each), ``mmio`` one-byte writes to the unmapped MMIO_ADDR
(KVM_EXIT_MMIO each), ``hlt`` ``hlt`` instructions (KVM_EXIT_HLT each: there is no
in-kernel irqchip), then one ``out`` to DONE_PORT that ends the run. That final marker is
a KVM_EXIT_IO too and is **included** in the reported IO count (IO = pio + 1). With
``--loop`` the pio/mmio/hlt sequence repeats forever instead (one ``out`` per round if all
counts are 0) until stdin says ``quit``/closes or SIGTERM arrives.

Script protocol (one JSON object per line on stdout)::

    python -m kvmtop.testing.kvm_guest -name guest=NAME[,debug-threads=on] [--pio N] [--mmio M]
                              [--hlt H] [--mmio-sleep-ms MS] [--loop] [--exit-when-done]
    -> {"ready": true, "pid": P, "tid": T}        T: the vCPU thread, comm "CPU 0/KVM"
    <- go
    -> {"done": true, "exits": {"KVM_EXIT_IO": n, "KVM_EXIT_MMIO": m, "KVM_EXIT_HLT": h}, "tid": T}
    <- quit (or EOF)                               -> exit status 0
                                                   (--exit-when-done: exits right after ``done``)

In loop mode the child answers ``go`` with ``{"running": true}`` once its vCPU has handled
its first exit, and ``done`` (with the counts so far) comes after ``quit``/EOF/SIGTERM. Each MMIO
exit is handled after sleeping MS milliseconds: a known userspace round trip. Errors print
one line on stderr and exit with status 2.

Importable: ``GuestProcess`` runs the script as a child; ``run_exit_loop`` runs a guest
in this process (vCPU in a thread) and times it.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import fcntl
import json
import mmap
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from typing import IO

PIO_PORT = 0x3F0
DONE_PORT = 0x3F1
MMIO_ADDR = 0x8000  # guest-physical, outside the one memory slot
CODE_ADDR = 0x1000
MEM_SIZE = 0x4000

KVM_EXIT_IO, KVM_EXIT_HLT, KVM_EXIT_MMIO = 2, 5, 6
EXIT_NAMES = {KVM_EXIT_IO: "KVM_EXIT_IO", KVM_EXIT_MMIO: "KVM_EXIT_MMIO", KVM_EXIT_HLT: "KVM_EXIT_HLT"}
VCPU_COMM = b"CPU 0/KVM"


# --------------------------------------------------------------------------- ioctl ABI


def _ioc(direction: int, nr: int, size: int) -> int:
    return (direction << 30) | (size << 16) | (0xAE << 8) | nr


class _Segment(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint32), ("selector", ctypes.c_uint16)] + [
        (f, ctypes.c_uint8) for f in ("type", "present", "dpl", "db", "s", "l", "g", "avl", "unusable", "pad")
    ]


class _Dtable(ctypes.Structure):
    _fields_ = [("base", ctypes.c_uint64), ("limit", ctypes.c_uint16), ("pad", ctypes.c_uint16 * 3)]


class _Sregs(ctypes.Structure):
    _fields_ = [(s, _Segment) for s in ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")] + [
        ("gdt", _Dtable), ("idt", _Dtable)
    ] + [(r, ctypes.c_uint64) for r in ("cr0", "cr2", "cr3", "cr4", "cr8", "efer", "apic_base")] + [
        ("interrupt_bitmap", ctypes.c_uint64 * 4)
    ]


class _Regs(ctypes.Structure):
    _fields_ = [(r, ctypes.c_uint64) for r in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class _MemRegion(ctypes.Structure):
    _fields_ = [("slot", ctypes.c_uint32), ("flags", ctypes.c_uint32), ("guest_phys_addr", ctypes.c_uint64),
                ("memory_size", ctypes.c_uint64), ("userspace_addr", ctypes.c_uint64)]


KVM_GET_API_VERSION = _ioc(0, 0x00, 0)
KVM_CREATE_VM = _ioc(0, 0x01, 0)
KVM_GET_VCPU_MMAP_SIZE = _ioc(0, 0x04, 0)
KVM_CREATE_VCPU = _ioc(0, 0x41, 0)
KVM_SET_USER_MEMORY_REGION = _ioc(1, 0x46, ctypes.sizeof(_MemRegion))
KVM_RUN = _ioc(0, 0x80, 0)
KVM_SET_REGS = _ioc(1, 0x82, ctypes.sizeof(_Regs))
KVM_GET_SREGS = _ioc(2, 0x83, ctypes.sizeof(_Sregs))
KVM_SET_SREGS = _ioc(1, 0x84, ctypes.sizeof(_Sregs))

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_NAME = 15


class GuestError(RuntimeError):
    """The guest could not be set up, exited unexpectedly or broke the protocol."""


# --------------------------------------------------------------------------- guest code


def guest_code(pio: int, mmio: int, hlt: int, loop: bool = False) -> bytes:
    """16-bit real-mode machine code for the exit sequence (see the module docstring)."""
    if loop and not (pio or mmio or hlt):
        pio = 1
    code = bytearray(b"\xba" + struct.pack("<H", PIO_PORT))  # mov dx, PIO_PORT

    def repeat(count: int, body: bytes) -> None:
        if count <= 8:  # unrolled (also covers 0)
            code.extend(body * count)
            return
        code.extend(b"\x66\xb9" + struct.pack("<I", count))  # mov ecx, count
        top = len(code)
        code.extend(body + b"\x66\x49")  # body; dec ecx
        code.extend(b"\x75" + struct.pack("<b", top - (len(code) + 2)))  # jnz top

    start = len(code)
    repeat(pio, b"\xee")  # out dx, al
    repeat(mmio, b"\xa2" + struct.pack("<H", MMIO_ADDR))  # mov [MMIO_ADDR], al
    repeat(hlt, b"\xf4")  # hlt
    if loop:
        code.extend(b"\xe9" + struct.pack("<h", start - (len(code) + 3)))  # jmp start
    else:
        code.extend(b"\xba" + struct.pack("<H", DONE_PORT) + b"\xee")  # mov dx, DONE_PORT; out dx, al
        code.extend(b"\xf4\xeb\xfd")  # hlt; jmp back to it (never reached: the VMM stops first)
    return bytes(code)


# --------------------------------------------------------------------------- the VM


class Vm:
    """One VM, one real-mode vCPU at CODE_ADDR, no irqchip: every exit reaches this VMM."""

    def __init__(self, code: bytes):
        self._fds: list[int] = []
        self._mem = mmap.mmap(-1, MEM_SIZE, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._mem[CODE_ADDR:CODE_ADDR + len(code)] = code
        self._anchor: ctypes.c_char | None = ctypes.c_char.from_buffer(self._mem)
        self._run: mmap.mmap | None = None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        kvm = self._open("/dev/kvm")
        version = fcntl.ioctl(kvm, KVM_GET_API_VERSION)
        if version != 12:
            raise GuestError(f"/dev/kvm API version {version}, expected 12")
        self.vm_fd = self._keep(fcntl.ioctl(kvm, KVM_CREATE_VM, 0))
        assert self._anchor is not None
        region = _MemRegion(0, 0, 0, MEM_SIZE, ctypes.addressof(self._anchor))
        fcntl.ioctl(self.vm_fd, KVM_SET_USER_MEMORY_REGION, bytes(region))
        self.vcpu_fd = self._keep(fcntl.ioctl(self.vm_fd, KVM_CREATE_VCPU, 0))
        size = fcntl.ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE)
        self._run = mmap.mmap(self.vcpu_fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        sregs = _Sregs()
        fcntl.ioctl(self.vcpu_fd, KVM_GET_SREGS, sregs)
        sregs.cs.base, sregs.cs.selector = 0, 0
        fcntl.ioctl(self.vcpu_fd, KVM_SET_SREGS, bytes(sregs))
        fcntl.ioctl(self.vcpu_fd, KVM_SET_REGS, bytes(_Regs(rip=CODE_ADDR, rflags=2)))

    def _open(self, path: str) -> int:
        try:
            return self._keep(os.open(path, os.O_RDWR | os.O_CLOEXEC))
        except OSError as e:
            raise GuestError(f"cannot open {path}: {e.strerror}") from None

    def _keep(self, fd: int) -> int:
        self._fds.append(fd)
        return fd

    def run(self, stop: threading.Event | None = None, mmio_sleep_s: float = 0.0,
            first_exit: threading.Event | None = None) -> dict[str, int]:
        """KVM_RUN until the DONE_PORT marker (or ``stop``); return handled exits by name.

        ``first_exit`` is set once the first exit has been handled."""
        counts = dict.fromkeys(EXIT_NAMES.values(), 0)
        run = self._run
        assert run is not None, "set up in __init__"
        while not (stop and stop.is_set()):
            try:
                fcntl.ioctl(self.vcpu_fd, KVM_RUN, 0)
            except InterruptedError:
                continue
            (reason,) = struct.unpack_from("<I", run, 8)
            if reason == KVM_EXIT_IO:
                direction, size, port = struct.unpack_from("<BBH", run, 32)
                if direction != 1 or size != 1 or port not in (PIO_PORT, DONE_PORT):
                    raise GuestError(f"unexpected KVM_EXIT_IO dir={direction} size={size} port={port:#x}")
                counts["KVM_EXIT_IO"] += 1
                if port == DONE_PORT:
                    break
            elif reason == KVM_EXIT_MMIO:
                addr, _data, length, is_write = struct.unpack_from("<Q8sIB", run, 32)
                if addr != MMIO_ADDR or length != 1 or not is_write:
                    raise GuestError(f"unexpected KVM_EXIT_MMIO addr={addr:#x} len={length} write={is_write}")
                counts["KVM_EXIT_MMIO"] += 1
                if mmio_sleep_s:
                    time.sleep(mmio_sleep_s)  # the emulated device's known round trip
            elif reason == KVM_EXIT_HLT:
                counts["KVM_EXIT_HLT"] += 1
            else:
                raise GuestError(f"unexpected exit reason {reason}")
            if first_exit is not None:
                first_exit.set()
        return counts

    def close(self) -> None:
        if self._run is not None:
            self._run.close()
            self._run = None
        for fd in reversed(self._fds):
            os.close(fd)
        self._fds.clear()
        self._anchor = None
        self._mem.close()


def wait_thread_gone(tid: int, timeout: float = 10.0) -> None:
    """Return once thread ``tid`` of this process has fully exited (its /proc entry is gone):
    ``Thread.join`` returns a little before the kernel is done with the thread, and a
    thread's last events (sched_process_exit) are only then behind it."""
    path = f"/proc/self/task/{tid}"
    deadline = time.monotonic() + timeout
    while os.path.exists(path):
        if time.monotonic() > deadline:
            raise GuestError(f"thread {tid} did not exit within {timeout} s")
        time.sleep(0.001)


def name_current_thread(name: bytes = VCPU_COMM) -> None:
    """Set this thread's comm (what /proc/PID/task/TID/comm shows)."""
    if _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0) != 0:
        raise GuestError(f"prctl(PR_SET_NAME): {os.strerror(ctypes.get_errno())}")


class VcpuThread(threading.Thread):
    """Runs ``vm`` in a thread named "CPU 0/KVM" once ``go`` is set; ``tid`` is known at ``named``."""

    def __init__(self, vm: Vm, mmio_sleep_s: float = 0.0, on_error=None):
        super().__init__(daemon=True)
        self.vm, self.mmio_sleep_s, self.on_error = vm, mmio_sleep_s, on_error
        self.named, self.go, self.stop = threading.Event(), threading.Event(), threading.Event()
        self.running = threading.Event()
        self.tid = 0
        self.exits = dict.fromkeys(EXIT_NAMES.values(), 0)
        self.elapsed = 0.0
        self.cpu = 0.0  # the vCPU thread's CPU time over the run (guest mode included)
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
            self.tid = threading.get_native_id()
            name_current_thread()
            self.named.set()
            self.go.wait()
            if self.stop.is_set():
                return
            t0, c0 = time.perf_counter(), time.thread_time()
            self.exits = self.vm.run(self.stop, self.mmio_sleep_s, self.running)
            self.elapsed, self.cpu = time.perf_counter() - t0, time.thread_time() - c0
        except BaseException as e:
            self.error = e
            if self.on_error:
                self.on_error(e)
        finally:
            self.named.set()
            self.running.set()


def run_exit_loop(iterations: int) -> float:
    """Seconds this process takes to handle ``iterations`` PIO exits (+1 marker), vCPU in a thread."""
    return run_exit_loop_timed(iterations)[0]


def run_exit_loop_timed(iterations: int) -> tuple[float, float]:
    """``run_exit_loop`` as (wall seconds, CPU seconds of the vCPU thread): the CPU time leaves
    out the time other processes of a busy host take the CPU away."""
    vm = Vm(guest_code(pio=iterations, mmio=0, hlt=0))
    try:
        vcpu = VcpuThread(vm)
        vcpu.start()
        vcpu.named.wait()
        vcpu.go.set()
        vcpu.join()
        wait_thread_gone(vcpu.tid)
        if vcpu.error:
            raise vcpu.error
        return vcpu.elapsed, vcpu.cpu
    finally:
        vm.close()


# --------------------------------------------------------------------------- script


class _Stop(Exception):
    pass


def _fail(msg: str) -> None:
    """One line on stderr, exit status 2 (callable from any thread)."""
    sys.stdout.flush()
    sys.stderr.write(f"kvm_guest: {msg}\n")
    sys.stderr.flush()
    os._exit(2)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, not usage + message
        _fail(message)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = _Parser(description="A tiny real KVM guest (see the module docstring).")
    p.add_argument("-name", required=True, help="guest=NAME[,debug-threads=on], as QEMU takes it")
    for opt in ("--pio", "--mmio", "--hlt"):
        p.add_argument(opt, type=int, default=0)
    p.add_argument("--mmio-sleep-ms", type=float, default=0.0)
    p.add_argument("--loop", action="store_true")
    p.add_argument("--exit-when-done", action="store_true", help="exit right after the done line")
    args = p.parse_args(argv)
    if min(args.pio, args.mmio, args.hlt, args.mmio_sleep_ms) < 0:
        _fail("counts and --mmio-sleep-ms must be >= 0")
    if max(args.pio, args.mmio, args.hlt) >= 2**32:
        _fail("counts must be below 2**32 (the guest counts in ECX)")
    return args


def _emit(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def _wait_quit() -> None:
    for line in sys.stdin:
        if line.strip() == "quit":
            return


def _on_sigterm(_sig, _frame):
    raise _Stop


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        vm = Vm(guest_code(args.pio, args.mmio, args.hlt, loop=args.loop))
    except (OSError, GuestError) as e:
        _fail(str(e))
    vcpu = VcpuThread(vm, args.mmio_sleep_ms / 1000.0, on_error=lambda e: _fail(str(e)))
    signal.signal(signal.SIGTERM, _on_sigterm)
    started = False
    try:
        vcpu.start()
        vcpu.named.wait()
        _emit({"ready": True, "pid": os.getpid(), "tid": vcpu.tid})
        if sys.stdin.readline().strip() != "go":
            return 0
        started = True
        vcpu.go.set()
        if args.loop:
            vcpu.running.wait()
            _emit({"running": True})
            _wait_quit()
        else:
            vcpu.join()
    except _Stop:
        pass
    finally:
        vcpu.stop.set()
        vcpu.go.set()
    vcpu.join()
    wait_thread_gone(vcpu.tid)  # "done" means the vCPU thread and its last events are gone
    if started:
        _emit({"done": True, "exits": vcpu.exits, "tid": vcpu.tid})
        if not args.loop and not args.exit_when_done:
            with contextlib.suppress(_Stop):
                _wait_quit()
    return 0


# --------------------------------------------------------------------------- parent side


class GuestProcess:
    """The script as a child process: ``with GuestProcess("vm1", pio=5) as g: g.go(); g.wait_done()``."""

    def __init__(self, name: str, pio: int = 0, mmio: int = 0, hlt: int = 0,
                 mmio_sleep_ms: float = 0.0, loop: bool = False, timeout: float = 30.0,
                 exit_when_done: bool = False):
        self.name, self.timeout, self.loop = name, timeout, loop
        self.argv = [sys.executable, os.path.abspath(__file__),
                     "-name", f"guest={name.replace(',', ',,')},debug-threads=on",
                     "--pio", str(pio), "--mmio", str(mmio), "--hlt", str(hlt),
                     "--mmio-sleep-ms", str(mmio_sleep_ms)] + (["--loop"] if loop else []) \
            + (["--exit-when-done"] if exit_when_done else [])
        self.proc: subprocess.Popen | None = None
        self.pid = self.tid = 0
        self.done: dict | None = None
        self._buf = b""

    def start(self) -> GuestProcess:
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, close_fds=True)
        ready = self._read("ready")
        self.pid, self.tid = ready["pid"], ready["tid"]
        return self

    def go(self) -> None:
        """Start the run; in loop mode, return once the vCPU has handled its first exit."""
        self._send("go")
        if self.loop:
            self._read("running")

    def wait_done(self, timeout: float | None = None) -> dict[str, int]:
        """The exits dict of the ``done`` line (the full line is kept in ``.done``)."""
        self.done = self._read("done", timeout)
        return self.done["exits"]

    def stop(self) -> dict[str, int]:
        """Loop mode: ask the guest to stop and return the exits it handled."""
        self._send("quit")
        return self.wait_done()

    def close(self) -> int:
        """Send ``quit``, close stdin and reap the child; returns its exit status."""
        proc = self.proc
        if proc is None:
            return 0
        try:
            self._send("quit")
            self._pipe(proc.stdin).close()
        except (BrokenPipeError, OSError, ValueError):
            pass
        try:
            proc.wait(self.timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            self._pipe(f).close()
        return proc.returncode

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc else None

    def __enter__(self) -> GuestProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _started(self) -> subprocess.Popen:
        if self.proc is None:
            raise GuestError(f"guest {self.name!r} is not started")
        return self.proc

    @staticmethod
    def _pipe(f: IO[bytes] | None) -> IO[bytes]:
        assert f is not None, "every stream is a pipe (start)"
        return f

    def _send(self, line: str) -> None:
        stdin = self._pipe(self._started().stdin)
        stdin.write(line.encode() + b"\n")
        stdin.flush()

    def _read(self, key: str, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        proc = self._started()
        fd = self._pipe(proc.stdout).fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise GuestError(f"guest {self.name!r}: no {key!r} line within the timeout")
            chunk = os.read(fd, 65536)
            if not chunk:
                proc.wait()
                err = self._pipe(proc.stderr).read().decode(errors="replace").strip()
                raise GuestError(f"guest {self.name!r} exited ({proc.returncode}) before {key!r}: {err}")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        msg = json.loads(line)
        if not msg.get(key):
            raise GuestError(f"guest {self.name!r}: expected {key!r}, got {msg}")
        return msg


if __name__ == "__main__":
    sys.exit(main())
