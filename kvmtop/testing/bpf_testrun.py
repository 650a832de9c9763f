"""Drive BPF programs without real events: BPF_PROG_TEST_RUN on raw-tracepoint programs.

The kvmtop test build (-DKVMTOP_TEST) has raw-tracepoint wrappers test_exit, test_entry,
test_hypercall, test_userspace_exit, test_ioctl and test_thread_exit that take every value, pid_tgid and
the time included, from ctx->args[]. ``TestProgram`` compiles that build and runs the
handlers on synthetic events; the maps update as they would for real ones.

Also: per-program run statistics (BPF_ENABLE_STATS, /proc/self/fdinfo), used by the
benchmarks. Plain ctypes over the bpf(2) syscall; no libbpf needed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform

_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}[platform.machine()]
BPF_PROG_TEST_RUN = 10
BPF_ENABLE_STATS = 32
BPF_STATS_RUN_TIME = 0
MAX_ARGS = 12  # MAX_BPF_FUNC_ARGS: a raw tracepoint's ctx is at most 12 u64

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _TestRunAttr(ctypes.Structure):
    _fields_ = [
        ("prog_fd", ctypes.c_uint32), ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64), ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32), ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64), ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32), ("_pad", ctypes.c_uint32),
    ]


class _EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("_pad", ctypes.c_uint32 * 3)]


def bpf_syscall(cmd: int, attr) -> int:
    """bpf(cmd, attr) with any ctypes object as attr; its result, or OSError."""
    res = _libc.syscall(_NR_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if res < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf(cmd={cmd}): {os.strerror(err)}")
    return res


class Runner:
    """BPF_PROG_TEST_RUN of one raw-tracepoint program; reuses its buffers."""

    def __init__(self, prog_fd: int):
        self.ctx = (ctypes.c_uint64 * MAX_ARGS)()
        self.attr = _TestRunAttr(prog_fd=prog_fd, ctx_size_in=ctypes.sizeof(self.ctx),
                                 ctx_in=ctypes.addressof(self.ctx))

    def __call__(self, *args: int) -> int:
        if len(args) > MAX_ARGS:
            raise ValueError(f"at most {MAX_ARGS} args")
        ctx = self.ctx
        for i in range(MAX_ARGS):
            ctx[i] = (args[i] if i < len(args) else 0) & 0xFFFFFFFFFFFFFFFF
        bpf_syscall(BPF_PROG_TEST_RUN, self.attr)
        return self.attr.retval


def test_run(prog_fd: int, *args: int) -> int:
    """Run a raw-tracepoint program once with ctx->args[] = args; returns its retval."""
    return Runner(prog_fd)(*args)


test_run.__dict__["__test__"] = False  # not a pytest test, when a test module imports it


@contextlib.contextmanager
def bpf_stats():
    """Count run_time_ns/run_cnt of every BPF program while inside (BPF_ENABLE_STATS;
    falls back to the kernel.bpf_stats_enabled sysctl, restored after)."""
    try:
        fd = bpf_syscall(BPF_ENABLE_STATS, _EnableStatsAttr(type=BPF_STATS_RUN_TIME))
    except OSError:
        fd = None
    if fd is not None:
        try:
            yield
        finally:
            os.close(fd)
        return
    path = "/proc/sys/kernel/bpf_stats_enabled"
    with open(path) as f:
        old = f.read().strip()
    with open(path, "w") as f:
        f.write("1")
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


def prog_stats(prog_fd: int) -> tuple[int, int]:
    """(run_time_ns, run_cnt) of a loaded program, from /proc/self/fdinfo."""
    vals = {}
    with open(f"/proc/self/fdinfo/{prog_fd}") as f:
        for line in f:
            key, _, value = line.partition(":")
            vals[key.strip()] = value.strip()
    return int(vals.get("run_time_ns", 0)), int(vals.get("run_cnt", 0))


# --------------------------------------------------------------------------- kvmtop test build


def pid_tgid(pid: int, tid: int) -> int:
    return (pid << 32) | tid


class TestProgram:
    """kvmtop.bpf.c built with -DKVMTOP_TEST: call the handlers with synthetic events.

    ``exit(pid, tid, t, isa, reason, requests=0, vcpu_id=0)``, ``entry(pid, tid, t)``,
    ``hypercall(pid, tid, t, nr)``, ``userspace_exit(pid, tid, t, reason, errno=0)``,
    ``ioctl(pid, tid, t, cmd=KVM_RUN)``, ``thread_exit(pid, tid)``, ``io(pid, tid, space, write, addr)``.
    """

    __test__ = False

    def __init__(self, **program_kwargs):
        from kvmtop.bpf.program import Program

        self.program = Program(test=True, **program_kwargs).load()
        self.run = {name: Runner(fd) for name, fd in self.program.test_fds.items()}

    def exit(self, pid, tid, t, isa, reason, requests=0, vcpu_id=0):
        self.run["test_exit"](pid_tgid(pid, tid), t, isa, reason, requests, vcpu_id)

    def entry(self, pid, tid, t):
        self.run["test_entry"](pid_tgid(pid, tid), t)

    def hypercall(self, pid, tid, t, nr):
        self.run["test_hypercall"](pid_tgid(pid, tid), t, nr)

    def userspace_exit(self, pid, tid, t, reason, errno=0):
        self.run["test_userspace_exit"](pid_tgid(pid, tid), t, reason, errno)

    def ioctl(self, pid, tid, t, cmd=0xAE80):
        self.run["test_ioctl"](pid_tgid(pid, tid), t, cmd)

    def thread_exit(self, pid, tid):
        self.run["test_thread_exit"](pid_tgid(pid, tid))

    def io(self, pid, tid, space, write, addr):
        self.run["test_io"](pid_tgid(pid, tid), space, int(write), addr)

    def close(self):
        self.program.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
