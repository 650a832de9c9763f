"""KVM hypercall numbers (``nr`` of the kvm_hypercall tracepoint, passed in RAX)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

# include/uapi/linux/kvm_para.h; 13+ seen in public trees are out-of-tree.
HYPERCALLS: Mapping[int, str] = MappingProxyType({
    1: "KVM_HC_VAPIC_POLL_IRQ", 2: "KVM_HC_MMU_OP", 3: "KVM_HC_FEATURES",
    4: "KVM_HC_PPC_MAP_MAGIC_PAGE", 5: "KVM_HC_KICK_CPU", 6: "KVM_HC_MIPS_GET_CLOCK_FREQ",
    7: "KVM_HC_MIPS_EXIT_VM", 8: "KVM_HC_MIPS_CONSOLE_OUTPUT", 9: "KVM_HC_CLOCK_PAIRING",
    10: "KVM_HC_SEND_IPI", 11: "KVM_HC_SCHED_YIELD", 12: "KVM_HC_MAP_GPA_RANGE",
})


def hypercall_name(nr: int) -> str:
    """``KVM_HC_KICK_CPU`` …; unknown numbers as decimal."""
    return HYPERCALLS.get(nr, str(nr))
