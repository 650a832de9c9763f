"""Which virtualization ISA this host's CPUs have (for the reason picker's list)."""

from __future__ import annotations

from . import decode


def host_isa(cpuinfo: str = "/proc/cpuinfo") -> int | None:
    """ISA_VMX for Intel VT-x (``vmx`` flag), ISA_SVM for AMD-V (``svm``), None if neither
    shows (a nested or paravirtual host such as PVM, or no /proc)."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.partition(":")[2].split())
                    if "vmx" in flags:
                        return decode.ISA_VMX
                    if "svm" in flags:
                        return decode.ISA_SVM
                    return None
    except OSError:
        return None
    return None
