"""``KVM_EXIT_*`` codes of the kvm_userspace_exit tracepoint, and pseudo codes for failed KVM_RUNs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

# include/uapi/linux/kvm.h; numbering is append-only.
KVM_EXITS: Mapping[int, str] = MappingProxyType({code: "KVM_EXIT_" + name for code, name in enumerate((
    "UNKNOWN", "EXCEPTION", "IO", "HYPERCALL", "DEBUG", "HLT", "MMIO", "IRQ_WINDOW_OPEN",
    "SHUTDOWN", "FAIL_ENTRY", "INTR", "SET_TPR", "TPR_ACCESS", "S390_SIEIC", "S390_RESET",
    "DCR", "NMI", "INTERNAL_ERROR", "OSI", "PAPR_HCALL", "S390_UCONTROL", "WATCHDOG",
    "S390_TSCH", "EPR", "SYSTEM_EVENT", "S390_STSI", "IOAPIC_EOI", "HYPERV", "ARM_NISV",
    "X86_RDMSR", "X86_WRMSR", "DIRTY_RING_FULL", "AP_RESET_HOLD", "X86_BUS_LOCK", "XEN",
    "RISCV_SBI", "RISCV_CSR", "NOTIFY", "LOONGARCH_IOCSR", "MEMORY_FAULT", "TDX", "ARM_SEA",
))})

ERROR_FLAG = 0x80000000  # pseudo codes: KVM_RUN returned -errno instead of an exit reason
EINTR = 4
_BY_NAME = {name: code for code, name in KVM_EXITS.items()}
_ERROR = re.compile(r"error\s*\(\s*-?(\d+)\s*\)", re.IGNORECASE)
_NUMBERED = re.compile(r"KVM_EXIT_(\d+)", re.IGNORECASE)


def userspace_error_code(errno: int) -> int:
    """Pseudo code for a KVM_RUN that failed with the tracepoint's (negative) ``errno``."""
    return ERROR_FLAG | abs(errno)


def userspace_exit_name(code: int) -> str:
    """``KVM_EXIT_IO`` …; ``restart`` (EINTR) or ``error(-N)`` for pseudo codes."""
    if code & ERROR_FLAG:
        errno = code & ~ERROR_FLAG
        return "restart" if errno == EINTR else f"error(-{errno})"
    return KVM_EXITS.get(code, f"KVM_EXIT_{code}")


def parse_userspace_exit(name: str) -> int | None:
    """Code for ``KVM_EXIT_IO``, ``IO``, ``restart``, ``error(-14)``, ``KVM_EXIT_42`` or a number."""
    text = name.strip()
    upper = text.upper()
    if upper in _BY_NAME:
        return _BY_NAME[upper]
    if "KVM_EXIT_" + upper in _BY_NAME:
        return _BY_NAME["KVM_EXIT_" + upper]
    if text.lower() == "restart":
        return userspace_error_code(-EINTR)
    if m := _ERROR.fullmatch(text):
        return userspace_error_code(-int(m.group(1)))
    if m := _NUMBERED.fullmatch(text):
        return int(m.group(1))
    if re.fullmatch(r"0[xX][0-9a-fA-F]+|\d+", text):
        return int(text, 0)
    return None
