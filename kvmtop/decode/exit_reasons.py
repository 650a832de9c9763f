"""VM-exit reason codes of the kvm_exit tracepoint: names for display, parsing for importers.

Display follows the kernel's ``kvm_print_exit_reason``: VMX names the basic reason
(``code & 0xffff``) and lists the flag bits after a space; SVM names the full code;
anything unnamed prints as hex, as ftrace does. Parsing also accepts the spellings of
older kernels and tools (``PENDING_INTERRUPT``, trace-cmd's ``EXIT_MSR``, 2.6-era
lowercase VMX names such as ``apic_access``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from types import MappingProxyType

ISA_VMX = 1
ISA_SVM = 2


def isa_name(isa: int) -> str:
    return {ISA_VMX: "VMX", ISA_SVM: "SVM"}.get(isa, f"isa{isa}")


# --------------------------------------------------------------------------- VMX

# arch/x86/include/uapi/asm/vmx.h VMX_EXIT_REASONS (6.18): what ftrace names.
VMX_REASONS: Mapping[int, str] = MappingProxyType({
    0: "EXCEPTION_NMI", 1: "EXTERNAL_INTERRUPT", 2: "TRIPLE_FAULT", 3: "INIT_SIGNAL",
    4: "SIPI_SIGNAL", 7: "INTERRUPT_WINDOW", 8: "NMI_WINDOW", 9: "TASK_SWITCH",
    10: "CPUID", 12: "HLT", 13: "INVD", 14: "INVLPG", 15: "RDPMC", 16: "RDTSC",
    18: "VMCALL", 19: "VMCLEAR", 20: "VMLAUNCH", 21: "VMPTRLD", 22: "VMPTRST",
    23: "VMREAD", 24: "VMRESUME", 25: "VMWRITE", 26: "VMOFF", 27: "VMON",
    28: "CR_ACCESS", 29: "DR_ACCESS", 30: "IO_INSTRUCTION", 31: "MSR_READ",
    32: "MSR_WRITE", 33: "INVALID_STATE", 34: "MSR_LOAD_FAIL", 36: "MWAIT_INSTRUCTION",
    37: "MONITOR_TRAP_FLAG", 39: "MONITOR_INSTRUCTION", 40: "PAUSE_INSTRUCTION",
    41: "MCE_DURING_VMENTRY", 43: "TPR_BELOW_THRESHOLD", 44: "APIC_ACCESS",
    45: "EOI_INDUCED", 46: "GDTR_IDTR", 47: "LDTR_TR", 48: "EPT_VIOLATION",
    49: "EPT_MISCONFIG", 50: "INVEPT", 51: "RDTSCP", 52: "PREEMPTION_TIMER",
    53: "INVVPID", 54: "WBINVD", 55: "XSETBV", 56: "APIC_WRITE", 57: "RDRAND",
    58: "INVPCID", 59: "VMFUNC", 60: "ENCLS", 61: "RDSEED", 62: "PML_FULL",
    63: "XSAVES", 64: "XRSTORS", 67: "UMWAIT", 68: "TPAUSE", 74: "BUS_LOCK",
    75: "NOTIFY", 77: "TDCALL", 84: "MSR_READ_IMM", 85: "MSR_WRITE_IMM",
})

VMX_BASIC_MASK = 0xFFFF

# union vmx_exit_reason flag bits (ftrace itself names only FAILED_VMENTRY).
VMX_FLAGS: Mapping[int, str] = MappingProxyType({
    1 << 31: "FAILED_VMENTRY",
    1 << 26: "BUS_LOCK_DETECTED",
    1 << 27: "ENCLAVE_MODE",
    1 << 28: "SMI_PENDING_MTF",
    1 << 29: "SMI_FROM_VMX_ROOT",
})

# Names ftrace never prints today but that occur in older traces or the uapi header.
_VMX_OLD = {
    "PENDING_INTERRUPT": 7,  # renamed INTERRUPT_WINDOW
    "OTHER_SMI": 6, "SEAMCALL": 76,  # #define only, not in VMX_EXIT_REASONS
    # 2.6-era arch/x86/kvm/vmx.c vmx_exit_reasons_str (lowercase)
    "exception": 0, "ext_irq": 1, "triple_fault": 2, "nmi_window": 8,
    "io_instruction": 30, "cr_access": 28, "dr_access": 29, "cpuid": 10,
    "rdmsr": 31, "wrmsr": 32, "interrupt_window": 7, "halt": 12, "invlpg": 14,
    "hypercall": 18, "tpr_below_thres": 43, "apic_access": 44, "wbinvd": 54,
    "task_switch": 9, "ept_violation": 48,
}

# --------------------------------------------------------------------------- SVM

_SVM_EXCP = {  # vector -> mnemonic, as in SVM_EXIT_REASONS ("XF excp" is XM_VECTOR)
    0: "DE", 1: "DB", 3: "BP", 4: "OF", 5: "BR", 6: "UD", 7: "NM", 8: "DF",
    10: "TS", 11: "NP", 12: "SS", 13: "GP", 14: "PF", 16: "MF", 17: "AC",
    18: "MC", 19: "XF",
}


def _svm_macros() -> list[tuple[str | None, int, str | None]]:
    """(SVM_EXIT_* macro suffix, code, tracepoint name) from uapi/asm/svm.h."""
    rows: list[tuple[str | None, int, str | None]] = []
    for cr in (0, 2, 3, 4, 8):
        rows += [(f"READ_CR{cr}", cr, f"read_cr{cr}"),
                 (f"WRITE_CR{cr}", 0x10 + cr, f"write_cr{cr}")]
    for dr in range(8):
        rows += [(f"READ_DR{dr}", 0x20 + dr, f"read_dr{dr}"),
                 (f"WRITE_DR{dr}", 0x30 + dr, f"write_dr{dr}")]
    rows += [(f"EXCP_{m}", 0x40 + v, f"{m} excp") for v, m in _SVM_EXCP.items()]
    rows += [("EXCP_BASE", 0x40, None)]
    rows += [
        ("INTR", 0x60, "interrupt"), ("NMI", 0x61, "nmi"), ("SMI", 0x62, "smi"),
        ("INIT", 0x63, "init"), ("VINTR", 0x64, "vintr"),
        ("CR0_SEL_WRITE", 0x65, "cr0_sel_write"),
        ("IDTR_READ", 0x66, "read_idtr"), ("GDTR_READ", 0x67, "read_gdtr"),
        ("LDTR_READ", 0x68, "read_ldtr"), ("TR_READ", 0x69, "read_rt"),
        ("IDTR_WRITE", 0x6A, "write_idtr"), ("GDTR_WRITE", 0x6B, "write_gdtr"),
        ("LDTR_WRITE", 0x6C, "write_ldtr"), ("TR_WRITE", 0x6D, "write_rt"),
        ("RDTSC", 0x6E, "rdtsc"), ("RDPMC", 0x6F, "rdpmc"), ("PUSHF", 0x70, "pushf"),
        ("POPF", 0x71, "popf"), ("CPUID", 0x72, "cpuid"), ("RSM", 0x73, "rsm"),
        ("IRET", 0x74, "iret"), ("SWINT", 0x75, "swint"), ("INVD", 0x76, "invd"),
        ("PAUSE", 0x77, "pause"), ("HLT", 0x78, "hlt"), ("INVLPG", 0x79, "invlpg"),
        ("INVLPGA", 0x7A, "invlpga"), ("IOIO", 0x7B, "io"), ("MSR", 0x7C, "msr"),
        ("TASK_SWITCH", 0x7D, "task_switch"), ("FERR_FREEZE", 0x7E, "ferr_freeze"),
        ("SHUTDOWN", 0x7F, "shutdown"), ("VMRUN", 0x80, "vmrun"),
        ("VMMCALL", 0x81, "hypercall"), ("VMLOAD", 0x82, "vmload"),
        ("VMSAVE", 0x83, "vmsave"), ("STGI", 0x84, "stgi"), ("CLGI", 0x85, "clgi"),
        ("SKINIT", 0x86, "skinit"), ("RDTSCP", 0x87, "rdtscp"), ("ICEBP", 0x88, "icebp"),
        ("WBINVD", 0x89, "wbinvd"), ("MONITOR", 0x8A, "monitor"), ("MWAIT", 0x8B, "mwait"),
        ("MWAIT_COND", 0x8C, None), ("XSETBV", 0x8D, "xsetbv"), ("RDPRU", 0x8E, None),
        ("EFER_WRITE_TRAP", 0x8F, "write_efer_trap"),
    ]
    named_traps = {0, 4, 8}
    rows += [(f"CR{n}_WRITE_TRAP", 0x90 + n, f"write_cr{n}_trap" if n in named_traps else None)
             for n in range(16)]
    rows += [
        ("INVPCID", 0xA2, "invpcid"), ("BUS_LOCK", 0xA5, "buslock"),
        ("IDLE_HLT", 0xA6, "idle-halt"), ("NPF", 0x400, "npf"),
        ("AVIC_INCOMPLETE_IPI", 0x401, "avic_incomplete_ipi"),
        ("AVIC_UNACCELERATED_ACCESS", 0x402, "avic_unaccelerated_access"),
        ("VMGEXIT", 0x403, "vmgexit"),
        # SEV-ES software VMGEXIT codes (SVM_VMGEXIT_*): no old EXIT_* spelling
        (None, 0x80000001, "vmgexit_mmio_read"), (None, 0x80000002, "vmgexit_mmio_write"),
        (None, 0x80000003, "vmgexit_nmi_complete"), (None, 0x80000004, "vmgexit_ap_hlt_loop"),
        (None, 0x80000005, "vmgexit_ap_jump_table"),
        (None, 0x80000010, "vmgexit_page_state_change"),
        (None, 0x80000011, "vmgexit_guest_request"),
        (None, 0x80000012, "vmgexit_ext_guest_request"),
        (None, 0x80000013, "vmgexit_ap_creation"),
        (None, 0x8000FFFD, "vmgexit_hypervisor_feature"),
        ("ERR", 0xFFFFFFFF, "invalid_guest_state"),  # SVM_EXIT_ERR (-1)
    ]
    return rows


_SVM_ROWS = _svm_macros()
SVM_REASONS: Mapping[int, str] = MappingProxyType(
    {code: name for _, code, name in _SVM_ROWS if name})

# --------------------------------------------------------------------------- display


def _hex(value: int) -> str:
    return f"{value:#x}"


@functools.lru_cache(maxsize=8192)
def exit_reason_name(isa: int, code: int) -> str:
    """The reason as ftrace prints it, e.g. ``HLT``, ``npf``, ``0x5 FAILED_VMENTRY``."""
    code &= 0xFFFFFFFF
    if isa == ISA_SVM:
        return SVM_REASONS.get(code) or _hex(code)
    if isa != ISA_VMX:
        return _hex(code)
    basic = code & VMX_BASIC_MASK
    parts = [VMX_REASONS.get(basic) or _hex(basic)]
    rest = code & ~VMX_BASIC_MASK
    for bit, name in VMX_FLAGS.items():
        if rest & bit:
            parts.append(name)
            rest &= ~bit
    if rest:
        parts.append(_hex(rest))
    return " ".join(parts)


# --------------------------------------------------------------------------- parsing

_Candidate = tuple[int, int, bool]  # (isa, code, current spelling)


def _index() -> tuple[dict[str, list[_Candidate]], dict[str, list[_Candidate]]]:
    exact: dict[str, list[_Candidate]] = {}
    entries: list[tuple[str, _Candidate]] = []
    entries += [(n, (ISA_VMX, c, True)) for c, n in VMX_REASONS.items()]
    entries += [(n, (ISA_SVM, c, True)) for c, n in SVM_REASONS.items()]
    entries += [(n, (ISA_VMX, c, False)) for n, c in _VMX_OLD.items()]
    entries += [("EXIT_REASON_" + n, (ISA_VMX, c, False)) for c, n in VMX_REASONS.items()]
    entries += [("EXIT_" + m, (ISA_SVM, c, False)) for m, c, _ in _SVM_ROWS if m]
    folded: dict[str, list[_Candidate]] = {}
    for name, cand in entries:
        exact.setdefault(name, []).append(cand)
        folded.setdefault(name.upper(), []).append(cand)
    return exact, folded


_EXACT, _FOLDED = _index()
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|\d+)")
_FLAG_BY_NAME = {n: bit for bit, n in VMX_FLAGS.items()}


def _choose(cands: list[_Candidate], text: str, hint: int | None) -> tuple[int, int] | None:
    if not cands:
        return None
    if len({c[0] for c in cands}) > 1:
        if hint in {c[0] for c in cands}:
            cands = [c for c in cands if c[0] == hint]
        else:
            cands = [c for c in cands if c[2]] or cands
    if len({c[0] for c in cands}) > 1:
        want = ISA_VMX if text == text.upper() else ISA_SVM
        cands = [c for c in cands if c[0] == want] or cands
    cands = sorted(cands, key=lambda c: not c[2])  # current spelling first
    return cands[0][0], cands[0][1]


def _lookup(text: str, hint: int | None) -> tuple[int, int] | None:
    if _NUMBER.fullmatch(text):
        return (hint or ISA_VMX, int(text, 0) & 0xFFFFFFFF)
    return (_choose(_EXACT.get(text, []), text, hint)
            or _choose(_FOLDED.get(text.upper(), []), text, hint))


def _vmx_flags(tokens: list[str]) -> int | None:
    bits = 0
    for tok in tokens:
        if tok.upper() in _FLAG_BY_NAME:
            bits |= _FLAG_BY_NAME[tok.upper()]
        elif _NUMBER.fullmatch(tok) and not int(tok, 0) & VMX_BASIC_MASK:
            bits |= int(tok, 0)
        else:
            return None
    return bits


def parse_exit_reason(name: str, isa_hint: int | None = None) -> tuple[int, int] | None:
    """``(isa, code)`` for a reason name as any kernel or tool spelled it; None if unknown.

    Exact-case matches win ("HLT" is VMX, "hlt" is SVM); when spellings of both ISAs
    match, ``isa_hint`` decides, then upper case means VMX. A bare number takes the
    hinted ISA (VMX by default). VMX flag names after the reason are OR-ed in.
    """
    text = " ".join(name.split())
    if not text:
        return None
    hit = _lookup(text, isa_hint)
    if hit:
        return hit
    head, *rest = text.split(" ")
    flags = _vmx_flags(rest) if rest else None
    if flags is None:
        return None
    base = _lookup(head, ISA_VMX)  # only VMX has flag bits
    if base is None or base[0] != ISA_VMX or base[1] > VMX_BASIC_MASK:
        return None
    return ISA_VMX, base[1] | flags
