"""The pairing state machine on synthetic captures (rules: kvmtop/offline/pairing.py)."""

from __future__ import annotations

from kvmtop.decode import ISA_VMX
from kvmtop.model import Latency
from kvmtop.offline.pairing import Aggregates, Pairing, acc_latency, add_latency, new_acc
from kvmtop.offline.report import report_to_dict
from kvmtop.offline.trace_import import import_lines

HLT = (ISA_VMX, 12)
IO = (ISA_VMX, 30)
MSR_WRITE = (ISA_VMX, 32)
VMCALL = (ISA_VMX, 18)


def run(text: str) -> tuple[dict, Aggregates]:
    imp = import_lines(text.splitlines(keepends=True))
    return report_to_dict(imp), imp.agg


def ex(tid: int, cpu: int, ts: str, reason: str = "HLT", vcpu: int = 0, extra: str = "") -> str:
    return (f" CPU {vcpu}/KVM-{tid}  [{cpu:03d}] d....  {ts}: kvm_exit: vcpu {vcpu} reason {reason} rip 0x1 "
            f"info1 0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 error_code 0x00000000{extra}\n")


def en(tid: int, cpu: int, ts: str, vcpu: int = 0) -> str:
    return f" CPU {vcpu}/KVM-{tid}  [{cpu:03d}] d....  {ts}: kvm_entry: vcpu {vcpu}, rip 0x1\n"


def line(tid: int, cpu: int, ts: str, event: str, vcpu: int = 0) -> str:
    return f" CPU {vcpu}/KVM-{tid}  [{cpu:03d}] .....  {ts}: {event}\n"


def reason(d: dict, name: str) -> dict:
    return next(r for r in d["reasons"] if r["name"] == name)


def test_accumulator_matches_latency_from_values():
    values = [0, 1, 7, 8, 9, 1000, 123456, 2**33, 2**40]
    acc = new_acc()
    for v in values:
        add_latency(acc, v)
    assert acc_latency(acc) == Latency.from_values(values)


def test_interleaved_threads_pair_per_thread():
    d, agg = run(
        ex(1, 0, "10.000000", "HLT")
        + ex(2, 1, "10.000001", "IO_INSTRUCTION", vcpu=1)
        + en(2, 1, "10.000004", vcpu=1)       # thread 2: 3 µs
        + ex(2, 1, "10.000005", "MSR_WRITE", vcpu=1)
        + en(1, 0, "10.000010")               # thread 1: 10 µs
        + en(2, 1, "10.000006", vcpu=1)       # thread 2: 1 µs (out of order in the file)
    )
    assert reason(d, "HLT")["latency_ns"]["sum"] == 10_000
    assert reason(d, "IO_INSTRUCTION")["latency_ns"]["sum"] == 3_000
    assert reason(d, "MSR_WRITE")["latency_ns"]["sum"] == 1_000
    assert d["unmatched"] == {"exits": 0, "entries": 0}
    assert [(t["tid"], t["vcpu"], t["exits"]) for t in d["threads"]] == [(1, 0, 1), (2, 1, 2)]


def test_migrated_thread_pairs_across_cpus():
    d, _ = run(ex(7, 3, "1.000000") + en(7, 5, "1.000250"))  # exit on CPU 3, entry on CPU 5
    assert reason(d, "HLT")["latency_ns"] == {"count": 1, "min": 250_000, "max": 250_000, "sum": 250_000,
                                              "p50": 250_000, "p90": 250_000, "p99": 250_000, "p999": 250_000}


def test_unmatched_exits_and_entries():
    d, _ = run(
        en(1, 0, "1.000000")                 # entry with no exit: unmatched entry
        + ex(1, 0, "1.000001", "HLT")        # left unmatched by the next exit
        + ex(1, 0, "1.000002", "IO_INSTRUCTION")
        + en(1, 0, "1.000005")               # pairs the IO exit: 3 µs
        + ex(1, 0, "1.000006", "MSR_WRITE")  # pending at the end: unmatched
    )
    assert d["unmatched"] == {"exits": 2, "entries": 1}
    assert reason(d, "HLT")["count"] == 1 and reason(d, "HLT")["latency_ns"]["count"] == 0
    assert reason(d, "IO_INSTRUCTION")["latency_ns"]["sum"] == 3_000
    assert reason(d, "MSR_WRITE")["count"] == 1 and reason(d, "MSR_WRITE")["latency_ns"]["count"] == 0


def test_entry_before_its_exit_is_no_latency():
    # clock skew between CPUs: the entry is stamped before the exit
    d, _ = run(ex(1, 0, "1.000010") + en(1, 1, "1.000005"))
    assert d["unmatched"] == {"exits": 1, "entries": 1}
    assert reason(d, "HLT")["latency_ns"]["count"] == 0


def test_userspace_round_trip_ends_at_entry_or_kvm_run():
    d, agg = run(
        ex(1, 0, "1.000000", "IO_INSTRUCTION")
        + line(1, 0, "1.000002", "kvm_userspace_exit: reason KVM_EXIT_IO (2)")
        + en(1, 0, "1.000010")                                    # IO round trip: 8 µs, exit: 10 µs
        + ex(1, 0, "1.000020", "EPT_MISCONFIG")
        + line(1, 0, "1.000021", "kvm_userspace_exit: reason KVM_EXIT_MMIO (6)")
        + line(1, 0, "1.000025", "sys_enter_ioctl: fd: 0x0000000c, cmd: 0x0000ae80, arg: 0x00000000")
        + en(1, 0, "1.000030")                                    # MMIO round trip ended at KVM_RUN: 4 µs
        + line(1, 0, "1.000040", "kvm_userspace_exit: reason KVM_EXIT_IO (2)")
        + line(1, 0, "1.000041", "kvm_userspace_exit: reason restart (4)")  # leaves the IO one unmatched
        + line(1, 0, "1.000045", "sys_ioctl(fd: c, cmd: ae80, arg: 0)")     # restart: 4 µs
        + line(1, 0, "1.000050", "kvm_userspace_exit: reason KVM_EXIT_HLT (5)")  # pending at the end
    )
    us = {u["name"]: u for u in d["userspace_exits"]}
    assert us["KVM_EXIT_IO"]["count"] == 2 and us["KVM_EXIT_IO"]["latency_ns"]["count"] == 1
    assert us["KVM_EXIT_IO"]["latency_ns"]["sum"] == 8_000
    assert us["KVM_EXIT_MMIO"]["latency_ns"]["sum"] == 4_000
    assert us["restart"]["code"] == 0x80000004 and us["restart"]["latency_ns"]["sum"] == 4_000
    assert us["KVM_EXIT_HLT"]["latency_ns"]["count"] == 0
    assert d["unmatched_userspace_exits"] == 2
    assert reason(d, "IO_INSTRUCTION")["latency_ns"]["sum"] == 10_000
    assert reason(d, "EPT_MISCONFIG")["latency_ns"]["sum"] == 10_000


def test_hypercall_takes_its_exits_latency():
    d, _ = run(
        ex(1, 0, "1.000000", "VMCALL")
        + line(1, 0, "1.000001", "kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 a2 0x0 a3 0x0")
        + en(1, 0, "1.000004")                                      # KICK_CPU: 4 µs
        + line(1, 0, "1.000005", "kvm_hypercall: nr 0xb a0 0x0 a1 0x0 a2 0x0 a3 0x0")  # no pending exit
        + ex(1, 0, "1.000006", "VMCALL")
        + line(1, 0, "1.000007", "kvm_hypercall: nr 0x5 a0 0x0 a1 0x1 a2 0x0 a3 0x0")
        + ex(1, 0, "1.000008", "HLT")                               # leaves that VMCALL unmatched
        + en(1, 0, "1.000009")                                      # the HLT's, not the hypercall's
    )
    hc = {h["name"]: h for h in d["hypercalls"]}
    assert hc["KVM_HC_KICK_CPU"]["count"] == 2 and hc["KVM_HC_KICK_CPU"]["nr"] == 5
    assert hc["KVM_HC_KICK_CPU"]["latency_ns"] == {"count": 1, "min": 4000, "max": 4000, "sum": 4000,
                                                   "p50": 4000, "p90": 4000, "p99": 4000, "p999": 4000}
    assert hc["KVM_HC_SCHED_YIELD"]["count"] == 1 and hc["KVM_HC_SCHED_YIELD"]["latency_ns"]["count"] == 0
    assert reason(d, "HLT")["latency_ns"]["sum"] == 1000


def test_request_bits_count_exits_with_the_bit_set():
    def req(bits: int) -> str:
        return f" requests 0x{bits:016x}"

    d, _ = run(
        ex(1, 0, "1.000000", extra=req(0b1))          # TLB_FLUSH
        + en(1, 0, "1.000001")
        + ex(1, 0, "1.000002", extra=req(0b1 | 1 << 12))  # TLB_FLUSH + CLOCK_UPDATE (arch 4)
        + en(1, 0, "1.000003")
        + ex(1, 0, "1.000004", extra=req(0))
        + en(1, 0, "1.000005")
        + ex(1, 0, "1.000006", extra=req(1 << 12))
        + en(1, 0, "1.000007")
    )
    assert d["requests"] == [
        {"bit": 0, "name": "TLB_FLUSH", "count": 2, "share": 0.5},
        {"bit": 12, "name": "CLOCK_UPDATE", "count": 2, "share": 0.5},
    ]


def test_pio_and_mmio_latency_to_next_entry():
    d, _ = run(
        ex(1, 0, "1.000000", "IO_INSTRUCTION")
        + line(1, 0, "1.000001", "kvm_pio: pio_write at 0x70 size 1 count 1 val 0x8f")
        + en(1, 0, "1.000003")
        + ex(1, 0, "1.000004", "EPT_MISCONFIG")
        + line(1, 0, "1.000005", "kvm_mmio: mmio unsatisfied-read len 4 gpa 0xfed00000 val 0x0")
        + line(1, 0, "1.000009", "kvm_mmio: mmio read len 4 gpa 0xfed00000 val 0x1")  # its completion
        + en(1, 0, "1.000010")
    )
    assert d["pio"] == [{"port": 0x70, "dir": "OUT", "name": "0x70:POUT", "count": 1,
                         "latency_ns": Latency.from_values([2000]).to_json()}]
    assert d["mmio"] == [{"gpa": 0xFED00000, "dir": "R", "name": "0xfed00000:R", "count": 1,
                          "latency_ns": Latency.from_values([5000]).to_json()}]


def test_state_is_bounded_by_threads():
    def gen():
        for i in range(20_000):
            tid = 100 + i % 4
            yield ex(tid, 0, f"1.{2 * i:06d}")
            yield en(tid, 0, f"1.{2 * i + 1:06d}")

    imp = import_lines(gen())
    assert imp.parser.events == 40_000 and len(imp.tids) == 4
    assert acc_latency(Aggregates.by_key(imp.agg.reasons)[HLT]) == Latency.from_values([1000] * 20_000)


def test_windows_put_pairs_in_the_window_of_their_exit():
    text = (
        ex(1, 0, "5.999999")                # window 5, paired in window 6: 2 µs, counted in window 5
        + en(1, 0, "6.000001")
        + en(1, 0, "6.000002")              # unmatched entry: window 6
        + ex(1, 0, "8.000000", "IO_INSTRUCTION")  # window 8, pending at the end
    )
    imp = import_lines(text.splitlines(keepends=True), window_s=1.0)
    assert [i for i, _ in imp.windows] == [5, 6, 8]
    w5, w6, w8 = (a for _, a in imp.windows)
    assert w5.reasons[(1, HLT)][:5] == [1, 1, 2000, 2000, 2000]
    assert w6.reasons == {} and w6.unmatched_entries == 1
    assert w8.reasons[(1, IO)][0] == 1 and w8.unmatched_exits == 1
    whole = report_to_dict(imp)  # windows merge back into the whole capture
    assert whole["unmatched"] == {"exits": 1, "entries": 1}
    assert reason(whole, "HLT")["latency_ns"]["sum"] == 2000


def test_pairing_run_can_continue():
    from kvmtop.offline.trace_lines import ENTRY, EXIT

    p = Pairing()
    p.run([(EXIT, 1, 100, HLT, None, None)])
    p.run([(ENTRY, 1, 350, None)])
    agg = p.finish()
    assert agg.reasons[(1, HLT)][:5] == [1, 1, 250, 250, 250]


def test_unmatched_counts_per_thread_and_event_span_per_window():
    text = (
        en(1, 0, "6.000002")                # 1: unmatched entry
        + ex(2, 1, "6.000003")              # 2: exit ...
        + ex(2, 1, "6.000005")              # ... a second one before an entry: the first is unmatched
        + en(2, 1, "6.000004")              # stamped before its pending exit: both unmatched
        + line(3, 0, "6.500000", "kvm_userspace_exit: reason KVM_EXIT_IO (2)")  # 3: never answered
        + ex(1, 0, "7.250000")              # window 7, pending at the end
    )
    imp = import_lines(text.splitlines(keepends=True), window_s=1.0)
    w6, w7 = (a for _, a in imp.windows)
    # [exits, entries, userspace exits] per thread; each counted in the window where it is found
    assert w6.unmatched_by_tid == {1: [0, 1, 0], 2: [2, 1, 0]}
    assert w7.unmatched_by_tid == {1: [1, 0, 0], 3: [0, 0, 1]}  # the end of the capture is in window 7
    assert (w6.unmatched_exits, w6.unmatched_entries, w7.unmatched_userspace) == (2, 2, 1)
    # each window's earliest and latest event (file order is not time order: .000005 before .000004)
    assert (w6.first_ts, w6.last_ts) == (6_000_002_000, 6_500_000_000)
    assert (w7.first_ts, w7.last_ts) == (7_250_000_000, 7_250_000_000)


def test_slowest_keeps_n_per_thread_and_the_first_of_ties():
    from kvmtop.offline.trace_lines import ENTRY, EXIT, RUN, USERSPACE

    p = Pairing(slowest=2)
    events = []
    for i, d in enumerate([5, 9, 9, 3, 9]):  # thread 1: exits of 5, 9, 9, 3, 9 ns
        events += [(EXIT, 1, 100 * i, HLT, None, None), (ENTRY, 1, 100 * i + d, None)]
    events += [(USERSPACE, 2, 1000, 2), (RUN, 2, 1040), (USERSPACE, 2, 2000, 6), (ENTRY, 2, 2070, None)]
    p.run(events)
    p.finish()
    # the two 9 ns exits that came first stay (a later equal one does not replace them)
    assert sorted(p.slow_exits[1]) == [(9, 100, HLT), (9, 200, HLT)]
    assert sorted(p.slow_userspace[2]) == [(40, 1000, 2, RUN), (70, 2000, 6, ENTRY)]
    assert Pairing().slow_exits == {} and not Pairing().slowest
