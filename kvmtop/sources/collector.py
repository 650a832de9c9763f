"""The live source: kvmtop.bpf.c's maps, read and cleared once per interval, as Intervals.

Each ``next_interval()`` drains the stats, histogram and request maps (numpy, no object
per map key until the model is built), groups them per vCPU thread, names the VMs with
kvmtop.identity, and reports the collector's own health (drops, unmatched pairs, the
time the read took, which measurements have a source here). No Textual in here.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import replace

import numpy as np

from .. import histogram
from ..bpf import maps
from ..bpf.program import (
    COUNTERS,
    DEFAULT_MAX_KEYS,
    DROP_COUNTERS,
    KIND_HYPERCALL,
    KIND_USERSPACE,
    NO_VCPU_ID,
    Features,
    Program,
)
from ..errors import SourceError
from ..gc_policy import paused as gc_paused
from ..identity import IdentityCache, scan_kvm_processes, vcpu_index
from ..model import EMPTY_LATENCY, NOTE_NO_EXITS, CollectorStatus, Interval, Latency, Stat, ThreadInterval, VmIdentity

SCAN_EVERY_S = 5.0     # scan /proc for idle VMs and prune gone threads this often
PROC = "/proc"


def latency_from(sum_ns: int, min_ns: int, max_ns: int, buckets: tuple[tuple[int, int], ...]) -> Latency:
    """A Latency from a stats value and its histogram (count = the histogram's total)."""
    count = sum(c for _, c in buckets)
    if not count:
        return EMPTY_LATENCY
    if min_ns > max_ns:  # no stats value (it was dropped): bound by the buckets
        min_ns = histogram.bucket_bounds(buckets[0][0])[0]
        max_ns = histogram.bucket_bounds(buckets[-1][0])[1] - 1
        sum_ns = sum(histogram.bucket_mid(i) * c for i, c in buckets)
    return Latency(count=count, sum=sum_ns, min=min_ns, max=max_ns, buckets=buckets)


def _group_key(keys: np.ndarray) -> np.ndarray:
    """(tid, kind, code) in one u64: a tid is unique on the host and below 2**22, kind below 2**5."""
    return ((keys["tid"].astype(np.uint64) << np.uint64(37)) | (keys["kind"].astype(np.uint64) << np.uint64(32))
            | keys["code"].astype(np.uint64))


class _Thread:
    __slots__ = ("reasons", "userspace", "hypercalls", "requests")

    def __init__(self):
        self.reasons: dict = {}
        self.userspace: dict = {}
        self.hypercalls: dict = {}
        self.requests: dict = {}

    def put(self, kind: int, code: int, stat: Stat) -> None:
        if kind == KIND_USERSPACE:
            self.userspace[code] = stat
        elif kind == KIND_HYPERCALL:
            self.hypercalls[code] = stat
        else:
            self.reasons[(kind, code)] = stat


def build_threads(stat_keys: np.ndarray, stat_vals: np.ndarray, hist_keys: np.ndarray, hist_counts: np.ndarray,
                  req_keys: np.ndarray, req_counts: np.ndarray) -> dict[tuple[int, int], _Thread]:
    """Group drained map rows per (pid, tid); sorting and matching are done in numpy."""
    # histogram rows: sorted by (tid, kind, code, bucket), one group per stats key
    gh = _group_key(hist_keys)
    order = np.lexsort((hist_keys["bucket"], gh))
    gh, hk, hc = gh[order], hist_keys[order], hist_counts[order]
    starts = np.flatnonzero(np.r_[True, gh[1:] != gh[:-1]]) if len(gh) else np.zeros(0, np.intp)
    group_g = gh[starts]
    group_n = np.add.reduceat(hc, starts).tolist() if len(gh) else []
    hb = hk["bucket"]
    hb_packed, hc_packed = hb.astype(np.uint8).tobytes(), hc.astype(np.uint64).tobytes()
    bounds = list(zip(starts.tolist(), np.r_[starts[1:], len(gh)].tolist()))

    # stats rows: find each one's histogram group
    gs = _group_key(stat_keys)
    pos = np.searchsorted(group_g, gs)
    if len(group_g):
        pos_c = np.minimum(pos, len(group_g) - 1)
        matched = group_g[pos_c] == gs
    else:
        pos_c, matched = pos, np.zeros(len(gs), bool)
    pos_l = np.where(matched, pos_c, -1).tolist()

    threads: dict[tuple[int, int], _Thread] = {}
    rows = zip(stat_keys["pid"].tolist(), stat_keys["tid"].tolist(), stat_keys["kind"].tolist(),
               stat_keys["code"].tolist(), stat_vals["count"].tolist(), stat_vals["sum_ns"].tolist(),
               stat_vals["min_ns"].tolist(), stat_vals["max_ns"].tolist(), pos_l)
    for pid, tid, kind, code, count, sum_ns, min_ns, max_ns, g in rows:
        t = threads.get((pid, tid))
        if t is None:
            t = threads[(pid, tid)] = _Thread()
        if g < 0:
            t.put(kind, code, Stat(count))
        else:
            s, e = bounds[g]
            t.put(kind, code, Stat(count, Latency.from_packed(group_n[g], sum_ns, min_ns, max_ns,
                                                                hb_packed[s:e], hc_packed[8 * s:8 * e])))

    if len(group_g) and not matched.all() or len(group_g) > int(matched.sum()):
        used = np.zeros(len(group_g), bool)
        used[pos_c[matched]] = True
        for g in np.flatnonzero(~used).tolist():  # latencies whose stats value was dropped
            s, e = bounds[g]
            row = hk[s]
            key = (int(row["pid"]), int(row["tid"]))
            t = threads.get(key)
            if t is None:
                t = threads[key] = _Thread()
            pairs = tuple(zip(hb[s:e].tolist(), hc[s:e].tolist()))
            t.put(int(row["kind"]), int(row["code"]), Stat(0, latency_from(0, 1, 0, pairs)))

    for pid, tid, bit, count in zip(req_keys["pid"].tolist(), req_keys["tid"].tolist(),
                                    req_keys["bit"].tolist(), req_counts.tolist()):
        t = threads.get((pid, tid))
        if t is None:
            t = threads[(pid, tid)] = _Thread()
        t.requests[bit] = t.requests.get(bit, 0) + count
    return threads


class LiveSource:
    """Live data from the running kernel (root, BCC, kvm tracepoints)."""

    name = "live"
    paced = True

    def __init__(self, pid: int | None = None, max_keys: int = DEFAULT_MAX_KEYS,
                 scan_every_s: float = SCAN_EVERY_S, raw: bool = True):
        self.pid = pid
        self.raw = raw  # raw tracepoints where the kernel allows (False: classic ones only)
        self.max_keys = max_keys
        self.scan_every_s = scan_every_s
        self.program: Program | None = None
        self.identities = IdentityCache()
        self._lock = threading.Lock()
        self._readers: dict[str, maps.HashReader] = {}
        self._last_t = 0.0
        self._totals: dict[str, int] = {}      # counters at the previous read
        self._since_open: dict[str, int] = {}  # counters at open (for the "exits" inference)
        self._last_vms: dict[int, VmIdentity] = {}
        self._scanned: list[int] = []
        self._next_scan = 0.0
        self._tid_info: dict[int, tuple[int, int, str]] = {}  # tid -> (pid, vcpu_id, comm) from BPF

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        if self.program is not None:
            return
        program = Program(max_keys=self.max_keys, pid=self.pid, raw=self.raw).load()
        try:
            maps.check_layout(program)
        except ValueError as e:
            program.close()
            raise SourceError(str(e)) from None
        self.program = program
        self._readers = {
            "stats": maps.HashReader(program.map_fd("stats"), maps.STAT_KEY, maps.STAT_VAL, program.max_keys),
            "hist": maps.HashReader(program.map_fd("hist"), maps.HIST_KEY, maps.COUNT, program.hist_keys),
            "requests": maps.HashReader(program.map_fd("requests"), maps.REQ_KEY, maps.COUNT, program.max_keys),
            "info": maps.HashReader(program.map_fd("info"), maps.TID, maps.INFO_VAL, program.pending_keys),
            "pending": maps.HashReader(program.map_fd("pending"), maps.TID, maps.PENDING_VAL,
                                       program.pending_keys),
        }
        self._totals = program.counters()
        self._since_open = dict(self._totals)
        self._last_t = time.monotonic()
        self._next_scan = 0.0

    def close(self) -> None:
        with self._lock:
            program, self.program = self.program, None
            self._readers = {}
        if program is not None:
            program.close()

    def reset(self) -> None:
        with self._lock:
            if self.program is None:
                return
            for r in self._readers.values():
                r.clear()
            self._totals = self.program.counters()
            self._tid_info.clear()
            self._last_t = time.monotonic()

    # ------------------------------------------------------------------ one interval

    def next_interval(self) -> Interval:
        with self._lock:
            program = self.program
            if program is None:
                raise SourceError("the live source is not open")
            t0 = time.perf_counter()
            now = time.monotonic()
            interval_s, self._last_t = now - self._last_t, now
            r = self._readers
            try:
                sk, sv = r["stats"].drain()
                hk, hv = r["hist"].drain()
                rk, rv = r["requests"].drain()
                ik, iv = r["info"].read()
                totals = program.counters()
            except OSError as e:
                raise SourceError(f"reading the BPF maps failed: {e.strerror or e}") from None
            with gc_paused():  # tens of thousands of small objects, no cycles: skip GC passes
                threads = build_threads(sk, sv, hk, hv, rk, rv)
            self._tid_info.update(zip(ik.tolist(), zip(iv["pid"].tolist(), iv["vcpu_id"].tolist(),
                                                       [c.decode(errors="replace") for c in iv["comm"].tolist()])))
            vms, threads = self._identify(threads, now)
            out = tuple(self._thread_interval(pid, tid, t) for (pid, tid), t in sorted(threads.items()))
            status = self._status(program, totals)
            poll_ms = (time.perf_counter() - t0) * 1000.0
        return Interval(time=time.time(), interval_s=interval_s, threads=out, vms=vms,
                        status=_with_poll_ms(status, poll_ms), kernel=os.uname().release)

    def _thread_interval(self, pid: int, tid: int, t: _Thread) -> ThreadInterval:
        owner = self._tid_info.get(tid)
        vcpu_id = owner[1] if owner and owner[0] == pid and owner[1] != NO_VCPU_ID else None
        return ThreadInterval(pid=pid, tid=tid, vcpu_id=vcpu_id, reasons=t.reasons, userspace=t.userspace,
                              hypercalls=t.hypercalls, requests=t.requests)

    def _identify(self, threads: dict, now: float) -> tuple[dict[int, VmIdentity], dict]:
        """Name every VM with data or found by a scan; drop data of processes that are gone."""
        tids_by_pid: dict[int, list[int]] = {}
        for pid, tid in threads:
            tids_by_pid.setdefault(pid, []).append(tid)
        for tid, (pid, _, _) in self._tid_info.items():
            if pid in tids_by_pid or pid in self._last_vms:
                tids_by_pid.setdefault(pid, [])
                if tid not in tids_by_pid[pid]:
                    tids_by_pid[pid].append(tid)
        if now >= self._next_scan:
            self._next_scan = now + self.scan_every_s
            self._scan()
        candidates = set(tids_by_pid) | set(self._scanned) | set(self._last_vms)
        if self.pid is not None:
            candidates &= {self.pid}
        vms: dict[int, VmIdentity] = {}
        gone: set[int] = set()
        for pid in sorted(candidates):
            try:
                ident = self.identities.resolve(pid, tids_by_pid.get(pid, ()))
            except OSError:
                ident = None
            if ident is not None:
                vms[pid] = self._name_threads(ident, tids_by_pid.get(pid, ()))
                continue
            gone.add(pid)
            last = self._last_vms.get(pid)
            if last is not None and any(p == pid for p, _ in threads):
                vms[pid] = last  # exited during this interval: its last counts still count
        if gone:
            self._scanned = [p for p in self._scanned if p not in gone]
            self._prune(gone)
        self._last_vms = {p: v for p, v in vms.items() if p not in gone}
        return vms, {k: t for k, t in threads.items() if k[0] in vms}

    def _name_threads(self, ident: VmIdentity, tids) -> VmIdentity:
        """Fill in vCPU names /proc no longer has from the comm BPF saw (a thread that ran
        and exited within the interval); /proc's names win where both exist."""
        comms, index = {}, {}
        for tid in tids:
            if tid in ident.vcpu_index:
                continue
            info = self._tid_info.get(tid)
            if info is None or info[0] != ident.pid or not info[2]:
                continue
            n = vcpu_index(info[2])
            if n is not None:
                index[tid] = n
            if tid not in ident.comms:
                comms[tid] = info[2]
        if not comms and not index:
            return ident
        return replace(ident, comms={**comms, **ident.comms}, vcpu_index={**index, **ident.vcpu_index})

    def _scan(self) -> None:
        """Find idle VMs and name their threads; forget what is gone."""
        try:
            found = scan_kvm_processes()
        except OSError:
            found = []
        if self.pid is not None:
            found = [p for p in found if p == self.pid]
        self._scanned = found
        self.identities.forget_dead()
        for pid in found:
            try:
                tids = [int(t) for t in os.listdir(f"{PROC}/{pid}/task")]
                self.identities.resolve(pid, tids)
            except (OSError, ValueError):
                continue
        self._prune_threads()

    def _prune(self, pids: set[int]) -> None:
        """Forget the per-thread map state of processes that are gone."""
        tids = [tid for tid, (pid, _, _) in self._tid_info.items() if pid in pids]
        for tid in tids:
            del self._tid_info[tid]
        if tids:
            arr = np.array(tids, maps.TID)
            self._readers["info"].delete(arr)
            self._readers["pending"].delete(arr)

    def _prune_threads(self) -> None:
        """Drop pending/info entries of threads that no longer exist (every scan)."""
        dead = []
        for name in ("pending", "info"):
            keys, vals = self._readers[name].read()
            for tid, pid in zip(keys.tolist(), vals["pid"].tolist()):
                if not os.path.exists(f"{PROC}/{pid}/task/{tid}"):
                    dead.append(tid)
        if dead:
            arr = np.unique(np.array(dead, maps.TID))
            self._readers["pending"].delete(arr)
            self._readers["info"].delete(arr)
            for tid in arr.tolist():
                self._tid_info.pop(tid, None)

    def _status(self, program: Program, totals: dict[str, int]) -> CollectorStatus:
        delta = {k: totals[k] - self._totals.get(k, 0) for k in COUNTERS}
        self._totals = totals
        drops_by_map = {m: delta[c] for m, c in DROP_COUNTERS.items() if delta[c]}
        feats = program.features or Features()
        since = {k: totals[k] - self._since_open.get(k, 0) for k in ("seen_exits", "seen_userspace")}
        exits_ok = not (since["seen_userspace"] > 0 and since["seen_exits"] == 0)
        notes = ([] if exits_ok else [NOTE_NO_EXITS]) + list(feats.notes())
        if program.fallback:
            notes.append(program.fallback)
        return CollectorStatus(
            drops=sum(drops_by_map.values()),
            unmatched_exits=delta["unmatched_exits"],
            unmatched_entries=delta["unmatched_entries"],
            drops_by_map=drops_by_map,
            features={"exits": exits_ok, "requests": feats.requests and exits_ok, "hypercalls": feats.hypercalls,
                      "userspace": True},
            notes=tuple(notes),
        )


def _with_poll_ms(status: CollectorStatus, poll_ms: float) -> CollectorStatus:
    return replace(status, poll_ms=round(poll_ms, 3))
