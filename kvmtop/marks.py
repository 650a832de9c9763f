"""Marks on figures that are not the whole story, worded once for the dashboard, the text
tables and the notes: a row whose events a full BPF map cut (its figures are lower
bounds), and a vCPU whose VMM has had an exit for a long time (a stuck VMM does not show
up in any count: its round trip is counted when it ends)."""

from __future__ import annotations

from typing import TypeGuard

from . import decode, units
from .model import InFlight, VmStat

AT_LEAST = "≥"
STUCK_NS = 1_000_000_000  # a round trip in flight this long is shown (normal ones take µs to ms)


def at_least(text: str, lost: int) -> str:
    """``text`` marked as a lower bound when a full map cut ``lost`` events from it."""
    return f"{AT_LEAST}{text}" if lost else text


def lost_note(lost: int) -> str:
    return f"{lost:,} lost: BPF map full"


def stuck(flight: InFlight | None) -> TypeGuard[InFlight]:
    return flight is not None and flight.ns >= STUCK_NS


def in_userspace(label: str, flight: InFlight) -> str:
    """``vCPU 0 in userspace for 3.20s (KVM_EXIT_MMIO)``."""
    return f"{label} in userspace for {units.duration(flight.ns)} ({decode.userspace_exit_name(flight.code)})"


def stuck_vcpu(vm: VmStat) -> str | None:
    """What the VM's vCPU whose VMM has had an exit longest waits for, if that is STUCK_NS or more."""
    v = vm.longest_in_userspace
    flight = v.in_userspace if v is not None else None
    return in_userspace(v.label, flight) if v is not None and stuck(flight) else None
