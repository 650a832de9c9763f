"""Real ftrace captures of the test guest, in a private tracefs instance (tests and tests/data).

``FtraceCapture`` makes a tracefs instance (its own ring buffer, event switches and filters, so
nothing of the top-level trace or of other users is touched), enables the given events with
their filters, limits them to the given tasks (``set_event_pid``) and returns the ``trace`` text.

The command line makes the captures committed under ``tests/data/`` (one or more guests
started together; the header says how the file was made)::

    python -m kvmtop.testing.ftrace_capture OUT.txt [--events kvm_userspace_exit,...] [--no-tgid]
        --guest NAME:pio=3,mmio=2,hlt=1,mmio_sleep_ms=1 [--guest ...]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import re
import shlex
import sys
import time
from collections.abc import Iterable, Mapping

from .. import tracefs
from .kvm_guest import GuestProcess

# event -> filter (None: every event): the round-trip set kvmtop reads
DEFAULT_EVENTS: dict[str, str | None] = {
    "kvm/kvm_exit": None,
    "kvm/kvm_entry": None,
    "kvm/kvm_userspace_exit": None,
    "kvm/kvm_hypercall": None,
    "kvm/kvm_pio": None,
    "kvm/kvm_mmio": None,
    "syscalls/sys_enter_ioctl": "cmd == 0xae80",
}


class FtraceCapture:
    """``with FtraceCapture(events, pids) as cap: ...; text = cap.text()``."""

    def __init__(self, events: Mapping[str, str | None] | None = None, pids: Iterable[int] = (),
                 tgid: bool = True, name: str | None = None):
        self.events = dict(DEFAULT_EVENTS if events is None else events)
        self.pids = list(pids)
        self.tgid = tgid
        root = tracefs.require()
        self.dir = os.path.join(root, "instances", name or f"kvmtop-test-{os.getpid()}-{time.monotonic_ns()}")

    def _write(self, rel: str, value: str) -> None:
        with open(os.path.join(self.dir, rel), "w") as f:
            f.write(value)

    def __enter__(self) -> FtraceCapture:
        os.mkdir(self.dir)
        try:
            self._write("tracing_on", "0")
            self._write("options/record-tgid", "1" if self.tgid else "0")
            if self.pids:
                self._write("set_event_pid", " ".join(map(str, self.pids)))
            for event, flt in self.events.items():
                if flt:
                    self._write(f"events/{event}/filter", flt)
                self._write(f"events/{event}/enable", "1")
            self._write("tracing_on", "1")
        except BaseException:
            self.close()
            raise
        return self

    def add_pids(self, pids: Iterable[int]) -> None:
        """Trace these tasks too (threads made after the capture started)."""
        self.pids += list(pids)
        self._write("set_event_pid", " ".join(map(str, self.pids)))

    def text(self) -> str:
        """The trace so far (the ``trace`` file: a ``#`` header, then one event a line)."""
        with open(os.path.join(self.dir, "trace"), encoding="utf-8", errors="replace") as f:
            return f.read()

    def close(self) -> None:
        if not os.path.isdir(self.dir):
            return
        try:
            self._write("tracing_on", "0")
            for event in self.events:
                with contextlib.suppress(OSError):
                    self._write(f"events/{event}/enable", "0")
        finally:
            os.rmdir(self.dir)

    def __exit__(self, *exc) -> None:
        self.close()


def _guest_spec(text: str) -> tuple[str, dict]:
    name, _, opts = text.partition(":")
    kwargs: dict = {}
    for item in filter(None, opts.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = float(value) if key == "mmio_sleep_ms" else int(value)
    return name, kwargs


def capture_guests(specs: list[tuple[str, dict]], events: Mapping[str, str | None] | None = None,
                   tgid: bool = True) -> tuple[str, list[dict]]:
    """Start the guests, trace them while they run to completion; (trace text, their done lines)."""
    guests = [GuestProcess(name, **kw).start() for name, kw in specs]
    try:
        pids = [p for g in guests for p in (g.pid, g.tid)]
        with FtraceCapture(events, pids, tgid) as cap:
            for g in guests:
                g.go()
            done: list[dict] = []
            for g in guests:
                g.wait_done()
                done.append(g.done or {})
            text = cap.text()
        return text, done
    finally:
        for g in guests:
            g.close()


_FTRACE_EVENT = re.compile(r"\s*(.*)-(\d+)\s+\(\s*(\d+)\)\s+\[(\d+)\]\s+(\S+)\s+(\d+)\.(\d+): (\w+)(: |\()(.*?)\s*$")
_IOCTL_ARGS = re.compile(r"fd: (\w+), cmd: (\w+), arg: (\w+)")


def to_perf_prof_layout(text: str, start: datetime.datetime) -> str:
    """An ftrace capture (with the tgid column) re-printed as perf-prof prints events: a
    wall-clock date and time (``start`` plus the trace time since the first event), then
    ``%16s %6u flags [%03d] sec.usec: system:event: payload`` (4 flag characters; a syscall
    entry printed with libtraceevent's ``fd: 0x%08lx, cmd: 0x%08lx, arg: 0x%08lx``).
    Lines that are no event are left out."""
    out = []
    first = None
    for line in text.splitlines():
        m = _FTRACE_EVENT.match(line)
        if m is None or line.lstrip().startswith("#"):
            continue
        comm, tid, _tgid, cpu, flags, sec, usec, event, sep, payload = m.groups()
        if sep == "(":  # ftrace's syscall entry: sys_ioctl(fd: 5, cmd: 0xae80, arg: 0)
            payload = payload.removesuffix(")")
        us = int(sec) * 1_000_000 + int(usec)
        first = us if first is None else first
        stamp = (start + datetime.timedelta(microseconds=us - first)).strftime("%Y-%m-%d %H:%M:%S.%f")
        args = _IOCTL_ARGS.match(payload) if event == "sys_ioctl" else None
        if args is not None:
            fd, cmd, arg = (int(v, 16) for v in args.groups())
            system, event = "syscalls", "sys_enter_ioctl"
            payload = f"fd: 0x{fd:08x}, cmd: 0x{cmd:08x}, arg: 0x{arg:08x}"
        else:
            system = event.split("_", 1)[0]
        out.append(f"{stamp} {comm:>16} {int(tid):6d} {flags[:4]} [{int(cpu):03d}] {sec}.{usec}: "
                   f"{system}:{event}: {payload}")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m kvmtop.testing.ftrace_capture", description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--guest", action="append", required=True, metavar="NAME:key=value,...")
    ap.add_argument("--events", help="comma-separated category/event list (default: the round-trip set)")
    ap.add_argument("--no-tgid", action="store_true", help="leave out ftrace's tgid column")
    ap.add_argument("--note", action="append", default=[], help="a line for the file's header")
    args = ap.parse_args(argv)
    events = None
    if args.events:
        events = {e: DEFAULT_EVENTS.get(e) for e in args.events.split(",")}
    text, done = capture_guests([_guest_spec(g) for g in args.guest], events, not args.no_tgid)
    cmd = " ".join(shlex.quote(a) for a in ["python", "-m", "kvmtop.testing.ftrace_capture", *(argv or sys.argv[1:])])
    header = [
        "# SOURCE: made on a kvmtop development host (Linux " + os.uname().release + ", PVM KVM backend) with",
        f"#   {cmd}",
        "# The test guest (kvmtop/testing/kvm_guest.py) ran under a private tracefs instance limited to its tasks.",
        *(f"# guest {d.get('tid')}: {d.get('exits')}" for d in done),
        *(f"# {n}" for n in args.note),
    ]
    with open(args.output, "w", encoding="utf-8") as f:
        f.write("\n".join(header) + "\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
