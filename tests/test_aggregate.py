"""Intervals → Snapshots: roll-ups, rates, names, shares, history, pid reuse."""

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.model import Interval, Latency, Stat, ThreadInterval, VmIdentity

HLT, EPT, IO, MMIO = (1, 12), (1, 48), 2, 6


def thread(pid, tid, hlt=0, ept=0, io=0, requests=None):
    reasons = {}
    if hlt:
        reasons[HLT] = Stat(hlt, Latency.from_values([50_000] * hlt))
    if ept:
        reasons[EPT] = Stat(ept, Latency.from_values([900] * ept))
    userspace = {IO: Stat(io, Latency.from_values([3_000] * io))} if io else {}
    return ThreadInterval(pid=pid, tid=tid, vcpu_id=tid % 10, reasons=reasons, userspace=userspace,
                          requests=requests or {})


def interval(threads, vms, dt=2.0, t=100.0):
    return Interval(time=t, interval_s=dt, threads=tuple(threads), vms=vms, kernel="6.18.0")


def ident(pid, name, start=1, tids=()):
    return VmIdentity(pid, name, start, {tid: i for i, tid in enumerate(tids)},
                      {t: f"CPU {i}/KVM" for i, t in enumerate(tids)})


def test_vm_and_host_rollups_rates_and_names():
    b = SnapshotBuilder()
    snap = b.build(interval(
        [thread(10, 11, hlt=4, ept=6, io=2, requests={0: 3}), thread(10, 12, ept=10), thread(20, 21, hlt=2)],
        {10: ident(10, "web", tids=(11, 12)), 20: ident(20, "db", tids=(21,))},
    ))
    web = snap.vm(10)
    assert web.name == "web" and web.exits == 20 and web.exits_per_s == 10.0
    assert [r.name for r in web.reasons] == ["EPT_VIOLATION", "HLT"]
    assert web.top_reason_share == 16 / 20
    assert [v.index for v in web.vcpus] == [0, 1]
    assert web.vcpus[0].comm == "CPU 0/KVM"
    assert web.userspace_exits[0].name == "KVM_EXIT_IO" and web.userspace_per_s == 1.0
    assert web.requests[0].name == "TLB_FLUSH" and web.requests[0].share == 3 / 20
    assert snap.host.exits == 22 and snap.host.vm_count == 2 and snap.host.vcpu_count == 3
    assert snap.host.reason(HLT).count == 6
    assert snap.host.reason(HLT).latency.count == 6


def test_idle_vm_is_listed_and_exited_vm_disappears():
    b = SnapshotBuilder()
    first = b.build(interval([thread(10, 11, hlt=1)], {10: ident(10, "a", tids=(11,)), 30: ident(30, "idle")}))
    assert {v.pid for v in first.vms} == {10, 30}
    assert first.vm(30).exits == 0
    second = b.build(interval([], {30: ident(30, "idle")}))
    assert [v.pid for v in second.vms] == [30]


def test_history_is_per_interval_rates_oldest_first_and_reused_pid_starts_fresh():
    b = SnapshotBuilder(history_len=4)
    for n in (1, 2, 3, 4, 5):
        snap = b.build(interval([thread(10, 11, hlt=n * 2)], {10: ident(10, "a", tids=(11,))}))
    assert snap.vm(10).history == (2.0, 3.0, 4.0, 5.0)  # 2n exits over 2 s, last 4 intervals
    assert snap.vm(10).reason_history(HLT) == (2.0, 3.0, 4.0, 5.0)
    assert snap.host.history == (2.0, 3.0, 4.0, 5.0)
    # Same pid, new start time: another VM, whose history must not include the old one.
    snap = b.build(interval([thread(10, 11, hlt=2)], {10: ident(10, "b", start=99, tids=(11,))}))
    assert snap.vm(10).name == "b"
    assert snap.vm(10).history[-1] == 1.0 and sum(snap.vm(10).history[:-1]) == 0


def test_unknown_codes_are_shown_as_numbers_not_dropped():
    t = ThreadInterval(pid=1, tid=2, reasons={(1, 0x4242): Stat(1)}, userspace={77: Stat(1)}, hypercalls={99: Stat(1)},
                       requests={63: 1})
    snap = SnapshotBuilder().build(interval([t], {}))
    vm = snap.vm(1)
    assert vm.name == "pid 1"
    assert "4242" in vm.reasons[0].name
    assert "77" in vm.userspace_exits[0].name
    assert vm.hypercalls[0].name == "99"
    assert vm.requests[0].name == "bit63"


def test_snapshot_is_immutable():
    snap = SnapshotBuilder().build(interval([thread(10, 11, hlt=1)], {}))
    try:
        snap.vms[0].name = "x"
    except AttributeError:
        pass
    else:
        raise AssertionError("snapshot fields must not be assignable")
