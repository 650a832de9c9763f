"""Prerequisite checks of the live collector (``kvmtop doctor``), and what each missing piece
means for the display.

Each check is one line. Essential checks are the ones live mode cannot start without;
the others only empty a column or a table. A short BCC probe (its own tiny program,
independent of kvmtop's) tells whether the tracepoints actually fire on this host.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from .. import tracefs
from . import headers
from .program import OPTIONAL, REQUIRED

CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39
NOT_FIRED = "did not fire during the probe (no guest running, or this backend does not emit it)"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    consequence: str = ""  # what a failure means for the display
    essential: bool = True  # live mode cannot start without it
    skipped: bool = False  # not run because an earlier check failed (or not asked for)


@dataclass(frozen=True)
class Tracepoint:
    category: str
    event: str
    essential: bool  # the loader requires it (program.REQUIRED)
    fields: tuple[str, ...]  # the fields the program reads
    missing: str  # consequence when the tracepoint does not exist
    silent: str  # consequence when it exists but does not fire

    @property
    def name(self) -> str:
        return f"{self.category}:{self.event}"


# What each tracepoint's absence means for the display; which ones exist, are essential and
# which fields they need is program.REQUIRED / program.OPTIONAL.
_CONSEQUENCES = {
    "kvm_exit": ("live mode cannot start: exit counts and exit latency have no source "
                 "(is the kvm module loaded?)",
                 "exit counts and exit latency have no source, nor hypercalls and request bits "
                 "(read at a kvm_exit); userspace exits still shown"),
    "kvm_entry": ("live mode cannot start: exit latency (kvm_exit -> kvm_entry) has no end point",
                  "exit latency has no end point: percentiles stay empty, exit counts still shown"),
    "kvm_userspace_exit": ("live mode cannot start: userspace exits (KVM_EXIT_*) have no source",
                           "no userspace exits (KVM_EXIT_*) or VMM round-trip times are shown"),
    "kvm_hypercall": ("the hypercall table stays empty; everything else is shown",
                      "the hypercall table stays empty"),
    "sys_enter_ioctl": ("userspace round trips end at the next kvm_entry instead of the KVM_RUN ioctl",
                        "userspace round trips end at the next kvm_entry instead of the KVM_RUN ioctl"),
    "sched_process_exit": ("an exit or userspace exit still in flight when its vCPU thread ends is not counted",
                           "an exit or userspace exit still in flight when its vCPU thread ends is not counted"),
    "kvm_pio": ("the guest screen's I/O panel has no source (PIO ports, MMIO addresses)",
                "no guest did port I/O while watched: the I/O panel lists no ports"),
    "kvm_mmio": ("the guest screen's I/O panel has no source (PIO ports, MMIO addresses)",
                 "no guest did MMIO while watched: the I/O panel lists no MMIO addresses"),
}

TRACEPOINTS = tuple(
    Tracepoint(cat, event, essential, needed, *_CONSEQUENCES[event])
    for essential, table in ((True, REQUIRED), (False, OPTIONAL))
    for (cat, event), needed in table.items()
)

# --------------------------------------------------------------------------- single checks

_euid = os.geteuid  # module attributes so tests can pretend to be someone else


def _effective_caps() -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def check_privileges() -> Check:
    euid, caps = _euid(), _effective_caps()

    def has(cap: int) -> bool:
        return bool(caps >> cap & 1)

    bpf_caps = (has(CAP_BPF) and has(CAP_PERFMON)) or has(CAP_SYS_ADMIN)
    consequence = ("cannot load BPF programs or read tracefs: live mode will not start "
                   "(run as root, e.g. sudo kvmtop; --demo and trace import still work)")
    if euid == 0 and bpf_caps:
        return Check("privileges", True, "running as root")
    if euid == 0:
        return Check("privileges", False, "root, but without CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN "
                     "(a restricted container?)", consequence)
    if has(CAP_BPF) and has(CAP_PERFMON):
        return Check("privileges", True, f"uid {euid} with CAP_BPF+CAP_PERFMON")
    return Check("privileges", False, f"not root (uid {euid}) and no CAP_BPF+CAP_PERFMON", consequence)


def check_bcc() -> Check:
    try:
        import bcc
    except Exception as e:  # ImportError, or a broken libbcc
        return Check("bcc", False, f"cannot import bcc ({type(e).__name__}: {e})",
                     "no live collection: install python3-bpfcc (--demo, recordings and "
                     "trace import still work)")
    return Check("bcc", True, f"bcc {getattr(bcc, '__version__', '?')} importable")


def check_headers() -> Check:
    """The header search of the loader (``headers.resolve``), merging split packages as it would."""
    try:
        tree, where = headers.resolve()
    except headers.HeadersError as e:
        return Check("kernel headers", False, str(e),
                     "BCC cannot compile kvmtop's program: live mode will not start (install "
                     "linux-headers-$(uname -r), run `python -m kvmtop.bpf.headers`, or set "
                     "BCC_KERNEL_SOURCE)")
    if tree:
        os.environ["BCC_KERNEL_SOURCE"] = tree  # for the probe below
    return Check("kernel headers", True, where)


def check_tracefs() -> tuple[Check, str | None]:
    root = tracefs.find(mount=True)
    if root is None:
        why = tracefs.missing().removeprefix("tracefs is ")
        return Check("tracefs", False, why, "tracepoint formats cannot be read: live mode will not start"), None
    return Check("tracefs", True, f"mounted at {root}"), root


def check_tracepoint(tp: Tracepoint, root: str) -> Check:
    name = f"tracepoint {tp.name}"
    if not tracefs.event_exists(tp.category, tp.event, root):
        return Check(name, False, "missing on this kernel", tp.missing, essential=tp.essential)
    if tp.fields:
        try:
            fields = tracefs.fields(tp.category, tp.event, root)
        except tracefs.TracefsError as e:
            return Check(name, False, str(e), tp.missing, essential=tp.essential)
        absent = [f for f in tp.fields if f not in fields]
        if absent:
            return Check(name, False, f"present, but without the field {absent[0]!r} kvmtop reads",
                         tp.missing, essential=tp.essential)
    return Check(name, True, "present", essential=tp.essential)


def check_requests_field(root: str) -> Check:
    consequence = "the request-bit column stays empty (kvm_exit has `requests` from Linux 6.14)"
    try:
        fields = tracefs.fields("kvm", "kvm_exit", root)
    except tracefs.TracefsError as e:
        return Check("kvm_exit requests field", False, str(e), consequence, essential=False)
    if "requests" in fields:
        return Check("kvm_exit requests field", True, "present", essential=False)
    return Check("kvm_exit requests field", False, "absent on this kernel", consequence,
                 essential=False)


def check_dev_kvm() -> Check:
    if os.path.exists("/dev/kvm"):
        return Check("/dev/kvm", True, "present", essential=False)
    return Check("/dev/kvm", False, "missing (kvm module not loaded, or no virtualization)",
                 "no guest can run on this host, so there is nothing to show", essential=False)


# --------------------------------------------------------------------------- live probe

_PROBE_ONE = """
TRACEPOINT_PROBE(%s, %s)
{
    int k = %d;
    u64 *n = counts.lookup(&k);
    if (n)
        __sync_fetch_and_add(n, 1);
    return 0;
}
"""


def probe_source(events: Sequence[tuple[str, str]]) -> str:
    """A BCC program counting each tracepoint's hits into one array slot."""
    body = "".join(_PROBE_ONE % (cat, ev, i) for i, (cat, ev) in enumerate(events))
    return f"BPF_ARRAY(counts, u64, {max(len(events), 1)});\n{body}"


def probe_tracepoints(events: Sequence[tuple[str, str]], seconds: float) -> dict[str, int]:
    """Attach to ``events`` for ``seconds`` and return hits per ``category:event``."""
    from bcc import BPF

    bpf = BPF(text=probe_source(events).encode())
    try:
        time.sleep(seconds)  # the probe window itself
        table = bpf[b"counts"]
        return {f"{cat}:{ev}": int(table[table.Key(i)].value) for i, (cat, ev) in enumerate(events)}
    finally:
        bpf.cleanup()


def probe_checks(tps: Sequence[Tracepoint], seconds: float) -> list[Check]:
    try:
        counts = probe_tracepoints([(t.category, t.event) for t in tps], seconds)
    except Exception as e:  # BCC raises plain Exception on compile/attach failure
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return [Check("BPF probe", False, f"compile/attach failed: {first}",
                      "kvmtop's own program would fail the same way: live mode will not start")]
    out = [Check("BPF probe", True, f"compiled and attached to {len(tps)} tracepoints for {seconds:g} s")]
    for tp in tps:
        n = counts[tp.name]
        if n:
            out.append(Check(f"fires {tp.name}", True, f"{n} events in {seconds:g} s", essential=False))
        else:
            out.append(Check(f"fires {tp.name}", False, f"0 events: {NOT_FIRED}", tp.silent,
                             essential=False))
    return out


# --------------------------------------------------------------------------- all together


def _crashed(name: str, e: Exception) -> Check:
    return Check(name, False, f"check crashed: {type(e).__name__}: {e}")


def _safe(name: str, fn: Callable[[], Check | list[Check]]) -> list[Check]:
    try:
        result = fn()
    except Exception as e:  # a check must never end the doctor
        return [_crashed(name, e)]
    return result if isinstance(result, list) else [result]


def _skip(name: str, why: str) -> Check:
    return Check(name, False, f"not checked: {why}", skipped=True)


def run_checks(probe_seconds: float = 1.0) -> list[Check]:
    """All checks in order; ``probe_seconds <= 0`` leaves out the live probe."""
    checks: list[Check] = []
    checks += _safe("privileges", check_privileges)
    checks += _safe("bcc", check_bcc)
    checks += _safe("kernel headers", check_headers)
    try:
        found, root = check_tracefs()
    except Exception as e:
        found, root = _crashed("tracefs", e), None
    checks.append(found)
    present: list[Tracepoint] = []
    if root is None:
        checks.append(_skip("tracepoints", "no tracefs"))
    else:
        for tp in TRACEPOINTS:
            result = _safe(f"tracepoint {tp.name}", partial(check_tracepoint, tp, root))
            checks += result
            if result[0].ok:
                present.append(tp)
        if any(tp.event == "kvm_exit" for tp in present):
            checks += _safe("kvm_exit requests field", lambda: check_requests_field(root))
    checks += _safe("/dev/kvm", check_dev_kvm)

    prereqs = ("privileges", "bcc", "kernel headers", "tracefs")
    blockers = [c.name for c in checks if c.name in prereqs and not c.ok]
    if probe_seconds <= 0:
        checks.append(_skip("BPF probe", "probe not requested"))
    elif blockers:
        checks.append(_skip("BPF probe", f"needs {', '.join(blockers)}"))
    elif not present:
        checks.append(_skip("BPF probe", "no tracepoint to attach to"))
    else:
        checks += _safe("BPF probe", lambda: probe_checks(present, probe_seconds))
    return checks


def failed(checks: Sequence[Check]) -> list[Check]:
    """Essential checks that ran and failed."""
    return [c for c in checks if c.essential and not c.ok and not c.skipped]
