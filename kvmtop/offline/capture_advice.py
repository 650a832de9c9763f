"""Why a figure is missing from a capture, and the command lines that record it.

``missing_figures`` looks at which events a capture holds and names each figure it cannot
give (exit latencies, userspace round trips, ...), the events that figure needs and why
they are absent. ``HOW_TO_RECORD`` holds the command lines that record every event kvmtop
reads: ftrace (the way that worked every time) and perf per VM. On a PVM test host,
``perf record -e syscalls:sys_enter_ioctl`` (with ``-a`` or ``-p``) recorded no event at all
in some runs and lost seconds of them in others, while ftrace (and BPF) saw every one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .trace_lines import ENTRY, EXIT, HYPERCALL, RUN, USERSPACE

KVM_RUN_FILTER = "cmd == 0xae80"  # KVM_RUN = _IO(KVMIO, 0x80)
KVM_RUN_EVENT = f"syscalls:sys_enter_ioctl ({KVM_RUN_FILTER})"

FTRACE_COMMANDS = (
    "cd /sys/kernel/tracing    # or /sys/kernel/debug/tracing",
    "echo 1 > options/record-tgid",
    f"echo '{KVM_RUN_FILTER}' > events/syscalls/sys_enter_ioctl/filter",
    "echo 1 > events/syscalls/sys_enter_ioctl/enable",
    "for e in kvm_exit kvm_entry kvm_userspace_exit kvm_hypercall; do echo 1 > events/kvm/$e/enable; done",
    "cat trace_pipe > trace.txt    # Ctrl-C to stop; then: echo 0 > events/enable",
)
PERF_COMMANDS = (
    "perf record -e kvm:kvm_exit -e kvm:kvm_entry -e kvm:kvm_userspace_exit -e kvm:kvm_hypercall "
    f"-e syscalls:sys_enter_ioctl --filter '{KVM_RUN_FILTER}' -p VMM_PID",
    "kvmtop report perf.data    # runs perf script --ns -F +pid",
)
PERF_NOTE = ("on a test host, perf record (with -a or -p) recorded no syscalls:sys_enter_ioctl event at all "
             "in some runs while ftrace recorded every one: prefer ftrace for round trips")
HOW_TO_RECORD = {"ftrace": list(FTRACE_COMMANDS), "perf": list(PERF_COMMANDS), "note": PERF_NOTE}


@dataclass(frozen=True)
class Missing:
    """A figure the capture cannot give: which events it needs, and why they are not there."""

    figure: str
    events: tuple[str, ...]
    why: str
    recordable: bool = True  # False: no recording fixes it (the kernel lacks the field)

    def to_json(self) -> dict:
        return {"figure": self.figure, "events": list(self.events), "why": self.why,
                "recordable": self.recordable}


def missing_figures(counts: Sequence[int], requests_seen: int) -> list[Missing]:
    """What a capture with ``counts[kind]`` events of each kind cannot show (kinds of trace_lines)."""
    exits, entries, userspace = counts[EXIT], counts[ENTRY], counts[USERSPACE]
    runs, hypercalls = counts[RUN], counts[HYPERCALL]
    out: list[Missing] = []
    if not exits and not userspace:
        out.append(Missing("everything", ("kvm:kvm_exit", "kvm:kvm_entry", "kvm:kvm_userspace_exit", KVM_RUN_EVENT),
                           "the capture holds no kvm_exit and no kvm_userspace_exit event"))
        return out
    if not exits:
        out.append(Missing("exits, exit reasons and exit latencies", ("kvm:kvm_exit", "kvm:kvm_entry"),
                           "the capture has no kvm_exit event (not recorded; on some backends, such as "
                           "PVM, kvm_exit and kvm_entry never fire: kvmtop doctor checks)"))
    elif not entries:
        out.append(Missing("exit latencies (and hypercall latencies)", ("kvm:kvm_entry",),
                           "the capture has kvm_exit but no kvm_entry: an exit's latency runs from "
                           "kvm_exit to the thread's next kvm_entry"))
    if userspace and not entries and not runs:
        out.append(Missing("userspace round trips (the VMM's time per KVM_EXIT_*)", (KVM_RUN_EVENT, "kvm:kvm_entry"),
                           "the capture has kvm_userspace_exit but neither kvm_entry nor KVM_RUN ioctl "
                           "entries: a round trip runs from kvm_userspace_exit to the thread's next "
                           "KVM_RUN (sys_enter_ioctl with cmd 0xae80) or kvm_entry"))
    elif exits and not userspace:
        out.append(Missing("userspace exits and round trips", ("kvm:kvm_userspace_exit", KVM_RUN_EVENT),
                           "the capture has no kvm_userspace_exit event (not recorded, or none happened)"))
    if exits and not hypercalls:
        out.append(Missing("hypercalls", ("kvm:kvm_hypercall",),
                           "the capture has no kvm_hypercall event (not recorded, or the guests made none)"))
    if exits and not requests_seen:
        out.append(Missing("vcpu->requests bits", (), "no kvm_exit carries a requests field: the field "
                           "exists from Linux 6.14 on", recordable=False))
    return out


def needs_recording(missing: Sequence[Missing]) -> bool:
    return any(m.recordable for m in missing)
