"""Property-based: the importer never raises, whatever the text or bytes."""

from __future__ import annotations

import io
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmtop.commands.report import report_main
from kvmtop.offline.report import format_report, report_to_dict
from kvmtop.offline.report_model import Selection, from_trace
from kvmtop.offline.trace_import import import_file, import_lines
from kvmtop.sources.trace import build_intervals

# Fragments of real lines, so the fuzzer reaches deep into the parser as well as the prose path.
FRAGMENTS = [
    " qemu-system-x86-8397    [002] d....  1404.389366: ", "<...>-35787 [038] ....  2825.959082: ",
    "CPU 0/KVM-1234 (  1200) [001] d..1 ", " 220.696238: ", "    [001]   770.850287: ", "qemu 12/34 [000] ",
    "10:31:07.123456 ", "kvm_exit: ", "kvm:kvm_exit: ", "kvm_entry: ", "kvm_userspace_exit: ",
    "kvm_hypercall: ", "kvm_pio: ", "kvm_mmio: ", "sys_ioctl(", "sys_enter: ", "vcpu 1 ", "reason ",
    "EXIT_MSR", "npf", "GP excp", "HLT", "0x4c", "FAILED_VMENTRY", " rip 0x4015c2", " info 0 0",
    " info1 0x0000000000000000 info2 0x0000000000000000", " intr_info 0x00000000 error_code 0x00000000",
    " requests 0x0000000000000a01", "vcpu 0, rip 0x1", "KVM_EXIT_IO (2)", "restart (4)", "error (-14)",
    "nr 0x5 a0 0x0", "pio_read at 0xc13e size 2 count 1", "mmio read len 4 gpa 0xfee000b0 val 0x0",
    "fd: c, cmd: ae80, arg: 0)", "NR 16 (c, ae80, 0)", "CPU:2 [LOST 17 EVENTS]", "#", ">", "\n", "\r\n",
    "\r", "\t", " ", "[", "]", "(", ")", ":", "-", ".", "0", "99999999999999999999", "\x00", "\ufffd", "é",
    # perf-prof (wall-clock date, flags after the tid), trace-cmd's buffer name, perf script --ns
    "2022-04-22 17:39:26.535148 ", "           <...> 126953 .... [078] ", " d... ", "96822671.255015: ",
    "i11x:        CPU 0/KVM-22517 [000]  ", "1802.251730642: ", "CPU 0/KVM 19901/19903 [001] ",
    "syscalls:sys_enter_ioctl: fd: 0x00000005, cmd: 0x0000ae80, arg: 0x00000000",
]

line_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), max_size=30).map("".join)
capture = st.lists(line_text, max_size=25).map("\n".join)


def check(imp) -> None:
    d = report_to_dict(imp)
    json.dumps(d)
    format_report(imp, d)
    assert d["lines"] == d["events"] + d["skipped_lines"] + d["bad_line_count"] + d["joined_lines"]
    assert d["bad_line_count"] >= len(d["bad_lines"])
    for slow in d.get("slowest", {}).values():
        if isinstance(slow, list):
            assert len(slow) <= d["slowest"]["n"]
            assert [r["latency_ns"] for r in slow] == sorted((r["latency_ns"] for r in slow), reverse=True)
    # every VM and every thread, narrowed to, renders too; the VMs' threads add up to the totals
    data = from_trace(imp)
    assert sum(len(v["threads"]) for v in d["vms"]) == len(d["threads"])
    for vm in list(data.vms.values())[:3]:
        part = data.narrowed(Selection(pid=vm.pid))
        json.dumps(report_to_dict(part))
        format_report(part)
    for t in data.threads[:3]:
        format_report(data.narrowed(Selection(tid=t.tid)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capture)
def test_importer_never_raises_on_text(text):
    check(import_lines(io.StringIO(text)))
    check(import_lines(io.StringIO(text), slowest=2))
    imp = import_lines(io.StringIO(text), window_s=0.001)
    check(imp)
    build_intervals(imp, 0.001)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_importer_never_raises_on_bytes(tmp_path_factory, data):
    path = os.path.join(tmp_path_factory.mktemp("fuzz"), "capture.bin")
    with open(path, "wb") as f:
        f.write(data)
    imp = import_file(path)
    check(imp)
    out = io.StringIO()
    if imp.parser.events:
        assert report_main(path, True, out) == 0
        json.loads(out.getvalue())
    else:  # nothing to report on: one line on stderr, status 1, no report of zeros
        assert report_main(path, True, out) == 1 and out.getvalue() == ""


def test_giant_numbers_are_no_crash():
    big = "9" * 5000
    lines = [
        f"qemu-{big} [000] d....  1.000001: kvm_entry: vcpu 0\n",
        f"qemu-1 ({big}) [000] d....  1.000001: kvm_entry: vcpu 0\n",
        f"qemu-1 [000] d....  {big}.000001: kvm_entry: vcpu 0\n",
        f"qemu-1 [000] d....  1.{big}: kvm_entry: vcpu {big}\n",
        f"qemu-1 [000] d....  1.000002: kvm_exit: vcpu {big} reason {big} rip 0x1 info 0 0\n",
        "qemu-1 [000] d....  1.000003: kvm_exit: reason HLT rip 0x1 info 0 0\n",
        f"qemu-1 [000] d....  1.000004: kvm_userspace_exit: reason KVM_EXIT_IO ({big})\n",
        f"qemu-1 [000] d....  1.000005: kvm_hypercall: nr 0x{big} a0 0x0\n",
        f"qemu-1 [000] d....  1.000006: sys_enter: NR {big} (c, ae80, 0)\n",
        f"CPU:1 [LOST {big} EVENTS]\n",
        f"{big} qemu 1 1.000007: kvm:kvm_entry: vcpu 0\n",
    ]
    imp = import_lines(lines)
    check(imp)
    assert imp.parser.events >= 2


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=40).map("".join).map(str.encode))
def test_importer_never_raises_on_gzip_lookalikes(tmp_path_factory, data):
    # gzip magic followed by junk: unreadable, but an OSError (exit 1), never a traceback
    path = os.path.join(tmp_path_factory.mktemp("fuzz"), "capture.gz")
    with open(path, "wb") as f:
        f.write(b"\x1f\x8b" + data)
    assert report_main(path, False, io.StringIO()) in (0, 1)


def test_overlong_lines_are_cut_not_held(tmp_path):
    path = tmp_path / "long.txt"
    with open(path, "w") as f:
        f.write("x" * 3_000_000 + "\n")  # one 3 MB line of junk
        f.write("qemu-1 [000] d....  1.000001: kvm_exit: reason HLT rip 0x1 info 0 0 " + "y" * 200_000 + "\n")
        f.write("qemu-1 [000] d....  1.000002: kvm_entry: vcpu 0\n")
        f.write("z" * 200_000)  # and no newline at the end
    imp = import_file(str(path))
    p = imp.parser
    assert (p.lines, p.events, p.skipped, p.bad_count) == (4, 1, 2, 1)
    assert p.bad[0][0] == 2 and len(p.bad[0][1]) <= 300
