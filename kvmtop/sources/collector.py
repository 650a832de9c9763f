"""The live source: kvmtop.bpf.c's maps, read and cleared once per interval, as Intervals.

Each ``next_interval()`` reads the stats (swapped for an empty map), lost and pairing maps (numpy, no object
per map key until the model is built), groups them per vCPU thread, names the VMs with
kvmtop.identity (a VM already gone is named from what sources.new_threads read while it
lived, else by pid and the comm BPF captured, and marked exited: its counts always
count), and reports the collector's own health (drops, unmatched pairs, the
time the read took, which measurements have a source here). No Textual in here.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import replace
from typing import Any

import numpy as np

from ..bpf import maps, sizing
from ..bpf.program import (
    COUNTERS,
    DEFAULT_MAX_KEYS,
    DROP_KINDS,
    IO_MMIO,
    KIND_HYPERCALL,
    KIND_REQUEST,
    KIND_USERSPACE,
    NO_LATENCY,
    NO_VCPU_ID,
    WITH_HYPERCALL,
    Features,
    Program,
)
from ..columns import CAT_HYPERCALL, CAT_REASON, CAT_USERSPACE, KeyTable, StatColumns
from ..errors import SourceError
from ..identity import IdentityCache, scan_kvm_processes, vcpu_index
from ..io_stats import MMIO, PIO, IoAccess, IoSample
from ..model import (
    NOTE_NO_EXITS,
    CollectorStatus,
    InFlight,
    Interval,
    ThreadInterval,
    VmIdentity,
    threads_of,
)
from .new_threads import NewThreadNamer
from .pairing_state import Key, PairingState, Requests

SCAN_EVERY_S = 5.0     # scan /proc for idle VMs and prune gone threads this often
EXITED_KEPT_POLLS = 3  # an exited VM's identity is kept this many polls, for its late counts
EPOCH_SETTLE_S = 0.002  # from flipping the epoch to reading the old stats: programs take microseconds
PROC = "/proc"


def _with_hypercall_rows(keys: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An exit row that made a hypercall is also that hypercall's row (same count and latency)."""
    hc = np.flatnonzero(keys["flags"] & WITH_HYPERCALL)
    if not len(hc):
        return keys, vals
    extra = keys[hc].copy()
    extra["kind"], extra["code"], extra["nr"] = KIND_HYPERCALL, keys["nr"][hc], 0
    return np.concatenate((keys, extra)), np.concatenate((vals, vals[hc]))


def _starts(*cols: np.ndarray) -> np.ndarray:
    """Indices where any of the (sorted) columns changes: the first row of each run."""
    n = len(cols[0])
    change = np.zeros(n, bool)
    if n:
        change[0] = True
        for c in cols:
            change[1:] |= c[1:] != c[:-1]
    return np.flatnonzero(change)


def _pair(pid, tid) -> np.ndarray:
    return (np.asarray(pid, np.uint64) << np.uint64(32)) | np.asarray(tid, np.uint64)


def columns_from_drained(stat_keys: np.ndarray, stat_vals: np.ndarray, lost_keys: np.ndarray,
                         lost_counts: np.ndarray, requests: dict[Key, dict[int, int]] | Requests | None = None,
                         in_userspace: dict[tuple[int, int], InFlight] | None = None) -> StatColumns:
    """The drained maps as an interval's columns: the one place that knows their layout.

    A `stats` row is one (pid, tid, kind, code, latency bucket) or a count without latency
    (NO_LATENCY); the rows of one (pid, tid, kind, code) make one stat row, whose latency
    buckets are its histogram (sorted and reduced in numpy). ``lost_keys``: events a full map
    could not take, per (pid, tid, kind, code) or request bit. ``requests`` (bit counts, as
    pairing_state.Requests or per-thread dicts) and ``in_userspace`` (exits in flight) per
    thread come from the pairing state. Threads are
    sorted by (pid, tid); a thread's rows by (kind, code), then rows with only lost events."""
    keys, vals = _with_hypercall_rows(stat_keys, stat_vals)
    nolat = (keys["flags"] & NO_LATENCY).astype(bool)
    # sorted by (pid, tid), then (kind, code, nolat, bucket): two u64 sort keys
    who = _pair(keys["pid"], keys["tid"])
    what = ((keys["kind"].astype(np.uint64) << np.uint64(41)) | (keys["code"].astype(np.uint64) << np.uint64(9))
            | (nolat.astype(np.uint64) << np.uint64(8)) | keys["bucket"].astype(np.uint64))
    order = np.lexsort((what, who))
    who, what = who[order], what[order]
    # one row per (pid, tid, kind, code, nolat, bucket): a hypercall's rows can come from several exits
    u = _starts(who, what)
    zero, top = np.uint64(0), np.uint64(2**64 - 1)

    def reduced(field: str, ufunc) -> np.ndarray:
        return ufunc.reduceat(vals[field][order], u) if len(u) else np.zeros(0, np.uint64)

    count = reduced("count", np.add)
    who, what = who[u], what[u]
    lat = (what & np.uint64(1 << 8)) == 0
    lat_count = np.where(lat, count, zero)
    sums = np.where(lat, reduced("sum_ns", np.add), zero)
    mins = np.where(lat, reduced("min_ns", np.minimum), top)
    maxs = np.where(lat, reduced("max_ns", np.maximum), zero)
    pid, tid = who >> np.uint64(32), who & np.uint64(0xFFFFFFFF)
    kind, code = what >> np.uint64(41), (what >> np.uint64(9)) & np.uint64(0xFFFFFFFF)
    bucket = what & np.uint64(0xFF)
    g = _starts(who, what >> np.uint64(9))  # one stat row each; its latency rows first, in bucket order
    g_lat = np.add.reduceat(lat_count, g) if len(g) else count
    # the histogram pool: the latency rows, a group's contiguous (so one range per group)
    before = np.r_[0, np.cumsum(lat)].astype(np.int64)
    hoff = np.r_[before[g], before[-1]].astype(np.int64)
    has_lat = g_lat > 0
    rows_pid, rows_tid, rows_kind, rows_code = pid[g], tid[g], kind[g], code[g]
    row_count = np.add.reduceat(count, g) if len(g) else count
    row_lost = np.zeros(len(g), np.uint64)
    lsum = np.where(has_lat, np.add.reduceat(sums, g), zero) if len(g) else count
    lmin = np.where(has_lat, np.minimum.reduceat(mins, g), zero) if len(g) else count
    lmax = np.where(has_lat, np.maximum.reduceat(maxs, g), zero) if len(g) else count
    hist = np.where(has_lat, np.arange(len(g)), -1)

    # events a full map lost: on their stat row, or rows of their own (count 0); request bits aside
    req_lost: dict[tuple[int, int], dict[int, int]] = {}
    extra: dict[tuple[int, int, int, int], int] = {}  # lost events of keys without a stat row
    if len(lost_keys):
        at = {k: i for i, k in enumerate(zip(rows_pid.tolist(), rows_tid.tolist(), rows_kind.tolist(),
                                              rows_code.tolist()))}
        for p, t, k, c, n in zip(lost_keys["pid"].tolist(), lost_keys["tid"].tolist(), lost_keys["kind"].tolist(),
                                 lost_keys["code"].tolist(), lost_counts.tolist()):
            if k == KIND_REQUEST:
                bits = req_lost.setdefault((p, t), {})
                bits[c] = bits.get(c, 0) + n
            elif (p, t, k, c) in at:
                row_lost[at[(p, t, k, c)]] += n
            else:
                extra[(p, t, k, c)] = extra.get((p, t, k, c), 0) + n
    if extra:
        e = np.array([(*key, n) for key, n in extra.items()], np.uint64).reshape(-1, 5)
        rows_pid, rows_tid = np.r_[rows_pid, e[:, 0]], np.r_[rows_tid, e[:, 1]]
        rows_kind, rows_code = np.r_[rows_kind, e[:, 2]], np.r_[rows_code, e[:, 3]]
        row_count, row_lost = np.r_[row_count, np.zeros(len(e), np.uint64)], np.r_[row_lost, e[:, 4]]
        none = np.zeros(len(e), np.uint64)
        g_lat, lsum, lmin, lmax = (np.r_[a, none] for a in (g_lat, lsum, lmin, lmax))
        hist = np.r_[hist, np.full(len(e), -1)]

    # threads: every (pid, tid) with a row, a request bit or an exit in flight
    reqs = requests if isinstance(requests, Requests) else Requests.of(requests or {})
    in_userspace = in_userspace or {}
    others = list(req_lost) + list(in_userspace) + (list(requests) if isinstance(requests, dict) else [])
    o_pid = np.array([k[0] for k in others], np.uint64)
    o_tid = np.array([k[1] for k in others], np.uint64)
    threads = np.unique(np.concatenate([_pair(rows_pid, rows_tid), _pair(o_pid, o_tid), _pair(reqs.pid, reqs.tid)]))
    tpid = (threads >> np.uint64(32)).astype(np.uint32)
    ttid = (threads & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    thread = np.searchsorted(threads, _pair(rows_pid, rows_tid))
    tiu_code = np.full(len(threads), -1, np.int64)
    tiu_ns = np.zeros(len(threads), np.uint64)
    if in_userspace:
        flying = np.searchsorted(threads, _pair([k[0] for k in in_userspace], [k[1] for k in in_userspace]))
        tiu_code[flying] = [f.code for f in in_userspace.values()]
        tiu_ns[flying] = [f.ns for f in in_userspace.values()]
    if req_lost:  # (rare) a thread's lost bits first, then the others; threads with lost bits only last
        by_thread = reqs.as_dict()
        q: list[tuple[int, int, int, int, int]] = []  # (pid, tid, bit, count, lost)
        for (p, t) in dict.fromkeys([*by_thread, *req_lost]):
            bits, lost = by_thread.get((p, t), {}), req_lost.get((p, t), {})
            q += [(p, t, bit, bits.get(bit, 0), lost.get(bit, 0)) for bit in {**dict.fromkeys(lost, 0), **bits}]
        qa = np.array(q, np.uint64).reshape(-1, 5)
    else:
        qa = np.column_stack((reqs.pid, reqs.tid, reqs.bit, reqs.count, np.zeros(len(reqs.pid), np.uint64)))
    qthread = np.searchsorted(threads, _pair(qa[:, 0], qa[:, 1])).astype(np.int32)

    rows_kind = rows_kind.astype(np.int64)
    cat = np.where(rows_kind == KIND_USERSPACE, CAT_USERSPACE,
                   np.where(rows_kind == KIND_HYPERCALL, CAT_HYPERCALL, CAT_REASON))
    table, kid = KeyTable.of_rows(cat, np.where(cat == CAT_REASON, rows_kind, 0), rows_code)
    return StatColumns(tpid=tpid, ttid=ttid, tvcpu=np.full(len(tpid), -1, np.int64), tiu_code=tiu_code,
                       tiu_ns=tiu_ns, thread=thread, kid=kid, keys=table, count=row_count, lost=row_lost,
                       lcount=g_lat, lsum=lsum, lmin=lmin, lmax=lmax, hist=hist, hoff=hoff,
                       bidx=bucket[lat].astype(np.uint8), bcnt=lat_count[lat], qthread=qthread,
                       qbit=qa[:, 2], qcount=qa[:, 3], qlost=qa[:, 4])


def build_threads(stat_keys: np.ndarray, stat_vals: np.ndarray, lost_keys: np.ndarray, lost_counts: np.ndarray,
                  requests: dict[tuple[int, int], dict[int, int]] | None = None
                  ) -> dict[tuple[int, int], ThreadInterval]:
    """The drained rows per (pid, tid), as ThreadIntervals."""
    cols = columns_from_drained(stat_keys, stat_vals, lost_keys, lost_counts, requests)
    return {(t.pid, t.tid): t for t in threads_of(cols)}


def io_drops(program: Program) -> int:
    """PIO/MMIO accesses the `io` map had no room for, since load."""
    table = program.table("io_drops")
    return int(sum(table[table.Key(0)]))


def readers(program: Program) -> dict[str, Any]:
    """One reader per map the collector reads, sized as the program made them (`slots`:
    through shared memory)."""
    sizes = {"stats": program.hist_keys, "lost": program.lost_keys,
             "pending": program.pending_keys, "info": program.pending_keys}
    out: dict[str, Any] = {name: maps.HashReader(program.map_fd(name), *maps.LAYOUT[name], size)
                           for name, size in sizes.items()}
    out["slots"] = maps.ArrayView(program.map_fd("slots"), *maps.LAYOUT["slots"], program.slots)
    return out


class LiveSource:
    """Live data from the running kernel (root, BCC, kvm tracepoints)."""

    name = "live"
    paced = True

    def __init__(self, pid: int | None = None, max_keys: int = DEFAULT_MAX_KEYS,
                 scan_every_s: float = SCAN_EVERY_S, raw: bool = True, io: bool = False):
        self.pid = pid
        self.io_always = io  # --io: the PIO/MMIO probes stay attached
        self.io_wanted = io  # set from any thread (want_io); applied on the next poll
        self.last_io: IoSample | None = None  # the PIO/MMIO accesses of the last interval, while counted
        self._io_drops = 0
        self._io_seen: dict[tuple, int] = {}  # the io map's counts at the last read (they only grow)
        self.raw = raw  # raw tracepoints where the kernel allows (False: classic ones only)
        self.max_keys = max_keys
        self.scan_every_s = scan_every_s
        self.program: Program | None = None
        self.identities = IdentityCache()
        self._lock = threading.Lock()
        self._readers: dict[str, Any] = {}
        self._last_t = 0.0
        self._totals: dict[str, int] = {}      # counters at the previous read
        self._since_open: dict[str, int] = {}  # counters at open (for the "exits" inference)
        self._last_vms: dict[int, VmIdentity] = {}
        # Processes seen gone: what is known of them (their identity as last reported, the names
        # BPF and the namer saw) is kept EXITED_KEPT_POLLS polls, for counts that come late.
        self._fading: dict[int, int] = {}  # pid -> polls left
        self._flipped_at = 0.0
        self._exited_vms: dict[int, VmIdentity] = {}
        self._scanned: list[int] = []
        self._next_scan = 0.0
        self._tid_info: dict[int, tuple[int, int, str]] = {}  # tid -> (pid, vcpu_id, comm) from BPF
        self._in_userspace: dict[tuple[int, int], InFlight] = {}
        self.namer: NewThreadNamer | None = None

    # ------------------------------------------------------------------ lifecycle

    def open(self) -> None:
        if self.program is not None:
            return
        program = Program(max_keys=self.max_keys, pid=self.pid, raw=self.raw, io=self.io_wanted)
        sizing.check(program.sizes)
        if self.max_keys != DEFAULT_MAX_KEYS:  # say what a chosen size costs, before it is paid
            print(f"kvmtop: {sizing.cost_line(program.sizes)}", file=sys.stderr)
        program.load()
        try:
            maps.check_layout(program)
            if program.features is not None and program.features.io:
                maps.check_io_layout(program)
        except ValueError as e:
            program.close()
            raise SourceError(str(e)) from None
        self.program = program
        self.namer = NewThreadNamer(program, self.pid)
        self.namer.start()
        self._readers = readers(program)
        if program.features is not None and program.features.io:
            self._readers["io"] = maps.HashReader(program.map_fd("io"), maps.IO_KEY, maps.COUNT, program.max_keys)
            self._io_drops = io_drops(program)
        self._pairing = PairingState(self._readers["slots"], self._readers["pending"])
        self._totals = program.counters()
        self._since_open = dict(self._totals)
        self._last_t = time.monotonic()
        self._next_scan = 0.0

    def close(self) -> None:
        with self._lock:
            program, self.program = self.program, None
            namer, self.namer = self.namer, None
            slots = self._readers.get("slots")
            self._readers = {}
        if namer is not None:
            namer.stop()  # before the ring buffer it polls goes away
        if slots is not None:
            slots.close()
        if program is not None:
            program.close()

    def reset(self) -> None:
        with self._lock:
            program = self.program
            if program is None:
                return
            self._readers["stats"].fd = program.stats_fd()  # (the one read last is never read again)
            for name in ("stats", "lost"):
                self._readers[name].clear()
            self._pairing.reset()  # what is in flight stays: it counts when it completes
            self._totals = program.counters()
            self._tid_info.clear()
            if self.namer is not None:
                self.namer.clear()
            self._last_t = time.monotonic()

    def _flip_epoch(self, program: Program) -> int:
        """Point the BPF program's new events at a new `stats` map and the other half of `lost`;
        the epoch it used."""
        old = program.flip_epoch()
        self._flipped_at = time.perf_counter()
        return old

    def footprint(self, pids: set[int] | None = None) -> dict[str, int]:
        """Per-thread state held now, in the BPF maps and here (only what ``pids`` own, when
        given): what must go back to its baseline once the VMs are gone."""
        with self._lock:
            if self.program is None:
                return {}
            out = {}
            for name in ("info", "pending", "slots"):
                _, vals = self._readers[name].read()
                if name == "slots":
                    vals = vals[vals["tid"] != 0]  # a free slot is all zeros
                held = vals["pid"].tolist()
                out[name] = len(held) if pids is None else sum(1 for p in held if p in pids)

            def count(owners) -> int:
                return sum(1 for p in owners if pids is None or p in pids)

            out["collector threads"] = count(p for p, _, _ in self._tid_info.values())
            out["collector VMs"] = count(self._last_vms) + count(self._exited_vms)
            out["collector exits fading"] = count(self._fading)
            out["names at first sight"] = count(self.namer.seen() if self.namer is not None else ())
            out["identity cache"] = count(self.identities.known())
            return out

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
                old = self._flip_epoch(program)  # new events go to a new stats map, the other half of lost
                ik, iv = r["info"].read()
                self._in_userspace, requests = self._pairing.poll_columns(time.monotonic_ns())
                totals = program.counters()
                settle = EPOCH_SETTLE_S - (time.perf_counter() - self._flipped_at)
                if settle > 0:  # the programs that read the old epoch have finished by now
                    time.sleep(settle)
                r["stats"].fd = program.stats_fd(old)
                try:
                    sk, sv = r["stats"].read()  # nothing writes it any more
                finally:
                    program.release_stats(old)  # never written again: its slot gets a new map
                lk, lv = r["lost"].drain_epoch(old)
                self.last_io = self._poll_io(program, interval_s)
            except OSError as e:
                raise SourceError(f"reading the BPF maps failed: {e.strerror or e}") from None
            # a vCPU stuck in its VMM has no counts: it is a thread of the interval all the same
            cols = columns_from_drained(sk, sv, lk, lv, requests, self._in_userspace)
            self._tid_info.update(zip(ik.tolist(), zip(iv["pid"].tolist(), iv["vcpu_id"].tolist(),
                                                       [c.decode(errors="replace") for c in iv["comm"].tolist()])))
            vms, cols = self._identify(cols, now)
            status = self._status(program, totals)
            poll_ms = (time.perf_counter() - t0) * 1000.0
        return Interval(time=time.time(), interval_s=interval_s, vms=vms, status=_with_poll_ms(status, poll_ms),
                        kernel=os.uname().release, columns=cols)

    # ------------------------------------------------------------------ I/O

    @property
    def io_supported(self) -> bool:
        """Whether this kernel has the kvm_pio/kvm_mmio tracepoints (known once open)."""
        program = self.program
        return bool(program is not None and program.features is not None and program.features.io)

    def want_io(self, on: bool) -> None:
        """Count PIO/MMIO accesses from the next poll on (or stop, unless --io); any thread."""
        self.io_wanted = on or self.io_always

    def _poll_io(self, program: Program, interval_s: float) -> IoSample | None:
        """Attach or detach the I/O probes as wanted, and take what they counted.

        The map is read, not drained: a key being deleted while its thread adds to it would
        lose that access. Its counts only grow while attached, so an interval is the
        difference from the last read; once detached (no writer left) the map is cleared.
        """
        reader = self._readers.get("io")
        if reader is None:
            return None
        if program.io != self.io_wanted:
            program.set_io(self.io_wanted)
            if not program.io:
                reader.clear()
                self._io_seen = {}
        total = io_drops(program)
        dropped, self._io_drops = total - self._io_drops, total
        if not program.io:
            return None
        keys, counts = reader.read()
        seen = dict(zip(zip(keys["pid"].tolist(), keys["tid"].tolist(), keys["space"].tolist(),
                            keys["write"].tolist(), keys["addr"].tolist()), counts.tolist()))
        before, self._io_seen = self._io_seen, seen
        accesses = []
        for (pid, tid, space, write, addr), n in seen.items():
            new = n - before.get((pid, tid, space, write, addr), 0)
            if new > 0:
                accesses.append(IoAccess(pid, tid, MMIO if space == IO_MMIO else PIO, bool(write), addr, new))
        return IoSample(interval_s, tuple(accesses), dropped)

    def _vcpu_ids(self, pids: list[int], tids: list[int]) -> np.ndarray:
        """KVM's vcpu_id of each thread, as the BPF program saw it (-1: unknown)."""
        info = self._tid_info
        out = []
        for pid, tid in zip(pids, tids):
            owner = info.get(tid)
            out.append(owner[1] if owner and owner[0] == pid and owner[1] != NO_VCPU_ID else -1)
        return np.array(out, np.int64)

    def _identify(self, cols: StatColumns, now: float) -> tuple[dict[int, VmIdentity], StatColumns]:
        """Name every VM with data or found by a scan. A process gone with data in this interval
        is kept, marked exited (named as the namer saw it, when it never was here): no count is
        dropped for a name."""
        pids, tids = cols.tpid.tolist(), cols.ttid.tolist()
        tids_by_pid: dict[int, dict[int, None]] = {}  # pid -> its tids (a dict: ordered, unique)
        for pid, tid in zip(pids, tids):
            tids_by_pid.setdefault(pid, {})[tid] = None
        with_data = set(tids_by_pid)
        for tid, (pid, _, _) in self._tid_info.items():
            if pid in tids_by_pid or pid in self._last_vms:
                tids_by_pid.setdefault(pid, {})[tid] = None
        if now >= self._next_scan:
            self._next_scan = now + self.scan_every_s
            self._scan(keep=set(tids))
        namer = self.namer
        assert namer is not None  # (open: next_interval checked)
        sighted = namer.seen()
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
            if pid in with_data:  # exited: its last counts still count (some may come a poll or two late)
                vms[pid] = self._exited(pid, self._last_vms.get(pid) or self._exited_vms.get(pid),
                                        sighted.get(pid), list(tids_by_pid[pid]))
                self._exited_vms[pid] = vms[pid]
        self._scanned = [p for p in self._scanned if p not in gone]
        self._last_vms = {p: v for p, v in vms.items() if p not in gone}
        self._fade(gone, set(namer.stale(set(sighted) - candidates)), set(vms), namer)
        keep = np.array([p in vms for p in pids], bool)  # (only -p's VM has others out)
        return vms, cols.with_threads(keep, self._vcpu_ids([p for p, k in zip(pids, keep) if k],
                                                           [t for t, k in zip(tids, keep) if k]))

    def _fade(self, gone: set[int], stale: set[int], reported: set[int], namer: NewThreadNamer) -> None:
        """Count down what is kept of processes that are gone (restarted by late counts), and
        forget it all once the count runs out: names, thread state, BPF map entries."""
        for pid in gone | stale:
            if pid in reported or pid not in self._fading:
                self._fading[pid] = EXITED_KEPT_POLLS
        expired = {p for p, n in self._fading.items() if n <= 0}
        for pid in expired:
            del self._fading[pid]
            self._exited_vms.pop(pid, None)
        self._prune(expired)
        namer.forget(expired)
        self._fading = {p: n - 1 for p, n in self._fading.items()}

    def _exited(self, pid: int, last: VmIdentity | None, sighting, tids) -> VmIdentity:
        """The identity of a process gone before this read: as last seen alive, as the namer read
        it at first sight, or else by pid and the comm BPF captured."""
        ident = last or (sighting.identity if sighting else None)
        if ident is None:
            comms = dict(sighting.comms) if sighting else {}
            comms.update((t, self._tid_info[t][2]) for t in tids if t in self._tid_info and self._tid_info[t][2])
            first = comms[min(comms)] if comms else ""
            ident = VmIdentity(pid=pid, name=first or f"pid {pid}", comms=comms)
        return replace(self._name_threads(ident, tids), exited=True)

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

    def _scan(self, keep: set[int]) -> None:
        """Find idle VMs and name their threads; forget what is gone (but threads in ``keep``:
        their counts are being named now; ``_prune`` forgets them once that is done)."""
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
        self._prune_threads(keep)

    def _prune(self, pids: set[int]) -> None:
        """Forget the per-thread map state of processes that are gone."""
        tids = [tid for tid, (pid, _, _) in self._tid_info.items() if pid in pids]
        self._forget(tids)

    def _prune_threads(self, keep: set[int]) -> None:
        """Drop the map state of threads that no longer exist (every scan). The BPF program
        marks a thread's pairing state when it exits and the next polls free it; this
        catches threads that exited while the probes were detached, and the info entries.
        The names of a gone process's threads stay until it fades out (``_fade``)."""
        dead, of_live = [], []
        for name in ("pending", "info", "slots"):
            keys, vals = self._readers[name].read()
            tids = vals["tid"] if name == "slots" else keys
            for tid, pid in zip(tids.tolist(), vals["pid"].tolist()):
                if tid and tid not in keep and not os.path.exists(f"{PROC}/{pid}/task/{tid}"):
                    dead.append(tid)
                    if os.path.exists(f"{PROC}/{pid}"):
                        of_live.append(tid)
        self._forget(dead, names=of_live)

    def _forget(self, tids: list[int], names: list[int] | None = None) -> None:
        """Free the BPF state of ``tids``, and forget the names of ``names`` (default: all of them)."""
        if not tids:
            return
        self._pairing.forget(tids)
        self._readers["info"].delete(np.unique(np.array(tids, maps.TID)))
        for tid in tids if names is None else names:
            self._tid_info.pop(tid, None)

    def _status(self, program: Program, totals: dict[str, int]) -> CollectorStatus:
        delta = {k: totals[k] - self._totals.get(k, 0) for k in COUNTERS}
        self._totals = totals
        drops_by_kind = {kind: delta[c] for kind, c in DROP_KINDS.items() if delta[c]}
        # what was full: stats (events of any kind but request bits), requests (request bits of a
        # thread without pairing state), pending (pairings: counted without latency), info, lost (row marks)
        by_map = {"stats": delta["drop_exits"] + delta["drop_userspace"] + delta["drop_hypercalls"],
                  "requests": delta["drop_requests"], "pending": delta["drop_pending"], "info": delta["drop_info"],
                  "lost": delta["drop_lost"]}
        drops_by_map = {m: n for m, n in by_map.items() if n}
        feats = program.features or Features()
        since = {k: totals[k] - self._since_open.get(k, 0) for k in ("seen_exits", "seen_userspace")}
        exits_ok = not (since["seen_userspace"] > 0 and since["seen_exits"] == 0)
        notes = ([] if exits_ok else [NOTE_NO_EXITS]) + list(feats.notes())
        if self.namer is not None and self.namer.failure:
            notes.append(f"naming new VMs at first sight stopped ({self.namer.failure}): "
                         "a VM that exits within an interval may be named by pid")
        if delta["lost_new_threads"]:
            notes.append(f"{delta['lost_new_threads']} new-thread notices lost (ring buffer full): "
                         "a VM that exited at once may be named by pid")
        if program.fallback:
            notes.append(program.fallback)
        return CollectorStatus(
            drops=sum(drops_by_kind.values()),
            unmatched_exits=delta["unmatched_exits"],
            unmatched_entries=delta["unmatched_entries"],
            drops_by_map=drops_by_map,
            drops_by_kind=drops_by_kind,
            features={"exits": exits_ok, "requests": feats.requests and exits_ok, "hypercalls": feats.hypercalls,
                      "userspace": True},
            notes=tuple(notes),
        )


def _with_poll_ms(status: CollectorStatus, poll_ms: float) -> CollectorStatus:
    return replace(status, poll_ms=round(poll_ms, 3))
