"""Decode tables. Expected values are copied by hand from shared/reference/kernel.md."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvmtop.decode import (
    HYPERCALLS,
    ISA_SVM,
    ISA_VMX,
    KVM_EXITS,
    SVM_REASONS,
    VMX_REASONS,
    exit_reason_name,
    hypercall_name,
    isa_name,
    parse_exit_reason,
    parse_userspace_exit,
    request_bit,
    request_bit_name,
    userspace_error_code,
    userspace_exit_name,
)

TRACES = sorted((Path(__file__).parent / "data" / "traces").glob("*.txt"))
VMX, SVM = ISA_VMX, ISA_SVM


# --------------------------------------------------------------------------- exit reasons: display


def test_isa_names():
    assert (ISA_VMX, ISA_SVM) == (1, 2)
    assert [isa_name(1), isa_name(2), isa_name(7)] == ["VMX", "SVM", "isa7"]


@pytest.mark.parametrize("code, name", [
    (12, "HLT"),
    (7, "INTERRUPT_WINDOW"),
    (48 | 0x80000000, "EPT_VIOLATION FAILED_VMENTRY"),
    (30 | 1 << 26, "IO_INSTRUCTION BUS_LOCK_DETECTED"),
    (60 | 1 << 27, "ENCLS ENCLAVE_MODE"),
    (12 | 1 << 28, "HLT SMI_PENDING_MTF"),
    (12 | 1 << 29, "HLT SMI_FROM_VMX_ROOT"),
    (12 | 0x10000, "HLT 0x10000"),  # unnamed flag bit: masked off the reason, shown as hex
    (5, "0x5"),  # no basic reason 5
    (6, "0x6"),  # OTHER_SMI: #define only, ftrace prints hex
    (76, "0x4c"),  # SEAMCALL: likewise
    (5 | 0x80000000, "0x5 FAILED_VMENTRY"),
    (77, "TDCALL"), (84, "MSR_READ_IMM"), (85, "MSR_WRITE_IMM"), (75, "NOTIFY"),
])
def test_vmx_names(code, name):
    assert exit_reason_name(VMX, code) == name


def test_vmx_several_flags_all_named():
    words = exit_reason_name(VMX, 1 | 0x80000000 | 1 << 26 | 1 << 20).split()
    assert words[0] == "EXTERNAL_INTERRUPT"
    assert set(words[1:]) == {"FAILED_VMENTRY", "BUS_LOCK_DETECTED", "0x100000"}


@pytest.mark.parametrize("code, name", [
    (0x07C, "msr"), (0x07B, "io"), (0x078, "hlt"), (0x400, "npf"), (0x081, "hypercall"),
    (0x040, "DE excp"), (0x04D, "GP excp"), (0x053, "XF excp"), (0x069, "read_rt"),
    (0x0A6, "idle-halt"), (0x0A5, "buslock"), (0x098, "write_cr8_trap"),
    (0x80000010, "vmgexit_page_state_change"), (0x8000FFFD, "vmgexit_hypervisor_feature"),
    (0xFFFFFFFF, "invalid_guest_state"), (-1, "invalid_guest_state"),
    (0x042, "0x42"),  # vector 2 (NMI) has no excp entry
    (0x08C, "0x8c"),  # MWAIT_COND: no string
    (0x10078, "0x10078"),  # SVM has no flag bits: the full code is the reason
])
def test_svm_names(code, name):
    assert exit_reason_name(SVM, code) == name


def test_unknown_isa_is_hex():
    assert exit_reason_name(3, 12) == "0xc"
    assert exit_reason_name(0, 0x80000030) == "0x80000030"


def test_tables_match_running_kernel():
    """The kvm_exit print fmt of this kernel (6.18) spells out both tables."""
    path = "/sys/kernel/tracing/events/kvm/kvm_exit/format"
    if not os.access(path, os.R_OK):
        pytest.skip("kvm_exit format not readable")
    fmt = Path(path).read_text(encoding="utf-8")
    vmx_part, svm_part = fmt.split("__print_symbolic(REC->exit_reason,")
    vmx_part = vmx_part.split("__print_symbolic(REC->exit_reason & 0xffff,")[1]
    svm_part = svm_part.split("__print_flags")[0]
    pair = re.compile(r'\{ ([-0-9xa-fA-F +]+), "([^"]+)" \}')

    def num(expr):
        return sum(int(t, 0) for t in expr.split("+")) & 0xFFFFFFFF

    assert {num(c): n for c, n in pair.findall(vmx_part)} == dict(VMX_REASONS)
    assert {num(c): n for c, n in pair.findall(svm_part)} == dict(SVM_REASONS)


# --------------------------------------------------------------------------- exit reasons: parsing


@pytest.mark.parametrize("old, new, code", [
    ("EXIT_MSR", "msr", 0x07C), ("EXIT_EXCP_GP", "GP excp", 0x04D), ("EXIT_NPF", "npf", 0x400),
    ("EXIT_IOIO", "io", 0x07B), ("EXIT_INTR", "interrupt", 0x060), ("EXIT_VINTR", "vintr", 0x064),
    ("EXIT_HLT", "hlt", 0x078), ("EXIT_CPUID", "cpuid", 0x072), ("EXIT_READ_CR0", "read_cr0", 0x000),
    ("EXIT_WRITE_CR8", "write_cr8", 0x018), ("EXIT_TR_READ", "read_rt", 0x069),
    ("EXIT_VMMCALL", "hypercall", 0x081), ("EXIT_EXCP_XF", "XF excp", 0x053),
    ("EXIT_EXCP_BASE", "DE excp", 0x040), ("EXIT_ERR", "invalid_guest_state", 0xFFFFFFFF),
    ("EXIT_AVIC_UNACCELERATED_ACCESS", "avic_unaccelerated_access", 0x402),
])
def test_old_and_new_svm_spellings_map_to_one_code(old, new, code):
    assert parse_exit_reason(old) == parse_exit_reason(new) == (SVM, code)


@pytest.mark.parametrize("name, hint, expected", [
    ("PENDING_INTERRUPT", None, (VMX, 7)),
    ("INTERRUPT_WINDOW", None, (VMX, 7)),
    ("NMI_WINDOW", None, (VMX, 8)),
    ("OTHER_SMI", None, (VMX, 6)),
    ("EXIT_REASON_HLT", None, (VMX, 12)),
    ("ept_violation", None, (VMX, 48)),  # case-insensitive VMX
    ("Msr_Write", None, (VMX, 32)),
    ("apic_access", None, (VMX, 44)),  # 2.6-era lowercase VMX table
    ("ext_irq", None, (VMX, 1)),
    ("HLT", None, (VMX, 12)),  # exact case wins ...
    ("hlt", None, (SVM, 0x078)),
    ("HLT", SVM, (VMX, 12)),  # ... even over the hint
    ("Hlt", VMX, (VMX, 12)),  # no exact match: the hint decides
    ("Hlt", SVM, (SVM, 0x078)),
    ("cpuid", None, (SVM, 0x072)),  # current SVM spelling over the 2.6 VMX one
    ("cpuid", VMX, (VMX, 10)),
    ("gp EXCP", None, (SVM, 0x04D)),
    ("exit_msr", None, (SVM, 0x07C)),
    ("0x1e", None, (VMX, 30)),
    ("30", SVM, (SVM, 30)),
    ("EPT_VIOLATION FAILED_VMENTRY", None, (VMX, 48 | 0x80000000)),
    ("0x5 FAILED_VMENTRY", SVM, (VMX, 5 | 0x80000000)),  # flags only exist on VMX
])
def test_parse_exit_reason(name, hint, expected):
    assert parse_exit_reason(name, hint) == expected


@pytest.mark.parametrize("name", ["", "  ", "NOT_A_REASON", "EXIT_", "excp", "HLT BOGUS", "hlt FAILED_VMENTRY"])
def test_parse_unknown_is_none(name):
    assert parse_exit_reason(name) is None


def test_round_trip_every_table_entry():
    for code, name in VMX_REASONS.items():
        assert parse_exit_reason(name) == (VMX, code), name
        assert exit_reason_name(VMX, code) == name
    for code, name in SVM_REASONS.items():
        assert parse_exit_reason(name) == (SVM, code), name
        assert exit_reason_name(SVM, code) == name


@given(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_round_trip_any_vmx_code(basic, high):
    code = high << 16 | basic
    assert parse_exit_reason(exit_reason_name(VMX, code), VMX) == (VMX, code)


@given(st.integers(0, 0xFFFFFFFF))
def test_round_trip_any_svm_code(code):
    assert parse_exit_reason(exit_reason_name(SVM, code), SVM) == (SVM, code)


# --------------------------------------------------------------------------- real traces

_EXIT_REASON = re.compile(r"\breason (.+?) rip\b")


def _trace_reasons(path):
    with open(path, encoding="utf-8") as f:
        return [m.group(1) for line in f if not line.lstrip().startswith("#")
                for m in _EXIT_REASON.finditer(line)]


def test_trace_files_present():
    assert len(TRACES) >= 4


@pytest.mark.parametrize("path", TRACES, ids=os.path.basename)
def test_every_kvm_exit_reason_in_traces_parses(path):
    names = _trace_reasons(path)
    assert names, "no kvm_exit lines found"
    for name in names:
        assert parse_exit_reason(name) is not None, name
    if "svm" in os.path.basename(path):  # AMD host: every era's spelling decodes as SVM
        assert {parse_exit_reason(n)[0] for n in names} == {SVM}


def test_trace_reasons_decode_to_reference_codes():
    seen = {n for p in TRACES for n in _trace_reasons(p)}
    expected = {  # kernel.md §3a/§3b
        "EXIT_MSR": (SVM, 0x07C), "EXIT_EXCP_GP": (SVM, 0x04D), "npf": (SVM, 0x400),
        "vintr": (SVM, 0x064), "hlt": (SVM, 0x078), "msr": (SVM, 0x07C),
        "PENDING_INTERRUPT": (VMX, 7), "apic_access": (VMX, 44), "io_instruction": (VMX, 30),
        "EXTERNAL_INTERRUPT": (VMX, 1), "CR_ACCESS": (VMX, 28), "LDTR_TR": (VMX, 47),
        "TRIPLE_FAULT": (VMX, 2), "EPT_MISCONFIG": (VMX, 49),
    }
    assert set(expected) <= seen
    assert {n: parse_exit_reason(n) for n in expected} == expected


def test_userspace_exits_in_traces_parse():
    pairs = []
    for path in TRACES:
        text = Path(path).read_text(encoding="utf-8")
        pairs += re.findall(r"kvm_userspace_exit:\s+reason\s+(\S+) \((\d+)\)", text)
    assert ("KVM_EXIT_SHUTDOWN", "8") in pairs and ("KVM_EXIT_INTERNAL_ERROR", "17") in pairs
    for name, number in pairs:
        assert parse_userspace_exit(name) == int(number)


# --------------------------------------------------------------------------- KVM_EXIT_*


@pytest.mark.parametrize("code, name", [
    (0, "KVM_EXIT_UNKNOWN"), (2, "KVM_EXIT_IO"), (5, "KVM_EXIT_HLT"), (6, "KVM_EXIT_MMIO"),
    (8, "KVM_EXIT_SHUTDOWN"), (17, "KVM_EXIT_INTERNAL_ERROR"), (29, "KVM_EXIT_X86_RDMSR"),
    (33, "KVM_EXIT_X86_BUS_LOCK"), (39, "KVM_EXIT_MEMORY_FAULT"), (40, "KVM_EXIT_TDX"),
    (41, "KVM_EXIT_ARM_SEA"), (42, "KVM_EXIT_42"), (50, "KVM_EXIT_50"),
])
def test_userspace_exit_names(code, name):
    assert userspace_exit_name(code) == name


def test_kvm_exits_table_is_0_to_41():
    assert sorted(KVM_EXITS) == list(range(42))


def test_userspace_error_pseudo_codes():
    assert userspace_error_code(-4) == 0x80000004
    assert userspace_exit_name(0x80000004) == "restart"
    assert userspace_error_code(-14) == 0x8000000E
    assert userspace_exit_name(0x8000000E) == "error(-14)"


@pytest.mark.parametrize("name, code", [
    ("KVM_EXIT_IO", 2), ("IO", 2), ("mmio", 6), ("KVM_EXIT_HLT", 5), ("restart", 0x80000004),
    ("error(-14)", 0x8000000E), ("error (14)", 0x8000000E), ("KVM_EXIT_42", 42), ("7", 7),
])
def test_parse_userspace_exit(name, code):
    assert parse_userspace_exit(name) == code


@pytest.mark.parametrize("name", ["", "KVM_EXIT_NOPE", "error", "IO_INSTRUCTION"])
def test_parse_userspace_exit_unknown(name):
    assert parse_userspace_exit(name) is None


def test_userspace_round_trip():
    for code in [*KVM_EXITS, 45, 0x80000004, 0x8000000E, 0x80000001]:
        assert parse_userspace_exit(userspace_exit_name(code)) == code


# --------------------------------------------------------------------------- hypercalls


def test_hypercall_names():
    assert hypercall_name(5) == "KVM_HC_KICK_CPU"
    assert hypercall_name(1) == "KVM_HC_VAPIC_POLL_IRQ"
    assert hypercall_name(9) == "KVM_HC_CLOCK_PAIRING"
    assert hypercall_name(10) == "KVM_HC_SEND_IPI"
    assert hypercall_name(11) == "KVM_HC_SCHED_YIELD"
    assert hypercall_name(12) == "KVM_HC_MAP_GPA_RANGE"
    assert hypercall_name(13) == "13" and hypercall_name(0) == "0"
    assert sorted(HYPERCALLS) == list(range(1, 13))


# --------------------------------------------------------------------------- request bits


@pytest.mark.parametrize("bit, kernel, name", [
    (1, "5.10.0", "MMU_RELOAD"), (1, "5.15.85", "MMU_RELOAD"), (1, "5.18.0", "VM_DEAD"),
    (1, "6.18.44-fc-v669", "VM_DEAD"),
    (2, "5.10.13", "PENDING_TIMER"), (2, "5.15.0", "UNBLOCK"),
    (3, "5.10.0", "UNHALT"), (3, "5.15.0", "UNHALT"), (3, "6.1.149", "bit3"),
    (3, "6.2.0", "DIRTY_RING_SOFT_FULL"), (3, "6.18.44-fc-v669", "DIRTY_RING_SOFT_FULL"),
    (4, "5.15.0", "VM_BUGGED"), (4, "6.6.103", "bit4"),
    (35, "5.10.13", "HV_TLB_FLUSH"), (35, "5.15.0", "TLB_FLUSH_GUEST"), (35, "6.18.0", "TLB_FLUSH_GUEST"),
    (37, "5.10.0", "MSR_FILTER_CHANGED"), (37, "6.14.0", "MSR_FILTER_CHANGED"),
    (37, "6.17.9", "MSR_FILTER_CHANGED"), (37, "6.18.44-fc-v669", "RECALC_INTERCEPTS"),
    (40, "6.1.0", "bit40"), (40, "6.2.0", "HV_TLB_FLUSH"),
    (42, "6.10.0", "bit42"), (42, "6.11.0", "UPDATE_PROTECTED_GUEST_STATE"),
    (39, "5.15.0", "bit39"), (39, "6.1.0", "MMU_FREE_OBSOLETE_ROOTS"),
    (38, "5.10.0", "bit38"), (38, "5.15.0", "UPDATE_CPU_DIRTY_LOGGING"),
])
def test_request_bits_by_version(bit, kernel, name):
    assert request_bit_name(bit, kernel) == name
    if not name.startswith("bit"):
        assert request_bit(name, kernel) == bit  # the reverse lookup (the demo's request bits)


def test_request_bit_of_an_unused_name_is_a_key_error():
    with pytest.raises(KeyError):
        request_bit("VM_BUGGED", "6.18.0")
    assert request_bit("EVENT", "6.18.0-demo") == 14


def test_request_bits_latest_table():
    """kernel.md §2a/§2b, 6.18 column; None and unparsable releases mean latest."""
    arch = ["MIGRATE_TIMER", "REPORT_TPR_ACCESS", "TRIPLE_FAULT", "MMU_SYNC", "CLOCK_UPDATE",
            "LOAD_MMU_PGD", "EVENT", "APF_HALT", "STEAL_UPDATE", "NMI", "PMU", "PMI", "SMI",
            "MASTERCLOCK_UPDATE", "MCLOCK_INPROGRESS", "SCAN_IOAPIC", "GLOBAL_CLOCK_UPDATE",
            "APIC_PAGE_RELOAD", "HV_CRASH", "IOAPIC_EOI_EXIT", "HV_RESET", "HV_EXIT", "HV_STIMER",
            "LOAD_EOI_EXITMAP", "GET_NESTED_STATE_PAGES", "APICV_UPDATE", "TLB_FLUSH_CURRENT",
            "TLB_FLUSH_GUEST", "APF_READY", "RECALC_INTERCEPTS", "UPDATE_CPU_DIRTY_LOGGING",
            "MMU_FREE_OBSOLETE_ROOTS", "HV_TLB_FLUSH", "bit41", "UPDATE_PROTECTED_GUEST_STATE"]
    expected = ["TLB_FLUSH", "VM_DEAD", "UNBLOCK", "DIRTY_RING_SOFT_FULL",
                "bit4", "bit5", "bit6", "bit7", *arch] + [f"bit{b}" for b in range(43, 64)]
    for kernel in (None, "6.18.44-fc-v669", "not-a-version"):
        assert [request_bit_name(b, kernel) for b in range(64)] == expected
    assert request_bit_name(12, "5.10.0") == "CLOCK_UPDATE"
