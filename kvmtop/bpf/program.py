"""Compile, load and attach kvmtop.bpf.c with BCC.

Field layouts come from the tracepoint formats at run time (BCC's TRACEPOINT_PROBE);
optional fields and events are detected in tracefs and switch code on with cflags, so
nothing is guessed from kernel versions or struct offsets. Every failure a user can meet
is a SourceError with one line.

Events whose prototype is plain values (or whose arguments are not needed) are attached
as raw tracepoints (ctx->args[], no trace record to fill: cheaper per event) when their
tracefs fields are still the expected ones (RAW_ARGS); otherwise, or when the raw attach
fails, the classic probe is compiled instead. ``Program.probes`` says which was used.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from .. import histogram, tracefs
from ..errors import SourceError
from . import headers, sizing
from .sizing import DEFAULT_MAX_KEYS, HIST_FACTOR, MapSizes  # noqa: F401 - re-exported
from .swapped import SwappedHash

SOURCE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kvmtop.bpf.c")


# map key kinds (stat_key.kind): an exit's isa, or one of these
KIND_VMX, KIND_SVM = 1, 2
KIND_USERSPACE = 0x10
KIND_HYPERCALL = 0x11
KIND_REQUEST = 0x12  # rows of the `lost` map only: code = the request bit
NO_LATENCY = 1       # stat_key.flags: counted without a latency
WITH_HYPERCALL = 2   # stat_key.flags: an exit that made hypercall `nr` (one event of each)
ERRNO_FLAG = 0x80000000  # userspace code when errno < 0: ERRNO_FLAG | -errno
NO_VCPU_ID = 0xFFFFFFFF
KVM_RUN = 0xAE80

# counters[] indices, as the C enum
COUNTERS = (
    "drop_exits", "drop_userspace", "drop_hypercalls", "drop_requests",
    "drop_pending", "drop_info", "drop_lost",
    "unmatched_exits", "unmatched_entries",
    "seen_exits", "seen_userspace",
    "lost_new_threads",
)
# events not recorded, per kind (exact: each lost event is counted once, in one of these)
DROP_KINDS = {"exits": "drop_exits", "userspace": "drop_userspace", "hypercalls": "drop_hypercalls",
              "requests": "drop_requests"}

# tracepoints: (category, event, fields it needs)
REQUIRED = {
    ("kvm", "kvm_exit"): ("exit_reason", "isa"),
    ("kvm", "kvm_entry"): (),
    ("kvm", "kvm_userspace_exit"): ("reason", "errno"),
}
OPTIONAL = {
    ("kvm", "kvm_hypercall"): ("nr",),
    ("syscalls", "sys_enter_ioctl"): ("cmd",),
    ("sched", "sched_process_exit"): (),
    ("kvm", "kvm_pio"): ("rw", "port"),
    ("kvm", "kvm_mmio"): ("type", "gpa"),
}
TEST_PROGRAMS = ("test_exit", "test_entry", "test_hypercall", "test_userspace_exit", "test_ioctl",
                 "test_thread_exit", "test_io")
# PIO/MMIO accesses (HAVE_IO): attached only while someone looks at them (Program.set_io)
IO_EVENTS = ("kvm:kvm_pio", "kvm:kvm_mmio")
IO_PIO, IO_MMIO = 0, 1  # io_key.space

# Raw tracepoints: the TP_PROTO arguments the raw probe reads from ctx->args[], which must be
# exactly the event's tracefs fields in this order (a changed prototype shows there too);
# None: the probe reads no argument (kvm_entry's are a vcpu pointer [+ a bool from 6.9]).
RAW_ARGS = {
    ("kvm", "kvm_userspace_exit"): ("reason", "errno"),          # (__u32 reason, int errno)
    ("kvm", "kvm_entry"): None,
    ("kvm", "kvm_hypercall"): ("nr", "a0", "a1", "a2", "a3"),    # (unsigned long nr, a0..a3)
    ("sched", "sched_process_exit"): None,
}
RAW, CLASSIC = "raw_tracepoint", "tracepoint"
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
MAPS = ("stats", "lost", "slots", "pending", "info", "counters")


@dataclass(frozen=True)
class Features:
    """What this kernel's tracepoints offer (from tracefs, never from the version)."""

    requests: bool = False        # kvm_exit has `requests` (6.14+)
    exit_vcpu_id: bool = False    # kvm_exit has `vcpu_id`
    hypercalls: bool = False      # kvm:kvm_hypercall exists
    ioctl: bool = False           # syscalls:sys_enter_ioctl exists (KVM_RUN ends a round trip)
    thread_exit: bool = False     # sched:sched_process_exit exists (in-flight events count at exit)
    raw_userspace_exit: bool = False  # kvm_userspace_exit's fields are (reason, errno)
    raw_entry: bool = False           # kvm_entry exists (its raw probe reads no argument)
    raw_hypercall: bool = False       # kvm_hypercall's fields are (nr, a0, a1, a2, a3)
    raw_thread_exit: bool = False     # sched_process_exit exists (its raw probe reads no argument)
    io: bool = False                  # kvm:kvm_pio and kvm:kvm_mmio exist (the I/O panel)

    def notes(self) -> tuple[str, ...]:
        out = []
        if not self.requests:
            out.append("kvm_exit has no requests field on this kernel (Linux 6.14+): "
                       "request bits unavailable")
        if not self.hypercalls:
            out.append("tracepoint kvm:kvm_hypercall is missing: hypercalls unavailable")
        if not self.ioctl:
            out.append("tracepoint syscalls:sys_enter_ioctl is missing: "
                       "userspace round trips end at the next kvm_entry")
        if not self.thread_exit:
            out.append("tracepoint sched:sched_process_exit is missing: an exit or userspace exit "
                       "still in flight when its thread ends is not counted")
        return tuple(out)


def event_args(fields: dict) -> tuple[str, ...]:
    """The event's own field names in format order (common_* left out)."""
    return tuple(n for n in fields if not n.startswith("common_"))


def raw_ok(cat: str, event: str, root: str | None = None) -> bool:
    """Whether the raw probe of ``cat:event`` may be used: the event exists and its fields
    are exactly the prototype RAW_ARGS expects."""
    try:
        fields = tracefs.fields(cat, event, root)
    except tracefs.TracefsError:
        return False
    expected = RAW_ARGS[(cat, event)]
    return expected is None or event_args(fields) == expected


def detect_features(root: str | None = None) -> Features:
    """Check the tracepoints kvmtop needs; SourceError (one line) when one is missing."""
    try:
        root = root or tracefs.require(mount=True)
    except tracefs.TracefsError as e:
        raise SourceError(str(e)) from None
    for (cat, event), needed in REQUIRED.items():
        try:
            fields = tracefs.fields(cat, event, root)
        except tracefs.TracefsError as e:
            raise SourceError(str(e)) from None
        missing = [f for f in needed if f not in fields]
        if missing:
            raise SourceError(f"tracepoint {cat}:{event} has no field {missing[0]!r} on this kernel")
        if event == "kvm_exit":
            exit_fields = fields
    optional = {}
    for (cat, event), needed in OPTIONAL.items():
        try:
            fields = tracefs.fields(cat, event, root)
        except tracefs.TracefsError:
            optional[event] = False
            continue
        optional[event] = all(f in fields for f in needed)
    return Features(
        requests="requests" in exit_fields,
        exit_vcpu_id="vcpu_id" in exit_fields,
        hypercalls=optional["kvm_hypercall"],
        ioctl=optional["sys_enter_ioctl"],
        thread_exit=optional["sched_process_exit"],
        raw_userspace_exit=raw_ok("kvm", "kvm_userspace_exit", root),
        raw_entry=raw_ok("kvm", "kvm_entry", root),
        raw_hypercall=optional["kvm_hypercall"] and raw_ok("kvm", "kvm_hypercall", root),
        raw_thread_exit=optional["sched_process_exit"],
        io=optional["kvm_pio"] and optional["kvm_mmio"],
    )


def plan_probes(features: Features, raw: bool = True) -> dict[str, str]:
    """Which probe each event gets: "cat:event" -> RAW or CLASSIC (``raw`` False: the
    classic tracepoints everywhere, as before raw tracepoints were used)."""
    plan = {
        "kvm:kvm_exit": CLASSIC,
        "kvm:kvm_entry": RAW if raw and features.raw_entry else CLASSIC,
        "kvm:kvm_userspace_exit": RAW if raw and features.raw_userspace_exit else CLASSIC,
    }
    if features.hypercalls:
        plan["kvm:kvm_hypercall"] = RAW if raw and features.raw_hypercall else CLASSIC
    if features.ioctl:  # KVM_RUN's start: see kvmtop.bpf.c for why not kvm_fpu or raw sys_enter
        plan["syscalls:sys_enter_ioctl"] = CLASSIC
    if features.thread_exit:
        plan["sched:sched_process_exit"] = RAW if raw and features.raw_thread_exit else CLASSIC
    if features.io:
        plan.update((event, CLASSIC) for event in IO_EVENTS)
    return plan


def build_cflags(features: Features, max_keys: int = DEFAULT_MAX_KEYS, pid: int | None = None,
                 test: bool = False, hist_keys: int | None = None,
                 pending_keys: int | None = None, probes: dict[str, str] | None = None,
                 sizes: MapSizes | None = None) -> list[str]:
    sizes = sizes or MapSizes.for_max_keys(max_keys, hist_keys, pending_keys)
    flags = histogram.c_defines() + sizes.cflags()
    for on, name in ((features.requests, "HAVE_REQUESTS"), (features.exit_vcpu_id, "HAVE_EXIT_VCPU_ID"),
                     (features.hypercalls, "HAVE_HYPERCALL"), (features.ioctl, "HAVE_IOCTL"),
                     (features.thread_exit, "HAVE_THREAD_EXIT"), (features.io, "HAVE_IO")):
        if on:
            flags.append(f"-D{name}")
    if probes is None:
        probes = plan_probes(features)
    for event, name in (("kvm:kvm_userspace_exit", "RAW_USERSPACE_EXIT"), ("kvm:kvm_entry", "RAW_ENTRY"),
                        ("kvm:kvm_hypercall", "RAW_HYPERCALL"), ("sched:sched_process_exit", "RAW_THREAD_EXIT")):
        if probes.get(event) == RAW:
            flags.append(f"-D{name}")
    if pid is not None:
        flags.append(f"-DFILTER_PID={int(pid)}")
    if test:
        flags.append("-DKVMTOP_TEST")
    return flags


@contextlib.contextmanager
def _captured_stderr():
    """Collect what BCC/clang/the verifier print on fd 2 (they bypass sys.stderr)."""
    holder = {"text": ""}
    with tempfile.TemporaryFile(mode="w+b") as log:
        saved = os.dup(2)
        try:
            os.dup2(log.fileno(), 2)
            yield holder
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            log.seek(0)
            holder["text"] = log.read().decode(errors="replace")


def _first_error(log: str, default: str) -> str:
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    for ln in lines:
        if "error:" in ln:
            return ln
    return lines[0] if lines else default


def _new_bpf(bpf_class, text: bytes, cflags: list[str]):
    """BPF(text, cflags), detaching what it attached when it fails part way (BCC itself would
    leave those probes running until the process exits)."""
    bpf = bpf_class.__new__(bpf_class)
    try:
        bpf.__init__(text=text, cflags=cflags)
    except BaseException:
        with contextlib.suppress(Exception):
            bpf.cleanup()
        raise
    return bpf


class Program:
    """kvmtop.bpf.c compiled for this kernel: ``load()`` attaches it (or, with ``test``,
    loads the raw-tracepoint test wrappers instead, attached to nothing)."""

    def __init__(self, max_keys: int = DEFAULT_MAX_KEYS, pid: int | None = None, test: bool = False,
                 features: Features | None = None, hist_keys: int | None = None,
                 pending_keys: int | None = None, raw: bool = True, lost_keys: int | None = None,
                 source: str | None = None, io: bool = False):
        self.source = source or SOURCE_PATH  # the BPF C (benchmarks may time another version)
        self.sizes = MapSizes.for_max_keys(max_keys, hist_keys, pending_keys, lost_keys)
        self.max_keys, self.pid, self.test = max_keys, pid, test
        self.raw = raw         # False: classic tracepoints only
        self.probes: dict[str, str] = {}   # "cat:event" -> RAW or CLASSIC, as attached
        self.fallback = ""     # why the raw probes were given up for the classic ones
        self.hist_keys, self.pending_keys = self.sizes.hist_keys, self.sizes.pending_keys
        self.lost_keys, self.slots = self.sizes.lost_keys, self.sizes.slots
        self.features: Features | None = features
        self.cflags: list[str] = []
        self.bpf: Any = None  # bcc.BPF once loaded (bcc has no type information)
        self.log = ""          # what the compiler printed (warnings), for --debug
        self.test_fds: dict[str, int] = {}
        self.io = io  # the I/O probes attached (set_io); load() leaves them off unless asked
        self.stats: SwappedHash | None = None  # `stats`' two maps (None: a source whose `stats` is one hash)
        self.epoch = 0  # the slot of `stats` and half of `lost` the programs write (the `epoch` array)

    # ------------------------------------------------------------------ load

    def load(self) -> Program:
        sizing.check(self.sizes)  # before anything is allocated
        if os.geteuid() != 0:
            raise SourceError("kvmtop needs root to load BPF programs (run it with sudo)")
        try:
            from bcc import BPF
        except ImportError:
            raise SourceError("BCC is not installed (apt install python3-bpfcc)") from None
        if self.features is None:
            self.features = (Features(requests=True, exit_vcpu_id=True, hypercalls=True, ioctl=True, thread_exit=True,
                                      io=True)
                             if self.test else detect_features())
        try:
            path = headers.prepare_headers(verbose=False)
        except headers.HeadersError as e:
            raise SourceError(str(e)) from None
        if path:
            os.environ["BCC_KERNEL_SOURCE"] = path
        probes = {} if self.test else plan_probes(self.features, self.raw)
        with open(self.source, encoding="utf-8") as f:
            text = f.read()
        err = self._build(BPF, text, probes)
        if err is not None and RAW in probes.values():
            # a raw attach (or an old BCC's RAW_TRACEPOINT_PROBE) failed: the classic probes
            why = str(err).splitlines()[0] if str(err) else type(err).__name__
            self.fallback = f"raw tracepoints unavailable ({why}): classic tracepoints used"
            err = self._build(BPF, text, plan_probes(self.features, raw=False))
        if err is None:
            err = self._make_stats()
        if err is not None:
            self.close()
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            if "compile" in msg.lower():
                raise SourceError(f"BPF compile failed: {_first_error(self.log, msg)}") from None
            if "load" in msg.lower() or "privileges" in msg.lower():
                last = [ln for ln in self.log.splitlines() if ln.strip()]
                why = f" ({last[-1].strip()})" if last else ""
                raise SourceError(f"the kernel refused a BPF program: {msg}{why}") from None
            if "attach" in msg.lower() or "tracepoint" in msg.lower():
                raise SourceError(f"cannot attach: {msg}") from None
            raise SourceError(f"BPF setup failed: {msg}") from None
        return self

    def _build(self, bpf_class, text: str, probes: dict[str, str]) -> Exception | None:
        """Compile, load and attach with ``probes``; the exception BCC raised, if any."""
        self.close()
        assert self.features is not None, "load() detects the features first"
        self.cflags = build_cflags(self.features, pid=self.pid, test=self.test, probes=probes, sizes=self.sizes)
        with _captured_stderr() as out:
            try:
                self.bpf = _new_bpf(bpf_class, text.encode(), self.cflags)
                if self.test:
                    for name in (n for n in TEST_PROGRAMS if f"int {n}(" in text):  # an older source may lack some
                        self.test_fds[name] = self.bpf.load_func(name.encode(), bpf_class.RAW_TRACEPOINT).fd
                err = None
            except Exception as e:  # bcc raises bare Exceptions
                err = e
        self.log = out["text"]
        self.probes = {} if err is not None else dict(probes)
        if err is None and not self.io:
            self._detach(self.io_probes())  # BCC attached every probe: the I/O ones wait until asked
        return err

    def _make_stats(self) -> Exception | None:
        """The two maps of `stats` (an array of maps), before any event can come."""
        if self.table("stats").ttype != BPF_MAP_TYPE_ARRAY_OF_MAPS:
            return None  # an older source (a benchmark's baseline): `stats` is one hash map
        template = self.table("stats_template")
        try:
            self.stats = SwappedHash(self.table("stats").map_fd, ctypes.sizeof(template.Key),
                                     ctypes.sizeof(template.Leaf), self.sizes.hist_keys, template.flags)
        except OSError as e:
            return e
        return None

    def flip_epoch(self) -> int:
        """Point new events at the other `stats` map (empty) and the other half of `lost`; returns
        the epoch they went to until now. Once the programs that saw that epoch have finished,
        its `stats` map (``stats_fd``) is read, then ``release_stats``."""
        if self.stats is not None:
            self.stats.ready()  # the new epoch's map: empty, in its slot
        old, new = self.epoch, self.epoch ^ 1
        table = self.table("epoch")
        table[table.Key(0)] = table.Leaf(new)
        self.epoch = new
        return old

    def release_stats(self, epoch: int) -> None:
        """``epoch``'s `stats` map has been read (and nothing writes it): it goes, a new empty
        map takes its slot, for the flip after next."""
        if self.stats is not None:
            self.stats.release(epoch)

    def stats_fd(self, epoch: int | None = None) -> int:
        """The `stats` map of ``epoch`` (default: the one the programs write now)."""
        if self.stats is None:
            return self.table("stats").map_fd
        return self.stats.fds[self.epoch if epoch is None else epoch]

    def detach(self) -> None:
        """Detach every probe; the programs and maps stay loaded (``attach()`` resumes)."""
        self._detach(self.probes)

    def attach(self) -> None:
        """Attach the probes ``detach()`` removed (those attached stay as they are; the I/O
        ones only while ``set_io(True)``)."""
        self._attach({e: k for e, k in self.probes.items() if self.io or e not in IO_EVENTS})

    def io_probes(self) -> dict[str, str]:
        return {e: k for e, k in self.probes.items() if e in IO_EVENTS}

    def set_io(self, on: bool) -> None:
        """Attach (or detach) the kvm_pio/kvm_mmio probes: the I/O panel's data costs nothing
        while nobody looks at it."""
        self.io = on
        (self._attach if on else self._detach)(self.io_probes())

    def io_attached(self) -> bool:
        return any(e.encode() in self.bpf.tracepoint_fds for e in self.io_probes()) if self.bpf else False

    def _detach(self, probes: dict[str, str]) -> None:
        for event, kind in probes.items():
            cat, name = event.split(":")
            if kind == RAW and name.encode() in self.bpf.raw_tracepoint_fds:
                self.bpf.detach_raw_tracepoint(name.encode())
            elif kind == CLASSIC and event.encode() in self.bpf.tracepoint_fds:
                self.bpf.detach_tracepoint(event.encode())

    def _attach(self, probes: dict[str, str]) -> None:
        for event, kind in probes.items():
            cat, name = event.split(":")
            if kind == RAW and name.encode() not in self.bpf.raw_tracepoint_fds:
                self.bpf.attach_raw_tracepoint(tp=name.encode(), fn_name=f"raw_tracepoint__{name}".encode())
            elif kind == CLASSIC and event.encode() not in self.bpf.tracepoint_fds:
                self.bpf.attach_tracepoint(tp=event.encode(), fn_name=f"tracepoint__{cat}__{name}".encode())

    # ------------------------------------------------------------------ maps

    def table(self, name: str):
        if self.bpf is None:
            raise SourceError("BPF program is not loaded")
        return self.bpf[name.encode()]

    def map_fd(self, name: str) -> int:
        """The map's fd (`stats`: the map the programs write now)."""
        return self.stats_fd() if name == "stats" else self.table(name).map_fd

    def map_fds(self) -> dict[str, int]:
        """The maps that hold kvmtop's data (MAPS, `io` where loaded), with `stats` as its array of
        maps, its template and its two maps (stats[0], stats[1]): name -> fd."""
        names = [*MAPS, "stats_template"] + (["io"] if self.features is not None and self.features.io else [])
        out = {n: self.table(n).map_fd for n in names if n != "stats_template" or self.stats is not None}
        if self.stats is not None:
            out.update((f"stats[{i}]", fd) for i, fd in enumerate(self.stats.fds))
        return out

    @property
    def maps(self) -> dict[str, object]:
        """The BCC table handles (MAPS)."""
        return {n: self.table(n) for n in MAPS}

    def prog_fds(self) -> dict[str, int]:
        """Loaded program name -> fd (attached probes, or the test wrappers): BCC names them
        tracepoint__CAT__EVENT and raw_tracepoint__EVENT."""
        if self.bpf is None:
            return {}
        return {fn.name.decode() if isinstance(fn.name, bytes) else fn.name: fn.fd
                for fn in self.bpf.funcs.values()}

    def counters(self) -> dict[str, int]:
        """Totals since load of the per-CPU counters (drops, unmatched, events seen)."""
        table = self.table("counters")
        return {name: int(sum(table[table.Key(i)])) for i, name in enumerate(COUNTERS)}

    def close(self) -> None:
        bpf, self.bpf = self.bpf, None
        stats, self.stats = self.stats, None
        self.test_fds = {}
        self.epoch = 0
        if stats is not None:
            stats.close()
        if bpf is not None:
            with contextlib.suppress(Exception):  # closing must not raise
                bpf.cleanup()
