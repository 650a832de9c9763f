"""Names of ``vcpu->requests`` bits (the kvm_exit ``requests`` field), by kernel release.

Generic bits 0-7 come from include/linux/kvm_host.h, x86 arch bits are
``KVM_ARCH_REQ(n) = 8 + n``. Several bits changed meaning between releases, so a
name needs the traced kernel's version; without one the latest numbering is used.
"""

from __future__ import annotations

import functools
import re

Version = tuple[int, int]
LATEST: Version = (999, 0)
_ALWAYS: Version = (0, 0)

# bit -> [(first release, name or None = unused)], oldest first.
_HISTORY: dict[int, list[tuple[Version, str | None]]] = {
    0: [(_ALWAYS, "TLB_FLUSH")],
    1: [(_ALWAYS, "MMU_RELOAD"), ((5, 18), "VM_DEAD")],
    2: [(_ALWAYS, "PENDING_TIMER"), ((5, 13), "UNBLOCK")],
    3: [(_ALWAYS, "UNHALT"), ((6, 1), None), ((6, 2), "DIRTY_RING_SOFT_FULL")],
    4: [(_ALWAYS, None), ((5, 15), "VM_BUGGED"), ((5, 18), None)],
    5: [(_ALWAYS, None), ((5, 17), "GPC_INVALIDATE"), ((6, 1), None)],
    35: [(_ALWAYS, "HV_TLB_FLUSH"), ((5, 11), "TLB_FLUSH_GUEST")],
    37: [(_ALWAYS, "MSR_FILTER_CHANGED"), ((6, 18), "RECALC_INTERCEPTS")],
    38: [(_ALWAYS, None), ((5, 12), "UPDATE_CPU_DIRTY_LOGGING")],
    39: [(_ALWAYS, None), ((5, 18), "MMU_FREE_OBSOLETE_ROOTS")],
    40: [(_ALWAYS, None), ((6, 2), "HV_TLB_FLUSH")],
    42: [(_ALWAYS, None), ((6, 11), "UPDATE_PROTECTED_GUEST_STATE")],
}

# x86 arch requests that kept their number from 5.10 to 6.18 (bit 8 + index).
_STABLE_ARCH = (
    "MIGRATE_TIMER", "REPORT_TPR_ACCESS", "TRIPLE_FAULT", "MMU_SYNC", "CLOCK_UPDATE",
    "LOAD_MMU_PGD", "EVENT", "APF_HALT", "STEAL_UPDATE", "NMI", "PMU", "PMI", "SMI",
    "MASTERCLOCK_UPDATE", "MCLOCK_INPROGRESS", "SCAN_IOAPIC", "GLOBAL_CLOCK_UPDATE",
    "APIC_PAGE_RELOAD", "HV_CRASH", "IOAPIC_EOI_EXIT", "HV_RESET", "HV_EXIT", "HV_STIMER",
    "LOAD_EOI_EXITMAP", "GET_NESTED_STATE_PAGES", "APICV_UPDATE", "TLB_FLUSH_CURRENT",
)
for _n, _name in enumerate(_STABLE_ARCH):
    _HISTORY[8 + _n] = [(_ALWAYS, _name)]
_HISTORY[36] = [(_ALWAYS, "APF_READY")]


def parse_release(kernel: str | None) -> Version:
    """``(major, minor)`` of a release such as ``6.18.44-fc-v669``; LATEST if None/unparsable."""
    m = re.match(r"\s*(\d+)\.(\d+)", kernel or "")
    return (int(m.group(1)), int(m.group(2))) if m else LATEST


def request_bit(name: str, kernel: str | None = None) -> int:
    """The bit of request ``name`` (without ``KVM_REQ_``) in that release; KeyError if none."""
    for bit in sorted(_HISTORY):
        if request_bit_name(bit, kernel) == name:
            return bit
    raise KeyError(f"no request {name} in {kernel or 'the latest kernel'}")


@functools.lru_cache(maxsize=8192)
def request_bit_name(bit: int, kernel: str | None = None) -> str:
    """Name without ``KVM_REQ_`` (``TLB_FLUSH``); ``bit<N>`` when unused in that release."""
    version = parse_release(kernel)
    name = None
    for since, candidate in _HISTORY.get(bit, ()):
        if version >= since:
            name = candidate
    return name or f"bit{bit}"
