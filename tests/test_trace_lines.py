"""The streaming line parser on synthetic captures: every layout, payload era and damage."""

from __future__ import annotations

import pytest

from kvmtop.decode import ISA_SVM, ISA_VMX
from kvmtop.offline.trace_lines import (
    ANON_TID,
    ENTRY,
    EXIT,
    HYPERCALL,
    MMIO,
    PIO,
    RUN,
    USERSPACE,
    TraceParser,
    parse_ts,
)


def parse(text: str) -> tuple[TraceParser, list[tuple]]:
    p = TraceParser()
    events = list(p.parse(text.splitlines(keepends=True)))
    assert p.lines == p.events + p.skipped + p.bad_count + p.joined  # every line counted once
    return p, events


def one(text: str) -> tuple:
    p, events = parse(text)
    assert len(events) == 1, (events, p.bad)
    return events[0]


MODERN = ("vcpu 1 reason CR_ACCESS rip 0xffffffff8100007a info1 0x0000000000000000 "
          "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000")


# --------------------------------------------------------------------------- timestamps


@pytest.mark.parametrize("sec,frac,ns", [
    ("1404", "389366", 1404_389366_000),  # µs precision
    ("1404", "389366123", 1404_389366_123),  # ns precision
    ("1404", "3893661234", 1404_389366_123),  # digits past the ninth are dropped
    ("0", "000001", 1000),
    ("18446744073", "709551615", 18446744073_709551615),  # beyond float precision, still exact
    ("123456", None, 123456),  # a counter clock: already ns
])
def test_timestamps_are_exact_integer_ns(sec, frac, ns):
    assert parse_ts(sec, frac) == ns


def test_timestamp_from_a_line_is_exact():
    ev = one(f" qemu-system-x86-8397    [002] d....  1404.389366: kvm_exit: {MODERN}\n")
    assert ev[2] == 1404389366000
    ev = one(f" qemu-system-x86-8397    [002] d....  1404.389366123: kvm_exit: {MODERN}\n")
    assert ev[2] == 1404389366123


# --------------------------------------------------------------------------- layouts


@pytest.mark.parametrize("line", [
    # ftrace trace, 5-character flags (>= 5.x)
    f" qemu-system-x86-8397    [002] d....  1404.389366: kvm_exit: {MODERN}",
    # 4-character flags
    f" qemu-system-x86-8397    [002] d..1  1404.389366: kvm_exit: {MODERN}",
    # no flags column (old trace_pipe)
    f"    qemu-system-x86-8397  [002] 1404.389366: kvm_exit: {MODERN}",
    # with the tgid column
    f" qemu-system-x86-8397  (   8390) [002] d....  1404.389366: kvm_exit: {MODERN}",
    # trace-cmd report: padded event column
    f"  qemu-system-x86-8397  [002]  1404.389366: kvm_exit:             {MODERN}",
    # trace-cmd report with latency flags
    f"  qemu-system-x86-8397  [002] d..1  1404.389366: kvm_exit:             {MODERN}",
    # perf script: comm, tid, right-aligned event with subsystem prefix
    f" qemu-system-x86  8397 [002]  1404.389366:                kvm:kvm_exit: {MODERN}",
    # perf script with pid/tid
    f" qemu-system-x86 8390/8397 [002]  1404.389366: kvm:kvm_exit: {MODERN}",
    # perf script with flags and a leading wall-clock time
    f"10:31:07.123456 qemu-system-x86  8397 [002] d..1  1404.389366: kvm:kvm_exit: {MODERN}",
    f"2023-03-30 10:31:07.123456 qemu-system-x86  8397 [002] 1404.389366: kvm:kvm_exit: {MODERN}",
    # perf script without the cpu column
    f" qemu-system-x86  8397  1404.389366: kvm:kvm_exit: {MODERN}",
])
def test_every_layout_gives_the_same_event(line):
    p, events = parse(line + "\n")
    assert events == [(EXIT, 8397, 1404389366000, (ISA_VMX, 28), 1, None)], p.bad
    assert p.threads[8397].comm == "qemu-system-x86"
    assert p.reason_names[(ISA_VMX, 28)] == "CR_ACCESS"


def test_tgid_from_column_or_perf_pid():
    p, _ = parse(f" qemu-system-x86-8397  (   8390) [002] d....  1404.389366: kvm_exit: {MODERN}\n"
                 f"           <...>-8398  (-------) [003] d....  1404.389367: kvm_exit: {MODERN}\n"
                 f" CPU 1/KVM 8390/8399 [002]  1404.389368: kvm:kvm_exit: {MODERN}\n")
    assert p.threads[8397].tgid == 8390
    assert p.threads[8398].tgid is None  # unknown tgid
    assert p.threads[8399].tgid == 8390 and p.threads[8399].comm == "CPU 1/KVM"


def test_comm_with_spaces_and_dashes():
    p, events = parse(
        "       CPU 0/KVM-1234    [005] d....  10.000001: kvm_entry: vcpu 0, rip 0x1\n"
        "  my-vm-name-x-1235    [005] d....  10.000002: kvm_entry: vcpu 1, rip 0x1\n"
        "   CPU 12/KVM  1236 [005]  10.000003: kvm:kvm_entry: vcpu 12, rip 0x1\n"
    )
    assert [e[1] for e in events] == [1234, 1235, 1236]
    assert p.threads[1234].comm == "CPU 0/KVM" and p.threads[1234].vcpu_index == 0
    assert p.threads[1235].comm == "my-vm-name-x" and p.threads[1235].vcpu_index == 1  # from vcpu N
    assert p.threads[1236].comm == "CPU 12/KVM" and p.threads[1236].vcpu_index == 12


def test_unknown_comm_of_trace_cmd():
    p, events = parse("           <...>-43752 [001]  3615.602298: kvm_exit:             "
                      "reason EXIT_MSR rip 0x4015c2 info 0 0\n")
    assert events == [(EXIT, 43752, 3615602298000, (ISA_SVM, 0x7C), None, None)]
    assert p.threads[43752].comm == "<...>"


def test_lines_without_a_task_column_are_one_anonymous_thread():
    p, events = parse(
        " 220.696238: kvm_entry: vcpu 0, rip 0x406a89\n"
        "    [001]   770.850307:     kvm:kvm_exit: vcpu 0 reason TRIPLE_FAULT rip 0x100146 info1 0x0000000000000000"
        " info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n"
    )
    assert [(e[0], e[1]) for e in events] == [(ENTRY, ANON_TID), (EXIT, ANON_TID)]
    assert p.threads[ANON_TID].comm == ""


# --------------------------------------------------------------------------- payload eras


@pytest.mark.parametrize("payload,key,vcpu,req", [
    # 2.6/3.x: lowercase VMX names, no info
    ("reason apic_access rip 0xc011518c", (ISA_VMX, 44), None, None),
    # old (<= 5.6): reason, rip, info A B; VMX and old SVM EXIT_* names
    ("reason EXTERNAL_INTERRUPT rip 0x22da info 0 800000fd", (ISA_VMX, 1), None, None),
    ("reason EXIT_NPF rip 0xfd11d info 100000014 fd000", (ISA_SVM, 0x400), None, None),
    ("reason EXIT_EXCP_GP rip 0x4015c2 info 6a 0", (ISA_SVM, 0x4D), None, None),
    # transitional: vcpu N, new lowercase SVM names, info A B
    ("vcpu 1 reason npf rip 0xfd11d info 100000014 fd000", (ISA_SVM, 0x400), 1, None),
    # >= 5.10: info1 .. info2 .. intr_info .. error_code ..
    (MODERN, (ISA_VMX, 28), 1, None),
    ("vcpu 0 reason vintr rip 0x4004ae info1 0x0000000000000000 info2 0x0000000000000000 "
     "intr_info 0x00000000 error_code 0x00000000", (ISA_SVM, 0x64), 0, None),
    # SVM names with a space
    ("vcpu 2 reason GP excp rip 0x4015c2 info1 0x0000000000000000 info2 0x0000000000000000 "
     "intr_info 0x00000000 error_code 0x00000000", (ISA_SVM, 0x4D), 2, None),
    # VMX flag bits printed after the basic reason
    ("vcpu 0 reason INVALID_STATE FAILED_VMENTRY rip 0x0 info1 0x0000000000000000 "
     "info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000", (ISA_VMX, 0x80000021), 0, None),
    # unnamed codes print as hex
    ("vcpu 0 reason 0x4c rip 0x0 info1 0x0000000000000000 info2 0x0000000000000000 "
     "intr_info 0x00000000 error_code 0x00000000", (ISA_VMX, 0x4C), 0, None),
    # >= 6.14: requests
    ("vcpu 3 reason EPT_VIOLATION rip 0xffffffff81000000 info1 0x0000000000000181 info2 0x0000000000000000 "
     "intr_info 0x00000000 error_code 0x00000000 requests 0x0000000000000a01", (ISA_VMX, 48), 3, 0xA01),
])
def test_kvm_exit_payload_eras(payload, key, vcpu, req):
    ev = one(f"           <...>-100 [000] d....  1.000000: kvm_exit: {payload}\n")
    assert ev == (EXIT, 100, 1_000_000_000, key, vcpu, req)


def test_spellings_of_one_reason_keep_the_first_as_name():
    p, events = parse("<...>-1 [000] 1.000001: kvm_exit: reason EXIT_MSR rip 0x1 info 0 0\n"
                      "<...>-1 [000] 1.000002: kvm_exit: vcpu 0 reason msr rip 0x1 info 0 0\n")
    assert events[0][3] == events[1][3] == (ISA_SVM, 0x7C)
    assert p.reason_names[(ISA_SVM, 0x7C)] == "EXIT_MSR"
    assert p.reason_spellings[(ISA_SVM, 0x7C)] == ["EXIT_MSR", "msr"]


@pytest.mark.parametrize("payload", [
    "vcpu 0", "vcpu 0, rip 0x406a89",
    "vcpu 0, rip 0xffffffff8108aca7 intr_info 0x00000000 error_code 0x00000000",
    "vcpu 0, rip 0xffffffff8108aca7 intr_info 0x800000ec error_code 0x00000000[immediate exit]",
])
def test_kvm_entry_with_or_without_rip(payload):
    assert one(f"  CPU 0/KVM-77  [003] d....  5.5: kvm_entry: {payload}\n") == (ENTRY, 77, 5_500_000_000, 0)


def test_other_kvm_events():
    _, events = parse(
        "CPU 0/KVM-9 [000] ....  1.000001: kvm_userspace_exit: reason KVM_EXIT_IO (2)\n"
        "CPU 0/KVM-9 [000] ....  1.000002: kvm_userspace_exit: reason KVM_EXIT_SHUTDOWN (8)\n"
        "CPU 0/KVM-9 [000] ....  1.000003: kvm_userspace_exit: reason restart (4)\n"
        "CPU 0/KVM-9 [000] ....  1.000004: kvm_userspace_exit: reason error (14)\n"
        "CPU 0/KVM-9 [000] ....  1.000005: kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 a2 0x0 a3 0x0\n"
        "CPU 0/KVM-9 [000] ....  1.000006: kvm_pio: pio_read at 0xc13e size 2 count 1\n"
        "CPU 0/KVM-9 [000] ....  1.000007: kvm_pio: pio_write at 0x70 size 1 count 1 val 0x8f \n"
        "CPU 0/KVM-9 [000] ....  1.000008: kvm_mmio: mmio write len 4 gpa 0xfee000b0 val 0x0\n"
        "CPU 0/KVM-9 [000] ....  1.000009: kvm_mmio: mmio unsatisfied-read len 4 gpa 0xfed00000 val 0x0\n"
        "CPU 0/KVM-9 [000] ....  1.000010: kvm_mmio: mmio read len 4 gpa 0xfed00000 val 0x1234\n"
    )
    def t(us: int) -> int:
        return 1_000_000_000 + us * 1000

    assert events == [
        (USERSPACE, 9, t(1), 2),
        (USERSPACE, 9, t(2), 8),
        (USERSPACE, 9, t(3), 0x80000004),  # decode's pseudo code for -EINTR
        (USERSPACE, 9, t(4), 0x8000000E),
        (HYPERCALL, 9, t(5), 5),
        (PIO, 9, t(6), ("IN", 0xC13E)),
        (PIO, 9, t(7), ("OUT", 0x70)),
        (MMIO, 9, t(8), ("W", 0xFEE000B0), False),
        (MMIO, 9, t(9), ("R", 0xFED00000), False),
        (MMIO, 9, t(10), ("R", 0xFED00000), True),
    ]


@pytest.mark.parametrize("line", [
    # ftrace prints syscall events as the call
    "qemu-system-x86-9 [000] .....  2.000000: sys_ioctl(fd: c, cmd: ae80, arg: 0)",
    "qemu-system-x86-9 [000] .....  2.000000: sys_ioctl(fd: 0x0000000c, cmd: 0x0000ae80, arg: 0x00000000)",
    # trace-cmd report
    "qemu-system-x86-9 [000]  2.000000: sys_enter_ioctl:      fd: 0x0000000c, cmd: 0x0000ae80, arg: 0x00000000",
    # perf script
    "qemu-system-x86     9 [000]  2.000000: syscalls:sys_enter_ioctl: fd: 0x0000000c, cmd: 0x0000ae80, arg: 0x00000000",
    # raw syscalls (x86-64 ioctl is NR 16)
    "qemu-system-x86-9 [000] .....  2.000000: sys_enter: NR 16 (c, ae80, 0, 0, 0, 0)",
])
def test_kvm_run_ioctl_entry(line):
    assert one(line + "\n") == (RUN, 9, 2_000_000_000)


def test_other_ioctls_and_syscalls_are_skipped():
    p, events = parse(
        "qemu-system-x86-9 [000] .....  2.000000: sys_ioctl(fd: c, cmd: ae9f, arg: 0)\n"
        "qemu-system-x86-9 [000] .....  2.000001: sys_enter: NR 0 (c, ae80, 0, 0, 0, 0)\n"
        "qemu-system-x86-9 [000] .....  2.000002: sys_ioctl -> 0x0\n"
    )
    assert events == [] and p.skipped == 3 and p.bad_count == 0


# --------------------------------------------------------------------------- not trace lines


def test_prose_comments_tables_and_other_events_are_skipped():
    p, events = parse(
        "# tracer: nop\n"
        "#\n"
        "#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION\n"
        "\n"
        "That's the initialization of L2's CR0.\n"
        "|        msr         |      524213       |       49.00%     |\n"
        "  36.22%  reason MSR_WRITE rip 0xffffffff8110ac58 info 0 0\n"
        " kvm_exit                                      13988   16.4    66300\n"
        "[ perf record: Woken up 2 times to write data ]\n"
        "See [1] for the details.\n"
        "[1] https://lore.kernel.org/kvm/\n"
        '# Raw format: "kvm-5664  [000] 11906.220178: kvm_entry: vcpu 0" -- a comment quoting a line\n'
        "qemu-system-x86-8397 [002] .....  1404.389373: kvm_cr: cr_write 0 = 0x80050033\n"
        "qemu-system-x86-5659 [007] ....   280.971116: tracing_mark_write: pckbd_kbd_update_irq kbd=0 aux=1\n"
        " 220.696238: kvm_apic_ipi: dst b0 vec 176 (Fixed|physical|assert|edge|self)\n"
        "CPU:2 [LOST 17 EVENTS]\n"
        "          <idle>-0     [000] d...   123.456789: rcu_idle_exit <-cpu_idle\n"
        "The exit at 12.5: kvm_exit: was slow.\n"
        "qemu 1234 770.850287: kvm:kvm_fpu: unload\n"
    )
    assert events == []
    assert p.skipped == 19 and p.bad_count == 0 and p.lines == 19
    assert p.lost_events == 17


# --------------------------------------------------------------------------- damage


def test_truncated_and_garbled_lines_are_bad_with_their_line_numbers():
    text = (
        "qemu-system-x86-8397 [002] d....  1404.389366: kvm_exit: " + MODERN + "\n"   # 1 ok
        "qemu-system-x86-8397 [002] d....  1404.38\n"                                  # 2 cut in the ts
        "\n"                                                                            # 3 blank
        "qemu-system-x86-8397 [002] d....  1404.389461: kvm_entry: vcpu 1, ri\n"       # 4 cut in payload
        "qemu-system-x86-8397 [002] d....  1404.389470: kvm_exit: vcpu 1 reason NO_SUCH_REASON rip 0x1"
        " info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n"  # 5
        "qemu-system-x86-8397 [002] d....  1404.389480: kvm_exit: vcpu 1 reason HLT rip 0x1 info1 0x0000"
        "000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x000\n"  # 6 cut error_code
        "qemu-system-x86-8397 [002] d....  1404.389490: kvm_userspace_exit: reason KVM_EXIT_IO\n"  # 7
        "qemu-system-x86-8397 [002] d....  1404.389500: kvm_entry: vcpu 1, rip 0x2\n"  # 8 ok
        "qemu-system-x86-8397 [002] d....  1404.3895"                                  # 9 cut, no newline
    )
    p, events = parse(text)
    assert [e[0] for e in events] == [EXIT, ENTRY]
    assert [n for n, _ in p.bad] == [2, 4, 5, 6, 7, 9]
    assert p.bad_count == 6 and p.skipped == 1 and p.events == 2
    assert p.bad[0][1] == "qemu-system-x86-8397 [002] d....  1404.38"


def test_bad_lines_list_is_capped_but_counted():
    p = TraceParser(max_bad=3)
    list(p.parse(["qemu-1 [000] d....  1.0\n"] * 10))
    assert p.bad_count == 10 and len(p.bad) == 3


def test_wrapped_event_lines_are_joined():
    # as hard-wrapped by a mail client: the continuation starts at column 0
    p, events = parse(
        "<...>-35787 [038] ....  2825.959082: kvm_exit: vcpu 1 reason npf rip\n"
        "0xfd11d info 100000014 fd000\n"
        "<...>-35788 [037] ....  2825.959088: kvm_userspace_exit: reason\n"
        "KVM_EXIT_INTERNAL_ERROR (17)\n"
        "<...>-35788 [037] ....  2825.959090: kvm_exit: vcpu 2 reason CR_ACCESS rip 0xffffffff8100007a info1\n"
        "0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000\n"
    )
    assert events == [
        (EXIT, 35787, 2825959082000, (ISA_SVM, 0x400), 1, None),
        (USERSPACE, 35788, 2825959088000, 17),
        (EXIT, 35788, 2825959090000, (ISA_VMX, 28), 2, None),
    ]
    assert p.joined == 3 and p.bad_count == 0 and p.skipped == 0


def test_header_and_event_on_two_lines_are_joined():
    p, events = parse(
        "qemu-system-x86-5665  [000] ....   280.971121:\n"
        " kvm_exit: reason EXTERNAL_INTERRUPT rip 0x22da info 0 800000fd\n"
        "qemu-system-x86-5665  [000] d..1   280.971122:\n"
        " kvm_entry: vcpu 0, rip 0x22da\n"
        "qemu-system-x86-5659  [007] ....   280.971116:\n"
        " tracing_mark_write: pckbd_kbd_update_irq kbd=0 aux=1\n"
    )
    assert [(e[0], e[2]) for e in events] == [(EXIT, 280971121000), (ENTRY, 280971122000)]
    assert p.joined == 3 and p.skipped == 1 and p.bad_count == 0


def test_a_wrapped_line_followed_by_a_trace_line_is_bad():
    p, events = parse(
        "<...>-35787 [038] ....  2825.959082: kvm_exit: vcpu 1 reason npf rip\n"
        "<...>-35787 [038] ....  2825.959090: kvm_entry: vcpu 1\n"
        "<...>-35787 [038] ....  2825.959091: kvm_exit: vcpu 1 reason npf rip\n"
        "this prose is no continuation\n"
    )
    assert [e[0] for e in events] == [ENTRY]
    assert [n for n, _ in p.bad] == [1, 3] and p.skipped == 1 and p.joined == 0


def test_parser_streams_without_holding_lines():
    def gen():
        for i in range(50_000):
            yield f"CPU 0/KVM-5 [001] d....  {1 + i // 1000}.{i % 1000:06d}: kvm_entry: vcpu 0, rip 0x1\n"

    p = TraceParser()
    n = sum(1 for _ in p.parse(gen()))
    assert n == 50_000 and p.events == 50_000 and len(p.threads) == 1
    assert len(p._tasks) == 1  # one cached task string
