"""A deterministic synthetic source: plausible KVM guests for the demo, tests and screenshots.

Every interval is a pure function of ``seed`` and the call count: the timestamp is a
fixed epoch plus ``seq * interval_s`` (never the wall clock), and the random numbers come
from a generator seeded with ``(seed, seq)``. Rates follow a slow sine per VM plus rare
bursts, so sparklines move. Latency histograms are built straight from bucket
probabilities of a log-normal (kvmtop.sources.demo_latency, pooled by count). Intervals
come out as columns: each distinct vCPU workload is stored once
(kvmtop.sources.demo_columns) and an interval is one gather of those rows, its vCPUs'
draws and levels computed on arrays (kvmtop.sources.demo_draws), which keeps 1,000 VMs x
8 vCPUs cheap. tests/test_demo_golden.py holds the numbers to what they have always been.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..columns import CAT_HYPERCALL, CAT_REASON, CAT_USERSPACE
from ..decode import HYPERCALLS, ISA_VMX, KVM_EXITS, VMX_REASONS, request_bit
from ..model import NOTE_NO_EXITS, CollectorStatus, Interval, VmIdentity
from .demo_columns import Templates
from .demo_draws import level_of, level_steps, random_doubles
from .demo_latency import LatencyKey, latencies, quantize

EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: demo time starts here

KERNEL = "6.18.0-demo"


def _codes(table: Mapping[int, str], *names: str) -> tuple[int, ...]:
    """The codes of ``names`` in a decode table (the numbers are defined there, once)."""
    by_name = {name: code for code, name in table.items()}
    return tuple(by_name[n] for n in names)


# VMX basic exit reasons, KVM_EXIT_* codes and hypercall numbers used below.
(EXTERNAL_INTERRUPT, INTERRUPT_WINDOW, CPUID, HLT, VMCALL, CR_ACCESS, IO_INSTRUCTION, MSR_READ, MSR_WRITE,
 PAUSE_INSTRUCTION, APIC_ACCESS, EOI_INDUCED, EPT_VIOLATION, EPT_MISCONFIG, PREEMPTION_TIMER, XSETBV,
 APIC_WRITE, RDTSCP) = _codes(
    VMX_REASONS, "EXTERNAL_INTERRUPT", "INTERRUPT_WINDOW", "CPUID", "HLT", "VMCALL", "CR_ACCESS",
    "IO_INSTRUCTION", "MSR_READ", "MSR_WRITE", "PAUSE_INSTRUCTION", "APIC_ACCESS", "EOI_INDUCED",
    "EPT_VIOLATION", "EPT_MISCONFIG", "PREEMPTION_TIMER", "XSETBV", "APIC_WRITE", "RDTSCP")
KVM_EXIT_IO, KVM_EXIT_MMIO, KVM_EXIT_X86_WRMSR = _codes(KVM_EXITS, "KVM_EXIT_IO", "KVM_EXIT_MMIO",
                                                        "KVM_EXIT_X86_WRMSR")
KICK_CPU, SEND_IPI, SCHED_YIELD = _codes(HYPERCALLS, "KVM_HC_KICK_CPU", "KVM_HC_SEND_IPI", "KVM_HC_SCHED_YIELD")

# vcpu->requests bits, as numbered in the demo's kernel.
(REQ_TLB_FLUSH, REQ_UNBLOCK, REQ_CLOCK_UPDATE, REQ_EVENT, REQ_STEAL_UPDATE, REQ_NMI, REQ_PMU,
 REQ_TLB_FLUSH_CURRENT) = (request_bit(n, KERNEL) for n in (
    "TLB_FLUSH", "UNBLOCK", "CLOCK_UPDATE", "EVENT", "STEAL_UPDATE", "NMI", "PMU", "TLB_FLUSH_CURRENT"))


# --------------------------------------------------------------------------- workload profiles


@dataclass(frozen=True)
class Mix:
    """One exit reason of a profile: rate per vCPU, log-normal latency (median ns, sigma)."""

    rate: float
    median_ns: float
    sigma: float
    bursty: bool = False


@dataclass(frozen=True)
class Profile:
    names: tuple[str, ...]
    vcpus: tuple[int, ...]
    reasons: Mapping[int, Mix]
    userspace: Mapping[int, tuple[float, float, float]]  # code -> (share of source reason, median, sigma)
    hypercalls: Mapping[int, Mix]
    requests: Mapping[int, float]  # bit -> share of exits with the bit set
    period: float  # intervals per sine cycle


PROFILES: tuple[Profile, ...] = (
    Profile(  # a busy web server: interrupts, x2APIC/TSC-deadline MSR writes, virtio-net kicks
        names=("web-frontend", "nginx-edge", "api-gateway"),
        vcpus=(4, 8),
        reasons={
            EXTERNAL_INTERRUPT: Mix(5200, 1_400, 0.5, bursty=True),
            MSR_WRITE: Mix(4100, 1_100, 0.35),
            HLT: Mix(2400, 180_000, 1.3),
            EPT_MISCONFIG: Mix(900, 4_800, 0.6, bursty=True),
            IO_INSTRUCTION: Mix(120, 9_000, 0.7),
            PREEMPTION_TIMER: Mix(650, 900, 0.4),
            EPT_VIOLATION: Mix(140, 3_500, 0.9),
            CPUID: Mix(6, 850, 0.25),
        },
        userspace={KVM_EXIT_IO: (0.9, 24_000, 0.6), KVM_EXIT_MMIO: (0.05, 38_000, 0.7)},
        hypercalls={SEND_IPI: Mix(260, 2_200, 0.5), KICK_CPU: Mix(40, 1_800, 0.4)},
        requests={REQ_EVENT: 0.34, REQ_TLB_FLUSH: 0.03, REQ_CLOCK_UPDATE: 0.004, REQ_UNBLOCK: 0.05,
                  REQ_TLB_FLUSH_CURRENT: 0.02},
        period=37.0,
    ),
    Profile(  # a database: storage MMIO (virtio-blk notify), EPT faults while the buffer pool grows
        names=("db-postgres", "mysql-replica", "mongo-shard"),
        vcpus=(8, 6, 4),
        reasons={
            EPT_VIOLATION: Mix(3100, 4_200, 0.9, bursty=True),
            EPT_MISCONFIG: Mix(2600, 5_600, 0.6),
            EXTERNAL_INTERRUPT: Mix(2100, 1_500, 0.5),
            HLT: Mix(1700, 420_000, 1.2),
            MSR_WRITE: Mix(1900, 1_150, 0.35),
            IO_INSTRUCTION: Mix(60, 11_000, 0.6),
            PAUSE_INSTRUCTION: Mix(280, 650, 0.3, bursty=True),
            XSETBV: Mix(12, 1_300, 0.2),
        },
        userspace={KVM_EXIT_MMIO: (0.12, 46_000, 0.8), KVM_EXIT_IO: (0.95, 21_000, 0.5)},
        hypercalls={KICK_CPU: Mix(90, 1_900, 0.4), SCHED_YIELD: Mix(35, 2_600, 0.6)},
        requests={REQ_EVENT: 0.22, REQ_TLB_FLUSH: 0.08, REQ_TLB_FLUSH_CURRENT: 0.05,
                  REQ_CLOCK_UPDATE: 0.003, REQ_UNBLOCK: 0.04},
        period=53.0,
    ),
    Profile(  # an idle desktop/utility VM: mostly HLT with long sleeps, timer ticks
        names=("win11-desktop", "jump-host", "monitoring"),
        vcpus=(2, 1, 2),
        reasons={
            HLT: Mix(620, 2_400_000, 1.1),
            EXTERNAL_INTERRUPT: Mix(430, 1_600, 0.5),
            MSR_WRITE: Mix(610, 1_050, 0.3),
            APIC_WRITE: Mix(160, 1_400, 0.35),
            EPT_MISCONFIG: Mix(45, 6_200, 0.6),
            CR_ACCESS: Mix(30, 900, 0.3),
            IO_INSTRUCTION: Mix(25, 14_000, 0.8),
        },
        userspace={KVM_EXIT_IO: (1.0, 31_000, 0.7), KVM_EXIT_MMIO: (0.2, 52_000, 0.8)},
        hypercalls={},
        requests={REQ_EVENT: 0.41, REQ_CLOCK_UPDATE: 0.02, REQ_UNBLOCK: 0.12},
        period=71.0,
    ),
    Profile(  # an overcommitted build box: spinning vCPUs (PAUSE), PV spinlock kicks, yields
        names=("ci-runner", "build-farm", "gitlab-worker"),
        vcpus=(8, 8, 4),
        reasons={
            PAUSE_INSTRUCTION: Mix(5200, 700, 0.35, bursty=True),
            EXTERNAL_INTERRUPT: Mix(3900, 1_450, 0.5),
            EPT_VIOLATION: Mix(2600, 3_100, 1.0, bursty=True),
            MSR_WRITE: Mix(2900, 1_100, 0.35),
            HLT: Mix(900, 95_000, 1.4),
            VMCALL: Mix(420, 2_300, 0.5),
            PREEMPTION_TIMER: Mix(800, 950, 0.4),
            CPUID: Mix(220, 880, 0.25),
            EPT_MISCONFIG: Mix(300, 5_100, 0.6),
        },
        userspace={KVM_EXIT_MMIO: (0.04, 40_000, 0.7)},
        hypercalls={KICK_CPU: Mix(310, 1_700, 0.45), SCHED_YIELD: Mix(120, 3_100, 0.6),
                    SEND_IPI: Mix(90, 2_400, 0.5)},
        requests={REQ_EVENT: 0.28, REQ_TLB_FLUSH: 0.11, REQ_TLB_FLUSH_CURRENT: 0.07,
                  REQ_UNBLOCK: 0.06, REQ_STEAL_UPDATE: 0.01},
        period=29.0,
    ),
    Profile(  # a Kubernetes node: timers, IPIs, a bit of everything
        names=("k8s-node", "kube-worker", "etcd"),
        vcpus=(4, 6, 2),
        reasons={
            MSR_WRITE: Mix(3300, 1_120, 0.35),
            EXTERNAL_INTERRUPT: Mix(2700, 1_500, 0.5),
            HLT: Mix(2100, 260_000, 1.3),
            PREEMPTION_TIMER: Mix(1200, 920, 0.4),
            EPT_VIOLATION: Mix(700, 3_800, 0.9),
            EPT_MISCONFIG: Mix(500, 5_300, 0.6),
            INTERRUPT_WINDOW: Mix(180, 800, 0.3),
            MSR_READ: Mix(90, 1_000, 0.3),
            RDTSCP: Mix(40, 700, 0.2),
        },
        userspace={KVM_EXIT_MMIO: (0.06, 36_000, 0.7)},
        hypercalls={SEND_IPI: Mix(380, 2_100, 0.5), KICK_CPU: Mix(60, 1_900, 0.4)},
        requests={REQ_EVENT: 0.3, REQ_TLB_FLUSH: 0.05, REQ_CLOCK_UPDATE: 0.006, REQ_NMI: 0.001,
                  REQ_PMU: 0.002, REQ_UNBLOCK: 0.07},
        period=43.0,
    ),
    Profile(  # a cache: small, hot, interrupt driven
        names=("redis-cache", "memcached", "haproxy"),
        vcpus=(2, 4, 2),
        reasons={
            EXTERNAL_INTERRUPT: Mix(4300, 1_350, 0.45, bursty=True),
            MSR_WRITE: Mix(2500, 1_080, 0.3),
            HLT: Mix(3100, 60_000, 1.2),
            EPT_MISCONFIG: Mix(1300, 4_700, 0.55),
            EOI_INDUCED: Mix(350, 1_250, 0.3),
            IO_INSTRUCTION: Mix(20, 9_500, 0.6),
        },
        userspace={KVM_EXIT_IO: (1.0, 19_000, 0.5), KVM_EXIT_MMIO: (0.03, 34_000, 0.6)},
        hypercalls={SEND_IPI: Mix(150, 2_000, 0.45)},
        requests={REQ_EVENT: 0.37, REQ_CLOCK_UPDATE: 0.002, REQ_UNBLOCK: 0.09},
        period=23.0,
    ),
)

# Which exit reason feeds each userspace exit (an IO exit goes out as KVM_EXIT_IO...).
_USERSPACE_FROM = {KVM_EXIT_IO: IO_INSTRUCTION, KVM_EXIT_MMIO: EPT_MISCONFIG, KVM_EXIT_X86_WRMSR: MSR_WRITE}


# --------------------------------------------------------------------------- the source


@dataclass(frozen=True)
class _Vm:
    index: int
    profile: Profile
    identity: VmIdentity
    weight: float  # scales every rate of the VM
    phase: float
    vcpu_weight: tuple[float, ...]
    born: int  # seq of its first interval


class DemoSource:
    """Synthetic KVM guests. ``vms`` guests of up to ``max_vcpus`` vCPUs each.

    ``exits=False`` imitates a host where kvm_exit never fires (only userspace exits are
    measured). ``churn`` > 0 replaces the last guest with a new one every ``churn`` intervals.
    ``scale`` multiplies every rate; ``vcpus`` gives every guest that many vCPUs.
    """

    name = "demo"
    paced = True

    def __init__(self, seed: int = 0, vms: int = 6, *, max_vcpus: int = 8, interval_s: float = 1.0,
                 exits: bool = True, churn: int = 0, scale: float = 1.0, vcpus: int | None = None,
                 kernel: str = KERNEL):
        self.seed = seed
        self.vm_count = max(0, vms)
        self.max_vcpus = max(1, min(8, max_vcpus))
        self.interval_s = interval_s
        self.exits = exits
        self.churn = churn
        self.scale = scale
        self.vcpus = vcpus  # every guest gets this many vCPUs (the benchmark's 1,000 x 8)
        self.kernel = kernel
        self.seq = 0
        self._lock = threading.Lock()
        self._vms = [self._make_vm(i, 0) for i in range(self.vm_count)]
        self._templates: Templates | None = None  # the rows of every vCPU workload seen so far
        self._layout: _Layout | None = None

    # ------------------------------------------------------------------ Source protocol
    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def reset(self) -> None:
        """Counts are per interval already; the Feed's builder forgets the history."""

    def next_interval(self) -> Interval:
        with self._lock:
            self.seq += 1
            seq = self.seq
            if self.churn and self._vms and seq % self.churn == 0:
                self._vms[-1] = self._make_vm(self.vm_count - 1, seq // self.churn)
                self._layout = None
            if self._templates is None or self._templates.full:
                self._templates = Templates(_all_keys())
            templates = self._templates
            if self._layout is None:
                self._layout = _Layout(list(self._vms), self.scale)
            layout = self._layout
        rng = random.Random(self.seed * 1_000_003 + seq)
        draws = random_doubles(rng, layout.draws)
        blocks, poll = self._blocks(layout, seq, draws, templates)
        status = CollectorStatus(
            poll_ms=round(0.35 + 0.00009 * len(blocks) + poll * 0.2, 2),
            features={} if self.exits else {"exits": False, "requests": False, "hypercalls": False},
            notes=() if self.exits else (NOTE_NO_EXITS,),
        )
        return Interval(
            time=EPOCH + seq * self.interval_s,
            interval_s=self.interval_s,
            vms=layout.identities,
            status=status,
            kernel=self.kernel,
            columns=templates.columns(blocks, layout.tpid, layout.ttid, layout.tvcpu),
        )

    # ------------------------------------------------------------------ generation
    def _make_vm(self, index: int, generation: int) -> _Vm:
        r = random.Random((self.seed + 1) * 7919 + index * 104_729 + generation * 15_485_863)
        profile = PROFILES[index % len(PROFILES)]
        base = profile.names[(index // len(PROFILES)) % len(profile.names)]
        number = index // (len(PROFILES) * len(profile.names)) + 1 + generation
        name = f"{base}-{number:02d}"
        nvcpu = self.vcpus or min(self.max_vcpus, profile.vcpus[(index // len(PROFILES)) % len(profile.vcpus)])
        stride = 97 if nvcpu <= 40 else nvcpu + 60  # room for the vCPU threads' tids before the next guest
        pid = 2100 + index * stride + generation * 50_000 + r.randrange(0, 40)
        tids = [pid + 12 + k for k in range(nvcpu)]
        identity = VmIdentity(
            pid=pid,
            name=name,
            start_time=360_000 + index * 1_250 + generation * 100_000,
            vcpu_index={t: k for k, t in enumerate(tids)},
            comms={t: f"CPU {k}/KVM" for k, t in enumerate(tids)},
        )
        weights = tuple(round(r.uniform(0.45, 1.3), 3) for k in range(nvcpu))
        return _Vm(index, profile, identity, r.uniform(0.4, 1.5), r.uniform(0, 2 * math.pi), weights,
                   generation)

    def _blocks(self, layout: _Layout, seq: int, draws: np.ndarray, templates: Templates) -> tuple[np.ndarray, float]:
        """The block of each vCPU, and the interval's last draw (``draws``: what rng.random() gave, call by call)."""
        at = draws.item
        pos = 0
        bursts, starts = [], []
        for n in layout.nvcpu:
            if at(pos) < 0.06:  # a burst: then its size
                bursts.append(round(1.8 + at(pos + 1), 1))
                pos += 2
            else:
                bursts.append(1.0)
                pos += 1
            starts.append(pos)  # then a uniform(0.9, 1.1) per vCPU
            pos += n
        owner = layout.owner
        uniform = 0.9 + (1.1 - 0.9) * draws[np.array(starts, np.int64)[owner] + layout.local]
        angle = 2 * math.pi * seq
        wave = 1.0 + 0.45 * np.sin(angle / layout.period + layout.phase)

        def exact(k: int) -> float:  # vCPU k's multiplier as the scalar code had it (libm's sin)
            vm = layout.vms[owner[k]]
            w = 1.0 + 0.45 * math.sin(angle / vm.profile.period + vm.phase)
            return layout.base_weight.item(k) * w * uniform.item(k)

        steps = level_steps(layout.base_weight * wave[owner] * uniform, exact)
        burst10 = np.array([round(b * 10) for b in bursts], np.int64)
        codes = (steps * 32 + burst10[owner]) * 16 + layout.code_tail  # each (profile, step, burst, primary) its own
        found = templates.find(codes)
        missing = np.flatnonzero(found < 0)
        if len(missing):
            unknown = codes[missing].tolist()
            first: dict[int, int] = {}  # each new workload's first vCPU, in the order the vCPUs meet them
            for code, k in zip(unknown, missing.tolist()):
                first.setdefault(code, k)
            work = [self._workload(int(layout.profile[k]), level_of(int(steps[k])), bursts[owner[k]],
                                   k == layout.first[k]) for k in first.values()]
            templates.add_latencies([key for _, _, pooled in work for key in pooled], latencies)
            made = {code: templates.block(code, rows, requests) for code, (rows, requests, _) in zip(first, work)}
            found[missing] = [made[c] for c in unknown]
        return found, at(pos)

    def _workload(self, profile: int, level: float, burst: float, primary: bool) -> _Workload:
        """The rows of one vCPU of ``profile`` at ``level`` (what its maps would hold)."""
        p = PROFILES[profile]
        scale = level * self.interval_s
        counts = {}
        for code, mix in p.reasons.items():
            boost = _PRIMARY.get(code, 1.0) if primary else 1.0
            n = int(mix.rate * scale * boost * (burst if mix.bursty else 1.0))
            if n > 0:
                counts[code] = n
        reasons: list[_Row] = []
        userspace: list[_Row] = []
        hypercalls: list[_Row] = []
        requests = []

        def row(key: tuple[int, int, int], median: float, sigma: float, n: int) -> _Row:
            n = quantize(n)
            return key, n, (median, sigma, n)

        for code, (share, median, sigma) in p.userspace.items():
            n = int(counts.get(_USERSPACE_FROM[code], 0) * share)
            if n > 0:
                userspace.append(row((CAT_USERSPACE, 0, code), median, sigma, n))
        if self.exits:
            for code, n in counts.items():
                mix = p.reasons[code]
                reasons.append(row((CAT_REASON, ISA_VMX, code), mix.median_ns, mix.sigma, n))
            total = sum(r[1] for r in reasons)
            for bit, share in p.requests.items():
                n = int(total * share)
                if n > 0:
                    requests.append((bit, n))
            for nr, mix in p.hypercalls.items():
                n = int(mix.rate * scale)
                if n > 0:
                    hypercalls.append(row((CAT_HYPERCALL, 0, nr), mix.median_ns, mix.sigma, n))
        # the latency pool's order: userspace rows first, as the demo has always made them
        pooled = [r[2] for r in userspace + reasons + hypercalls]
        return reasons + userspace + hypercalls, requests, pooled


_Row = tuple[tuple[int, int, int], int, LatencyKey]  # (cat, isa, code), count, latency
_Workload = tuple[list[_Row], list[tuple[int, int]], list[LatencyKey]]  # rows, request bits, latencies to pool


class _Layout:
    """The guests' vCPUs as arrays, guests in order (made again when a guest is replaced)."""

    def __init__(self, vms: list[_Vm], scale: float):
        self.vms = vms
        self.identities = {vm.identity.pid: vm.identity for vm in vms}  # every interval's, until a guest changes
        self.nvcpu = [len(vm.vcpu_weight) for vm in vms]
        self.owner = np.repeat(np.arange(len(vms)), self.nvcpu)  # each vCPU's guest
        self.first = np.repeat(np.cumsum([0, *self.nvcpu])[:-1], self.nvcpu)  # its guest's vCPU 0
        self.local = np.arange(len(self.owner)) - self.first  # its index in the guest
        self.period = np.array([vm.profile.period for vm in vms])
        self.phase = np.array([vm.phase for vm in vms])
        self.base_weight = np.array([scale * vm.weight * w for vm in vms for w in vm.vcpu_weight])
        self.profile = np.repeat(np.array([vm.index % len(PROFILES) for vm in vms], np.int64), self.nvcpu)
        self.code_tail = self.profile * 2 + (self.local == 0)
        self.draws = len(self.owner) + 2 * len(vms) + 1  # at most: a burst and its size per guest, a poll time
        pid, tid, vcpu = [], [], []
        for vm in vms:
            for t, index in vm.identity.vcpu_index.items():
                pid.append(vm.identity.pid)
                tid.append(t)
                vcpu.append(index)
        self.tpid, self.ttid, self.tvcpu = np.array(pid, np.uint32), np.array(tid, np.uint32), np.array(vcpu, np.int64)


@lru_cache(maxsize=1)
def _all_keys() -> tuple[tuple[int, int, int], ...]:
    keys: set[tuple[int, int, int]] = set()
    for p in PROFILES:
        keys.update((CAT_REASON, ISA_VMX, code) for code in p.reasons)
        keys.update((CAT_USERSPACE, 0, code) for code in p.userspace)
        keys.update((CAT_HYPERCALL, 0, nr) for nr in p.hypercalls)
    return tuple(sorted(keys))


# vCPU 0 takes most device interrupts and port I/O (as with an unbalanced guest irqbalance).
_PRIMARY = {EXTERNAL_INTERRUPT: 2.2, IO_INSTRUCTION: 3.0, EPT_MISCONFIG: 1.6}
