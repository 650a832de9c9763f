"""kvmtop report: per-VM and per-thread tables of every kind, narrowing, --slowest, missing
figures and perf-prof lines, on real captures with figures derived by hand.

tests/data/guest/guest-ftrace_two-vms_round-trips.txt was made here (its header says how): two test
guests at once, vm-a (tgid 26402, vCPU thread 26404: 3 pio, 2 mmio with a 2 ms MMIO handler,
1 hlt, the DONE out) and vm-b (tgid 26405, thread 26406: 2 pio, 1 mmio with 5 ms, 2 hlt, DONE).
Its round trips, read off the file (kvm_userspace_exit -> the thread's next sys_ioctl cmd ae80):

    vm-a: IO .289917->.289940 23 us, .289948->.289954 6, .289961->.289966 5, .294376 (DONE) none;
          MMIO .289974->.292074 2100 us, .292087->.294352 2265 us; HLT .294361->.294368 7 us
    vm-b: IO .289807->.289825 18 us, .289839->.289848 9, .295021 (DONE) none;
          MMIO .289860->.294974 5114 us; HLT .294987->.294999 12 us, .295007->.295012 5 us

Percentiles follow kvmtop/histogram.py by hand: the q-quantile is the value of rank ceil(q*n),
reported as the midpoint lo + width/2 - 1 of its bucket (8 sub-buckets per power of two),
clamped to [min, max].
"""

from __future__ import annotations

import io
import json
import os
import re

import pytest

from kvmtop.cli import main
from kvmtop.commands.report import report_main
from kvmtop.offline.capture_advice import KVM_RUN_FILTER
from kvmtop.offline.report_model import Selection
from kvmtop.offline.trace_import import import_lines

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TWO_VMS = os.path.join(DATA, "guest", "guest-ftrace_two-vms_round-trips.txt")
USERSPACE_ONLY = os.path.join(DATA, "guest", "guest-ftrace_userspace-exits-only.txt")
PERF_PROF = os.path.join(DATA, "guest", "guest-perf-prof-layout_derived.txt")
LKML = os.path.join(DATA, "traces", "lkml-2023-03-30_krause-cr0wp_vmx-newfmt_2vcpu.txt")
AMD = os.path.join(DATA, "traces", "amd-svm_kvm-lists_2019-2024_three-eras.txt")

US = 1000
SECTION_KEYS = {"unmatched", "reasons", "userspace_exits", "hypercalls", "requests", "unmatched_userspace_exits",
                "pio", "mmio"}


def report(path: str, slowest: int = 0, **selection) -> dict:
    out = io.StringIO()
    assert report_main(path, True, out, Selection(**selection), slowest) == 0
    return json.loads(out.getvalue())


def text(path: str, slowest: int = 0, **selection) -> str:
    out = io.StringIO()
    assert report_main(path, False, out, Selection(**selection), slowest) == 0
    return out.getvalue()


def rows(section: list[dict]) -> dict[str, tuple]:
    """name -> (count, paired, min, max, sum)"""
    return {r["name"]: (r["count"], *(r["latency_ns"][k] for k in ("count", "min", "max", "sum"))) for r in section}


# --------------------------------------------------------------------------- per VM, per thread


def test_two_vms_split_into_vms_and_threads():
    d = report(TWO_VMS)
    # wc -l: 53; 36 events (the file's own header says entries-in-buffer 36); 17 header lines
    assert (d["lines"], d["events"], d["skipped_lines"], d["bad_line_count"]) == (53, 36, 17, 0)
    assert rows(d["userspace_exits"]) == {
        "KVM_EXIT_IO": (7, 5, 5 * US, 23 * US, 61 * US),  # 23+6+5+18+9
        "KVM_EXIT_MMIO": (3, 3, 2100 * US, 5114 * US, 9479 * US),
        "KVM_EXIT_HLT": (3, 3, 5 * US, 12 * US, 24 * US),
    }
    # IO paired 5, 6, 9, 18, 23 us: p50 = rank 3 = 9000 in [8192, 9216) -> 8703
    assert d["userspace_exits"][0]["latency_ns"]["p50"] == 8703
    assert d["unmatched_userspace_exits"] == 2  # each guest's DONE out is never answered
    assert d["reasons"] == [] and d["hypercalls"] == [] and d["requests"] == []
    vms = {v["pid"]: v for v in d["vms"]}
    assert sorted(vms) == [26402, 26405]
    a, b = vms[26402], vms[26405]
    # only vCPU threads appear: the VM is named by the comm they share
    assert a["name"] == b["name"] == "CPU N/KVM"
    assert rows(a["userspace_exits"]) == {
        "KVM_EXIT_IO": (4, 3, 5 * US, 23 * US, 34 * US),
        "KVM_EXIT_MMIO": (2, 2, 2100 * US, 2265 * US, 4365 * US),
        "KVM_EXIT_HLT": (1, 1, 7 * US, 7 * US, 7 * US),
    }
    assert rows(b["userspace_exits"]) == {
        "KVM_EXIT_IO": (3, 2, 9 * US, 18 * US, 27 * US),
        "KVM_EXIT_HLT": (2, 2, 5 * US, 12 * US, 17 * US),
        "KVM_EXIT_MMIO": (1, 1, 5114 * US, 5114 * US, 5114 * US),
    }
    assert (a["userspace_exit_count"], b["userspace_exit_count"]) == (7, 6)
    # vm-a's MMIO 2100 and 2265 us: both in [2097152, 2359296) -> 2228223
    lat = a["userspace_exits"][1]["latency_ns"]
    assert (lat["p50"], lat["p90"]) == (2228223, 2228223)
    assert a["userspace_latency_ns"]["sum"] == 4406 * US and b["userspace_latency_ns"]["sum"] == 5158 * US
    assert (a["unmatched_userspace_exits"], b["unmatched_userspace_exits"]) == (1, 1)
    assert a["unmatched"] == b["unmatched"] == {"exits": 0, "entries": 0}
    # a VM carries the same fields as the totals
    assert SECTION_KEYS | {"threads"} <= set(a)
    assert [(t["tid"], t["pid"], t["vm_pid"], t["vcpu"], t["comm"]) for t in a["threads"]] == [
        (26404, 26402, 26402, 0, "CPU 0/KVM")]
    # threads at the top level: every kind per thread too
    threads = {t["tid"]: t for t in d["threads"]}
    assert sorted(threads) == [26404, 26406]
    assert rows(threads[26406]["userspace_exits"]) == rows(b["userspace_exits"])
    assert set(threads[26406]) >= SECTION_KEYS
    # the capture spans the first sys_ioctl (.289515) to the last userspace exit (.295021)
    assert (d["source"]["first_ts_ns"], d["source"]["last_ts_ns"]) == (2300289515000, 2300295021000)
    assert d["source"]["kind"] == "trace" and d["selection"] is None


def test_two_vms_text_has_per_vm_and_per_thread_tables():
    t = text(TWO_VMS)
    # Per VM: name, pid, threads, exits 0, userspace 7, RT p50 (vm-a paired 5,6,7,23,2100,2265: rank 3 =
    # 7000 in [6656, 7168) -> 6911), RT p99 (rank 6 = 2265000 -> 2228223), RT max
    assert re.search(r"CPU N/KVM\s+26402\s+1\s+0\s+-\s+-\s+-\s+7\s+6\.91us\s+2228\.22us\s+2265\.00us\s+0\s+0", t)
    assert re.search(r"CPU N/KVM\s+26405\s+1\s+0\s+-\s+-\s+-\s+6\s+", t)
    assert "Userspace exits of VM CPU N/KVM (pid 26402)" in t and "Userspace exits of VM CPU N/KVM (pid 26405)" in t
    # per thread: 26404 made 7 of the 13 userspace exits (53.85%), 4406 of 9564 us (46.07%)
    assert re.search(r"CPU 0/KVM-26404\s+0\s+KVM_EXIT_IO\s+7\s+53\.85%\s+46\.07%\s+5\.00us\s+2265\.00us", t)
    assert "Unmatched: 0 exits, 0 entries, 2 userspace exits." in t


def test_per_vm_exits_in_a_capture_of_several_excerpts():
    d = report(AMD)
    # the "<...>" threads make one VM (pid = lowest tid 35787), the lines without a task another (pid 0)
    vms = {v["pid"]: v for v in d["vms"]}
    assert {p: (v["name"], v["exits"], len(v["threads"])) for p, v in vms.items()} == {
        0: ("(no task column)", 5, 1), 35787: ("<...>", 9, 5)}
    # section B's 3 npf exits (35787-35789) have no kvm_entry: unmatched; 52213's last EXIT_EXCP_GP too
    assert vms[35787]["unmatched"] == {"exits": 4, "entries": 1}  # 52213's first line is an entry
    assert vms[0]["unmatched"] == {"exits": 1, "entries": 1}  # section C: the last msr; the first entry
    assert rows(vms[35787]["userspace_exits"]) == {"KVM_EXIT_INTERNAL_ERROR": (3, 0, 0, 0, 0),
                                                   "KVM_EXIT_SHUTDOWN": (1, 0, 0, 0, 0)}
    assert vms[0]["userspace_exits"] == []


def test_hypercalls_and_request_bits_per_thread():
    # no real capture holds kvm_hypercall or a requests field (this host never fires kvm_exit):
    # lines in the >= 6.14 ftrace format (shared/reference/kernel.md), two threads of one VM
    def exit_line(tid, ts, reason, req):
        return (f"       CPU {tid - 101}/KVM-{tid}  (    100) [001] d....  {ts}: kvm_exit: vcpu {tid - 101} reason "
                f"{reason} rip 0x1 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000 "
                f"requests 0x{req:016x}")

    def line(tid, ts, event):
        return f"       CPU {tid - 101}/KVM-{tid}  (    100) [001] d....  {ts}: {event}"

    lines = [
        exit_line(101, "1.000000", "VMCALL", 0x5),  # bits 0 and 2
        line(101, "1.000001", "kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 a2 0x0 a3 0x0"),  # KICK_CPU
        line(101, "1.000004", "kvm_entry: vcpu 0, rip 0x1"),  # 4 us, also the hypercall's
        exit_line(102, "1.000010", "VMCALL", 0x1),
        line(102, "1.000011", "kvm_hypercall: nr 0xb a0 0x0 a1 0x0 a2 0x0 a3 0x0"),  # SCHED_YIELD
        line(102, "1.000020", "kvm_entry: vcpu 1, rip 0x1"),  # 10 us
        exit_line(102, "1.000030", "HLT", 0x0),
        line(102, "1.000031", "kvm_entry: vcpu 1, rip 0x1"),
    ]
    data_text = "\n".join(lines) + "\n"
    from kvmtop.offline.report import format_report, report_to_dict
    from kvmtop.offline.report_model import from_trace

    data = from_trace(import_lines(io.StringIO(data_text)))
    d = report_to_dict(data)
    threads = {t["tid"]: t for t in d["threads"]}
    assert [(h["name"], h["count"], h["latency_ns"]["sum"]) for h in threads[101]["hypercalls"]] == [
        ("KVM_HC_KICK_CPU", 1, 4000)]
    assert [(h["name"], h["count"], h["latency_ns"]["sum"]) for h in threads[102]["hypercalls"]] == [
        ("KVM_HC_SCHED_YIELD", 1, 10000)]
    # 101: one exit with bits 0 and 2; 102: bit 0 on one of its two exits
    assert [(r["bit"], r["count"], r["share"]) for r in threads[101]["requests"]] == [(0, 1, 1.0), (2, 1, 1.0)]
    assert [(r["bit"], r["count"], r["share"]) for r in threads[102]["requests"]] == [(0, 1, 0.5)]
    assert [(r["bit"], r["count"], round(r["share"], 4)) for r in d["requests"]] == [(0, 2, 0.6667), (2, 1, 0.3333)]
    assert (threads[101]["hypercall_count"], threads[102]["hypercall_count"]) == (1, 1)
    (vm,) = d["vms"]
    assert (vm["pid"], vm["hypercall_count"], [r["count"] for r in vm["requests"]]) == (100, 2, [2, 1])
    t = format_report(data, d)
    assert re.search(r"CPU 0/KVM-101\s+0\s+KVM_HC_KICK_CPU \(5\)\s+1\s+4\.00us", t)
    assert re.search(r"CPU 1/KVM-102\s+1\s+0\s+\S+\s+1\s+50\.00%", t)  # per-thread request bits
    assert "Per thread: hypercalls:" in t and "Per thread: vcpu->requests bits pending at exit:" in t


# --------------------------------------------------------------------------- narrowing


def test_narrowing_by_pid_tid_and_name():
    b = report(TWO_VMS, pid=26405)
    assert b["selection"] == {"pid": 26405, "tid": None, "name": None}
    assert [v["pid"] for v in b["vms"]] == [26405] and [t["tid"] for t in b["threads"]] == [26406]
    assert rows(b["userspace_exits"]) == {"KVM_EXIT_IO": (3, 2, 9 * US, 18 * US, 27 * US),
                                          "KVM_EXIT_HLT": (2, 2, 5 * US, 12 * US, 17 * US),
                                          "KVM_EXIT_MMIO": (1, 1, 5114 * US, 5114 * US, 5114 * US)}
    assert b["unmatched_userspace_exits"] == 1
    a = report(TWO_VMS, tid=26404)
    assert [t["tid"] for t in a["threads"]] == [26404] and sum(u["count"] for u in a["userspace_exits"]) == 7
    # pid 0 is the VM of the lines without a task column; "<...>" the other one
    anon = report(AMD, pid=0)["reasons"]
    assert anon[0]["count"] == 2 and sum(r["count"] for r in anon) == 5
    assert sum(r["count"] for r in report(AMD, name="<...>")["reasons"]) == 9
    # a name that is no VM's exactly picks the one VM that contains it, in any case
    q = report(LKML, name="QEMU")
    assert q["selection"]["name"] == "qemu-system-x86" and sum(r["count"] for r in q["reasons"]) == 13
    assert report(LKML, pid=8396, tid=8397)["threads"][0]["exits"] == 10


def test_guest_patterns_as_the_dashboards_g(capsys):
    # a glob that fits one VM picks it, under its whole name
    one = report(AMD, name="*TASK*")
    assert one["selection"]["name"] == "(no task column)" and [v["pid"] for v in one["vms"]] == [0]
    assert sum(r["count"] for r in one["reasons"]) == 5
    # a regular expression that fits both keeps both, as the pattern
    both = report(AMD, name=r"^(\(no|<)")
    assert both["selection"]["name"] == r"^(\(no|<)" and sorted(v["pid"] for v in both["vms"]) == [0, 35787]
    assert sum(r["count"] for r in both["reasons"]) == 14
    # text contained in several names and equal to none: every VM it is in
    assert [v["pid"] for v in report(TWO_VMS, name="n/kvm")["vms"]] == [26402, 26405]
    with pytest.raises(SystemExit):
        main(["report", AMD, "-g", "^(no"])
    err = capsys.readouterr().err
    assert "not a valid regular expression" in err and "Traceback" not in err


def test_narrowing_that_matches_nothing_is_one_line(capsys):
    assert report_main(TWO_VMS, True, io.StringIO(), Selection(pid=1)) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "matches pid 1" in err and "CPU N/KVM (pid 26402)" in err and "CPU N/KVM (pid 26405)" in err
    assert report_main(TWO_VMS, True, io.StringIO(), Selection(pid=26402, tid=26406)) == 1
    assert capsys.readouterr().err.count("\n") == 1


def test_narrowing_options_on_the_command_line(capsys):
    assert main(["report", TWO_VMS, "--json", "-p", "26402", "--slowest", "1"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [v["pid"] for v in d["vms"]] == [26402]
    # vm-b's 5114 us MMIO is the slowest of the capture but not of vm-a
    assert [(s["latency_ns"], s["tid"]) for s in d["slowest"]["userspace_exits"]] == [(2265 * US, 26404)]
    assert main(["report", TWO_VMS, "-t", "26406", "-g", "CPU N/KVM"]) == 0
    out = capsys.readouterr().out
    assert "(narrowed to tid 26406, VM 'CPU N/KVM')" in out
    with pytest.raises(SystemExit):
        main(["report", TWO_VMS, "--slowest", "0"])


# --------------------------------------------------------------------------- slowest


def test_slowest_round_trips_with_time_thread_vcpu_and_reason():
    d = report(TWO_VMS, slowest=3)
    s = d["slowest"]
    assert s["n"] == 3 and s["exits"] == []
    assert [(r["latency_ns"], r["time"], r["tid"], r["vcpu"], r["vm_pid"], r["name"], r["ended_by"])
            for r in s["userspace_exits"]] == [
        (5114 * US, "2300.289860000", 26406, 0, 26405, "KVM_EXIT_MMIO", "KVM_RUN"),
        (2265 * US, "2300.292087000", 26404, 0, 26402, "KVM_EXIT_MMIO", "KVM_RUN"),
        (2100 * US, "2300.289974000", 26404, 0, 26402, "KVM_EXIT_MMIO", "KVM_RUN"),
    ]
    # asking for more than there are gives all 11 answered round trips, slowest first
    every = report(TWO_VMS, slowest=50)["slowest"]["userspace_exits"]
    assert [r["latency_ns"] // US for r in every] == [5114, 2265, 2100, 23, 18, 12, 9, 7, 6, 5, 5]
    # the two 5 us ones tie: the earlier first (vm-a's IO at .289961, then vm-b's HLT at .295007)
    assert [r["time"] for r in every[-2:]] == ["2300.289961000", "2300.295007000"]
    t = text(TWO_VMS, slowest=3)
    assert re.search(r"5114\.00us\s+2300\.289860000\s+CPU 0/KVM-26406\s+0\s+CPU N/KVM \(26405\)\s+"
                     r"KVM_EXIT_MMIO\s+KVM_RUN", t)


def test_slowest_exits_of_a_vmx_capture():
    # pairs read off the file (see test_report_shared_traces): CR_ACCESS .389366->.389461 95 us (8397,
    # vcpu 1), LDTR_TR .389646->.389711 65 us, CR_ACCESS .389536->.389562 26 us, EXTERNAL_INTERRUPT
    # .389421->.389435 14 us (8396, vcpu 0)
    s = report(LKML, slowest=4)["slowest"]
    assert [(r["latency_ns"], r["time"], r["tid"], r["vcpu"], r["vcpu_id"], r["name"], r["isa"], r["code"])
            for r in s["exits"]] == [
        (95 * US, "1404.389366000", 8397, 1, 1, "CR_ACCESS", 1, 28),
        (65 * US, "1404.389646000", 8397, 1, 1, "LDTR_TR", 1, 47),
        (26 * US, "1404.389536000", 8397, 1, 1, "CR_ACCESS", 1, 28),
        (14 * US, "1404.389421000", 8396, 0, 0, "EXTERNAL_INTERRUPT", 1, 1),
    ]
    assert s["userspace_exits"] == []


def test_slowest_memory_is_n_per_thread():
    # 20,000 exits of one thread, latencies 1..20000 ns: the heap keeps 5, the report the 5 largest
    lines = []
    for i in range(1, 20001):
        t = 1_000_000 + 100_000 * i
        lines.append(f"q-7 [000] d....  {t // 10**9}.{t % 10**9:09d}: kvm_exit: reason HLT rip 0x1 info 0 0\n")
        t += i
        lines.append(f"q-7 [000] d....  {t // 10**9}.{t % 10**9:09d}: kvm_entry: vcpu 0\n")
    imp = import_lines(lines, slowest=5)
    assert {tid: len(h) for tid, h in imp.pairing.slow_exits.items()} == {7: 5}
    from kvmtop.offline.report import report_to_dict

    d = report_to_dict(imp)
    assert [r["latency_ns"] for r in d["slowest"]["exits"]] == [20000, 19999, 19998, 19997, 19996]


# --------------------------------------------------------------------------- missing figures


def test_userspace_exits_without_kvm_run_say_how_to_record_round_trips():
    d = report(USERSPACE_ONLY)
    # 5 userspace exits (IO 2 + DONE, MMIO 1, HLT 1), none answered: no kvm_entry, no KVM_RUN ioctl
    assert rows(d["userspace_exits"]) == {"KVM_EXIT_IO": (3, 0, 0, 0, 0), "KVM_EXIT_MMIO": (1, 0, 0, 0, 0),
                                          "KVM_EXIT_HLT": (1, 0, 0, 0, 0)}
    missing = {m["figure"]: m for m in d["missing"]}
    rt = missing["userspace round trips (the VMM's time per KVM_EXIT_*)"]
    assert rt["events"] == [f"syscalls:sys_enter_ioctl ({KVM_RUN_FILTER})", "kvm:kvm_entry"] and rt["recordable"]
    # and the exits: this capture has none either
    assert missing["exits, exit reasons and exit latencies"]["events"] == ["kvm:kvm_exit", "kvm:kvm_entry"]
    how = d["how_to_record"]
    assert f"echo '{KVM_RUN_FILTER}' > events/syscalls/sys_enter_ioctl/filter" in how["ftrace"]
    assert any(f"--filter '{KVM_RUN_FILTER}'" in c for c in how["perf"]) and "ftrace" in how["note"]
    t = text(USERSPACE_ONLY)
    assert "Missing figures:" in t and "neither kvm_entry nor KVM_RUN ioctl entries" in t
    assert "To record them with ftrace (as root):" in t and "cmd == 0xae80" in t
    # a capture with round trips does not ask for them
    assert not any("round trips" in m["figure"] for m in report(TWO_VMS)["missing"])


def test_capture_with_everything_recordable_has_no_recording_advice():
    lines = [
        "q-7 (7) [000] d....  1.000000: kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 info2 0x0 intr_info "
        "0x00000000 error_code 0x00000000 requests 0x0000000000000001\n",
        "q-7 (7) [000] d....  1.000001: kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 a2 0x0 a3 0x0\n",
        "q-7 (7) [000] d....  1.000002: kvm_entry: vcpu 0, rip 0x1\n",
        "q-7 (7) [000] d....  1.000003: kvm_userspace_exit: reason KVM_EXIT_IO (2)\n",
        "q-7 (7) [000] d....  1.000004: kvm_entry: vcpu 0, rip 0x1\n",
    ]
    from kvmtop.offline.report import report_to_dict

    d = report_to_dict(import_lines(lines))
    assert d["missing"] == [] and d["how_to_record"] is None


# --------------------------------------------------------------------------- perf-prof lines


def test_perf_prof_lines_from_the_issue_are_read():
    # the layout quoted in the issue (perf-prof kvm-exit --than, OpenCloudOS): wall-clock date and
    # time, comm, tid, flags, [cpu], trace time; its interval summaries are prose
    lines = [
        "2022-04-22 17:39:26.535148            <...> 126953 .... [078] 96822671.255015: kvm:kvm_exit: "
        "reason APIC_WRITE rip 0xfffff801b782acff info 300 0\n",
        "2022-04-22 17:39:26.535253            <...> 126953 d... [074] 96822671.266643: kvm:kvm_entry: vcpu 0\n",
        "2022-04-22 17:39:26.894654 \n",
        "kvm-exit latency\n",
        "exit_reason             calls        total(us)   min(us)   avg(us)      max(us)  %gsys\n",
        "APIC_WRITE               1481        22191.956     0.620    14.984    11628.216 100.00\n",
    ]
    imp = import_lines(lines, slowest=1)
    p = imp.parser
    assert (p.events, p.skipped, p.bad_count) == (2, 4, 0)
    assert p.threads[126953].comm == "<...>"
    from kvmtop.offline.report import report_to_dict

    d = report_to_dict(imp)
    # .255015 -> .266643 on another CPU: 11.628 ms, the APIC_WRITE perf-prof printed as over 11 ms
    (slow,) = d["slowest"]["exits"]
    assert (slow["name"], slow["latency_ns"], slow["tid"], slow["vcpu"]) == ("APIC_WRITE", 11628000, 126953, 0)


def test_perf_prof_layout_of_a_real_capture_gives_the_same_figures():
    d, ftrace = report(PERF_PROF), report(TWO_VMS)
    # 5 header lines, then the 36 events of the ftrace capture re-printed
    assert (d["lines"], d["events"], d["skipped_lines"], d["bad_line_count"]) == (41, 36, 5, 0)
    for key in ("userspace_exits", "pio", "mmio", "unmatched_userspace_exits"):
        assert d[key] == ftrace[key]
    # no tgid column: both "CPU 0/KVM" threads group into one VM, pid = the lower tid
    assert [(v["pid"], v["name"], len(v["threads"])) for v in d["vms"]] == [(26404, "CPU N/KVM", 2)]
    assert [t["pid"] for t in d["threads"]] == [None, None]


def test_the_perf_prof_file_is_the_re_print_its_header_names():
    import datetime

    from kvmtop.testing.ftrace_capture import to_perf_prof_layout

    with open(TWO_VMS) as f:
        source = f.read()
    with open(PERF_PROF) as f:
        derived = f.read()
    assert "to_perf_prof_layout(text, datetime(2024, 6, 1, 12, 0, 0))" in derived
    body = "".join(line for line in derived.splitlines(True) if not line.startswith("#"))
    assert to_perf_prof_layout(source, datetime.datetime(2024, 6, 1, 12, 0, 0)) == body
