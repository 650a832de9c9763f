"""The columnar snapshot: one interval's figures as arrays, grouped per VM and vCPU.

``Frame.build`` turns an interval's StatColumns and VM identities into:

* ``Tables`` — who is there: the VMs (sorted by pid) and their vCPUs (each VM's in
  index, then tid order), the request rows, the histogram pool and the key table;
* ``Rows`` — the stat rows sorted per vCPU, with totals per vCPU, per VM and for the host
  (vectorized reductions), per-VM groups of (VM, key), and each VM's top reason.

A reason filter makes another Frame that shares the Tables and keeps the rows it admits
(``Frame.filtered``). Python objects (ReasonStat, Latency…) are made only for what a
front end asks for: ``stats`` of one vCPU, one VM or the host, ``vm_latency`` of a VM.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import NamedTuple

import numpy as np

from . import decode, histogram
from .columns import CAT_HYPERCALL, CAT_REASON, CAT_USERSPACE, StatColumns
from .model import (
    EMPTY_LATENCY,
    CodeStat,
    InFlight,
    Latency,
    ReasonKey,
    ReasonStat,
    RequestStat,
    VmIdentity,
    per_second,
)

NB = histogram.NBUCKETS
MIDS = np.array([histogram.bucket_mid(i) for i in range(NB)], np.int64)
_Z = np.zeros(0, np.int64)


def seg_sum(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Sums of ``values[lo[i]:hi[i]]`` (empty ranges sum to 0), exact for integers."""
    cs = np.zeros(len(values) + 1, values.dtype if values.dtype.kind in "iu" else np.float64)
    np.cumsum(values, out=cs[1:])
    return cs[hi] - cs[lo]


def runs(sorted_keys: np.ndarray) -> np.ndarray:
    """Start index of each run of equal values in a sorted array."""
    if not len(sorted_keys):
        return _Z
    return np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])


def percentile_buckets(cum: np.ndarray, q: float) -> np.ndarray:
    """The bucket holding ``histogram.percentile``'s rank in each row of cumulative counts
    (a (n, NBUCKETS) matrix)."""
    total = cum[:, -1]
    rank = np.maximum(1, -(-((q * total) * 1_000_000).astype(np.int64) // 1_000_000))
    return np.argmax(cum >= rank[:, None], axis=1)


def clamp_mid(bucket: np.ndarray, total: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """A bucket's midpoint clamped to [lo, hi], 0 without events (``histogram.percentile``)."""
    value = np.minimum(np.maximum(MIDS[bucket], lo.astype(np.int64)), hi.astype(np.int64))
    return np.where(total > 0, value, 0)


def percentiles(hists: np.ndarray, lo: np.ndarray, hi: np.ndarray, q: float) -> np.ndarray:
    """``histogram.percentile`` of each row of a dense (n, NBUCKETS) histogram matrix, clamped
    to [lo, hi] (0 for an empty row)."""
    if not len(hists):
        return _Z
    cum = np.cumsum(hists, axis=1)
    return clamp_mid(percentile_buckets(cum, q), cum[:, -1], lo, hi)


def from_dense(dense: np.ndarray, count: np.ndarray, total: np.ndarray, lo: np.ndarray, hi: np.ndarray
               ) -> list[Latency]:
    """A Latency per row of summed buckets (and its count, sum, min, max), with the
    percentiles that tables and JSON read computed for all rows at once."""
    cum = np.cumsum(dense, axis=1)
    pct = [clamp_mid(percentile_buckets(cum, q), cum[:, -1], lo, hi).tolist() for q in QUANTILES.values()]
    nz_row, nz_col = np.nonzero(dense)
    nz_at = np.searchsorted(nz_row, np.arange(len(dense) + 1)).tolist()
    nz_idx = nz_col.astype(np.uint8).tobytes()
    nz_cnt = dense[nz_row, nz_col].astype(np.uint64).tobytes()
    out = []
    for j, (n, s, a, b) in enumerate(zip(count.tolist(), total.tolist(), lo.tolist(), hi.tolist())):
        if not n:
            out.append(EMPTY_LATENCY)
            continue
        s_, e_ = nz_at[j], nz_at[j + 1]
        lat = Latency.from_packed(n, s, a, b, nz_idx[s_:e_], nz_cnt[8 * s_:8 * e_])
        d = lat.__dict__
        for name, v in zip(QUANTILES, pct):
            d[name] = v[j]
        out.append(lat)
    return out


class _VmLatencies(NamedTuple):
    """Every VM's summed latency buckets of one category, with their count, sum, min and max."""

    dense: np.ndarray  # (VMs, NBUCKETS)
    counts: np.ndarray
    sums: np.ndarray
    lows: np.ndarray
    highs: np.ndarray

    def latencies(self, vms: list[int]) -> list[Latency]:
        return from_dense(self.dense[vms], self.counts[vms], self.sums[vms], self.lows[vms], self.highs[vms])

    def total_latency(self) -> Latency:
        """The host's: every VM's merged."""
        some = self.counts > 0
        if not some.any():
            return EMPTY_LATENCY
        one = np.ones(1, np.uint64)
        return from_dense(self.dense.sum(axis=0, keepdims=True), one * self.counts.sum(), one * self.sums.sum(),
                          one * self.lows[some].min(), one * self.highs[some].max())[0]


def _figures(r: Rows, idx: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, ...]:
    """Latency count, sum, min and max of the rows ``idx[bounds[i]:bounds[i+1]]`` for each i
    (all 0 for an empty range)."""
    lo, hi = bounds[:-1], bounds[1:]
    mins, maxs = np.zeros(len(lo), r.lmin.dtype), np.zeros(len(lo), r.lmax.dtype)
    full = np.flatnonzero(hi > lo)
    if len(full):
        mins[full] = np.minimum.reduceat(r.lmin[idx], lo[full])
        maxs[full] = np.maximum.reduceat(r.lmax[idx], lo[full])
    return seg_sum(r.lcount[idx], lo, hi), seg_sum(r.lsum[idx], lo, hi), mins, maxs


WHOLE_PASS_VMS = 128  # up to this many VMs, every VM's latency is summed at once (the host's from theirs)


CHUNK_ENTRIES = 1 << 18  # bucket entries summed at once when many latencies are made together
QUANTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p999": 0.999}  # the Latency properties JSON and tables read


_NAMES: dict[tuple[int, int, int], str] = {}


def key_name(cat: int, isa: int, code: int) -> str:
    name = _NAMES.get((cat, isa, code))
    if name is None:
        if cat == CAT_REASON:
            name = decode.exit_reason_name(isa, code)
        elif cat == CAT_USERSPACE:
            name = decode.userspace_exit_name(code)
        else:
            name = decode.hypercall_name(code)
        if len(_NAMES) < 100_000:
            _NAMES[(cat, isa, code)] = name
    return name


class Tables:
    """VMs, vCPUs, requests and the histogram pool of one interval (shared by its filtered frames)."""

    def __init__(self, cols: StatColumns, identities: Mapping[int, VmIdentity], dt: float, kernel: str | None):
        self.dt = dt
        self.kernel = kernel
        self.keys = cols.keys
        self.key_cat = cols.keys.cat.astype(np.int8)
        self.key_isa = cols.keys.isa.astype(np.int64)
        self.key_code = cols.keys.code
        self.hoff, self.bidx, self.bcnt = cols.hoff, cols.bidx, cols.bcnt
        pids = sorted(identities)
        self.idents: list[VmIdentity] = [identities[p] for p in pids]
        self.vm_pid = np.array(pids, np.int64)
        self.vm_start = np.array([i.start_time for i in self.idents], np.int64)
        self._vm_keys: list[str] | None = None
        self._vm_by_key: dict[str, int] | None = None
        self._memo: dict[str, object] = {}
        self._build_vcpus(cols)

    def _build_vcpus(self, cols: StatColumns) -> None:
        """vCPUs = the interval's threads plus the threads the identities name, per VM."""
        nvm = len(self.vm_pid)
        ident_tids, ident_index, ident_vm = [], [], []
        for v, ident in enumerate(self.idents):
            if ident.vcpu_index:
                tids, index = _vcpu_arrays(ident)
                ident_tids.append(tids)
                ident_index.append(index)
                ident_vm.append(np.full(len(tids), v, np.int64))
        t_vm = np.searchsorted(self.vm_pid, cols.tpid.astype(np.int64)) if nvm else np.zeros(len(cols.tpid), np.int64)
        t_vm = np.minimum(t_vm, max(nvm - 1, 0))
        known = (self.vm_pid[t_vm] == cols.tpid) if nvm else np.zeros(len(cols.tpid), bool)
        # (vm, tid) packed, from threads and from identities
        t_packed = (t_vm.astype(np.uint64) << np.uint64(32)) | cols.ttid.astype(np.uint64)
        i_tids = np.concatenate(ident_tids) if ident_tids else _Z
        i_vm = np.concatenate(ident_vm) if ident_vm else _Z
        i_index = np.concatenate(ident_index) if ident_index else _Z
        i_packed = (i_vm.astype(np.uint64) << np.uint64(32)) | i_tids.astype(np.uint64)
        pairs = np.unique(np.concatenate([t_packed[known], i_packed]))
        self.duplicate_threads = len(np.unique(t_packed[known])) < int(known.sum())
        vm = (pairs >> np.uint64(32)).astype(np.int64)
        tid = (pairs & np.uint64(0xFFFFFFFF)).astype(np.int64)
        # vCPU index from the identity, vcpu_id from the (last) thread row
        index = np.full(len(pairs), -1, np.int64)
        if len(i_packed):
            order = np.argsort(i_packed, kind="stable")
            pos = np.searchsorted(i_packed[order], pairs)
            pos = np.minimum(pos, len(order) - 1)
            hit = i_packed[order][pos] == pairs
            index[hit] = i_index[order][pos[hit]]
        vcpu_id = np.full(len(pairs), -1, np.int64)
        iu_code = np.full(len(pairs), -1, np.int64)  # a userspace exit in flight at the end
        iu_ns = np.zeros(len(pairs), np.uint64)
        self.thread_vc = np.full(len(cols.tpid), -1, np.int32)  # thread table row -> vCPU
        if len(pairs):
            tpos = np.searchsorted(pairs, t_packed)
            tpos = np.minimum(tpos, len(pairs) - 1)
            tmatch = known & (pairs[tpos] == t_packed)
            vcpu_id[tpos[tmatch]] = cols.tvcpu[tmatch]  # later rows win, as a dict would
            iu_code[tpos[tmatch]] = cols.tiu_code[tmatch]
            iu_ns[tpos[tmatch]] = cols.tiu_ns[tmatch]
        # display order: VM, then vCPU index (unknown last), then tid
        order = np.lexsort((tid, np.where(index >= 0, index, 0), index < 0, vm))
        rank = np.empty(len(order), np.int64)
        rank[order] = np.arange(len(order))
        if len(pairs):
            self.thread_vc[tmatch] = rank[tpos[tmatch]]
        self.vc_vm, self.vc_tid = vm[order].astype(np.int32), tid[order]
        self.vc_index, self.vc_vcpu_id = index[order], vcpu_id[order]
        self.vc_iu_code, self.vc_iu_ns = iu_code[order], iu_ns[order]
        vms = np.arange(nvm)
        self.vm_lo = np.searchsorted(self.vc_vm, vms, "left")
        self.vm_hi = np.searchsorted(self.vc_vm, vms, "right")
        # request rows, sorted per vCPU
        q_vc = self.thread_vc[cols.qthread] if len(cols.qthread) else _Z
        keep = q_vc >= 0
        qo = np.argsort(q_vc[keep], kind="stable")
        self.q_vc = q_vc[keep][qo]
        self.q_bit = cols.qbit[keep][qo]
        self.q_count = cols.qcount[keep][qo]
        self.q_lost = cols.qlost[keep][qo]
        nvc = len(self.vc_vm)
        self.q_lo = np.searchsorted(self.q_vc, np.arange(nvc), "left")
        self.q_hi = np.searchsorted(self.q_vc, np.arange(nvc), "right")

    # ------------------------------------------------------------------ lookups

    @property
    def vm_count(self) -> int:
        return len(self.vm_pid)

    @property
    def vcpu_count(self) -> int:
        return len(self.vc_vm)

    def vm_keys(self) -> list[str]:
        """``pid:start_time`` of each VM (the dashboard's row keys)."""
        if self._vm_keys is None:
            self._vm_keys = [f"{p}:{s}" for p, s in zip(self.vm_pid.tolist(), self.vm_start.tolist())]
        return self._vm_keys

    def vm_by_key(self, key: str) -> int | None:
        if self._vm_by_key is None:
            self._vm_by_key = {k: i for i, k in enumerate(self.vm_keys())}
        return self._vm_by_key.get(key)

    def memo(self, name: str, make: Callable[[], object]):
        """A value derived from these tables, made once (front ends cache sort keys here)."""
        value = self._memo.get(name)
        if value is None:
            value = self._memo[name] = make()
        return value

    def vm_by_pid(self, pid: int) -> int | None:
        i = int(np.searchsorted(self.vm_pid, pid))
        return i if i < len(self.vm_pid) and int(self.vm_pid[i]) == pid else None

    def vc_comm(self, vc: int) -> str:
        return self.idents[int(self.vc_vm[vc])].comms.get(int(self.vc_tid[vc]), "")

    def name(self, kid: int) -> str:
        return self.names()[kid]

    def request_stats(self, lo: int, hi: int, exits: int) -> tuple[RequestStat, ...]:
        """Request bits of the request rows ``lo:hi`` (merged by bit), most frequent first; a bit
        with only exits a full map lost has count 0."""
        if lo >= hi:
            return ()
        merged: dict[int, list[int]] = {}
        for bit, n, lost in zip(self.q_bit[lo:hi].tolist(), self.q_count[lo:hi].tolist(),
                                self.q_lost[lo:hi].tolist()):
            m = merged.setdefault(bit, [0, 0])
            m[0] += n
            m[1] += lost
        stats = (RequestStat(bit, decode.request_bit_name(bit, self.kernel), n, n / exits if exits else 0.0, lost)
                 for bit, (n, lost) in merged.items())
        return tuple(sorted(stats, key=lambda r: (-r.count, r.bit)))

    def in_userspace(self, vc: int) -> InFlight | None:
        code = int(self.vc_iu_code[vc])
        return InFlight(code, int(self.vc_iu_ns[vc])) if code >= 0 else None

    # ------------------------------------------------------------------ histograms

    def names(self) -> list[str]:
        """The name of each key id."""
        return self.memo("key names", lambda: [key_name(c, i, k) for c, i, k in self.keys.tuples()])

    def dense(self, hist: np.ndarray, group: np.ndarray, ngroups: int) -> np.ndarray:
        """Summed buckets per group: a (ngroups, NBUCKETS) float64 matrix (exact below 2**53)."""
        if not len(hist):
            return np.zeros((ngroups, NB))
        s, e = self.hoff[hist], self.hoff[hist + 1]
        n = e - s
        total = int(n.sum())
        if ngroups == 1 and total > 2 * len(hist):
            # many rows sharing pool histograms: each histogram once, weighted by its rows
            mult = np.bincount(hist, minlength=len(self.hoff) - 1)
            used = np.flatnonzero(mult)
            s, e = self.hoff[used], self.hoff[used + 1]
            n = e - s
            entry = np.repeat(s - np.cumsum(n) + n, n) + np.arange(int(n.sum()))
            w = self.bcnt[entry].astype(np.float64) * np.repeat(mult[used], n)
            return np.bincount(self.bidx[entry], weights=w, minlength=NB).reshape(1, NB)
        entry = np.repeat(s - np.cumsum(n) + n, n) + np.arange(total)
        index = np.repeat(group, n) * NB + self.bidx[entry]
        return np.bincount(index, weights=self.bcnt[entry].astype(np.float64),
                           minlength=ngroups * NB).reshape(ngroups, NB)


def _longest(t: Tables) -> np.ndarray:
    out = np.full(t.vm_count, -1, np.int64)
    busy = np.flatnonzero(t.vc_iu_code >= 0)
    if len(busy):
        # per VM, the busy vCPU with the largest age (max() keeps the first of equals, as here)
        order = np.lexsort((busy, -t.vc_iu_ns[busy].astype(np.float64), t.vc_vm[busy]))
        first = order[runs(t.vc_vm[busy][order])]
        out[t.vc_vm[busy][first]] = busy[first]
    return out


def _vcpu_arrays(ident: VmIdentity) -> tuple[np.ndarray, np.ndarray]:
    cached = _IDENT_CACHE.get(id(ident))
    if cached is not None and cached[0] is ident:
        return cached[1], cached[2]
    tids = np.fromiter(ident.vcpu_index.keys(), np.int64, len(ident.vcpu_index))
    index = np.fromiter(ident.vcpu_index.values(), np.int64, len(ident.vcpu_index))
    if len(_IDENT_CACHE) > 50_000:
        _IDENT_CACHE.clear()
    _IDENT_CACHE[id(ident)] = (ident, tids, index)
    return tids, index


_IDENT_CACHE: dict[int, tuple[VmIdentity, np.ndarray, np.ndarray]] = {}


ROW_COLUMNS = ("kid", "count", "lost", "lcount", "lsum", "lmin", "lmax", "hist")  # what a frame keeps of a row


class Rows:
    """The stat rows of a frame, sorted per vCPU, and their reductions."""

    def __init__(self, t: Tables, vc: np.ndarray, seq: np.ndarray, *, kid, count, lost, lcount, lsum, lmin, lmax,
                 hist):
        if len(vc) > 1 and bool((vc[1:] < vc[:-1]).any()):
            o = np.argsort(vc, kind="stable")
            vc, kid, count, lost, lcount, lsum, lmin, lmax, hist, seq = (
                a[o] for a in (vc, kid, count, lost, lcount, lsum, lmin, lmax, hist, seq))
        self.vc, self.kid, self.count, self.lost, self.seq = vc, kid, count, lost, seq
        self.lcount, self.lsum, self.lmin, self.lmax, self.hist = lcount, lsum, lmin, lmax, hist
        nvc = t.vcpu_count
        self.vm = t.vc_vm[vc] if len(vc) else _Z
        self.cat = t.key_cat[kid] if len(kid) else _Z
        self.vc_lo = np.searchsorted(vc, np.arange(nvc), "left")
        self.vc_hi = np.searchsorted(vc, np.arange(nvc), "right")
        bounds = np.r_[self.vc_lo, len(vc)]  # row range of vCPUs a:b is bounds[a]:bounds[b]
        self.vm_lo, self.vm_hi = bounds[t.vm_lo], bounds[t.vm_hi]

        zero = np.uint64(0)
        is_exit, is_user = self.cat == CAT_REASON, self.cat == CAT_USERSPACE
        exits = np.where(is_exit, count, zero)
        user = np.where(is_user, count, zero)
        hcall = np.where(self.cat == CAT_HYPERCALL, count, zero)
        self.vc_exits, self.vc_user, self.vc_hcall = (seg_sum(a, self.vc_lo, self.vc_hi) for a in (exits, user, hcall))
        self.vm_exits, self.vm_user, self.vm_hcall = (seg_sum(a, self.vm_lo, self.vm_hi) for a in (exits, user, hcall))
        self.host_exits, self.host_user, self.host_hcall = (int(a.sum()) for a in (exits, user, hcall))
        # events a full map could not take, per category (``lost`` of each level's figures)
        lost_by = [np.where(self.cat == c, lost, zero) for c in (CAT_REASON, CAT_USERSPACE, CAT_HYPERCALL)]
        self.vc_lost = [seg_sum(a, self.vc_lo, self.vc_hi) for a in lost_by]
        self.vm_lost = [seg_sum(a, self.vm_lo, self.vm_hi) for a in lost_by]
        self.host_lost = [int(a.sum()) for a in lost_by]
        # exit latency per VM: count, sum, min, max over the rows that have durations
        self.vm_lat = self._latency_per_vm(t, is_exit)
        self._groups: tuple | None = None
        self._vm_pct: dict[tuple[float, int], np.ndarray] = {}
        self._vm_lat_by: dict[int, tuple[np.ndarray, ...]] = {}

    def _latency_per_vm(self, t: Tables, cat_mask: np.ndarray) -> tuple[np.ndarray, ...]:
        nvm = t.vm_count
        has = cat_mask & (self.lcount > 0)
        lcount = seg_sum(np.where(has, self.lcount, np.uint64(0)), self.vm_lo, self.vm_hi)
        lsum = seg_sum(np.where(has, self.lsum, np.uint64(0)), self.vm_lo, self.vm_hi)
        lo = np.zeros(nvm, np.uint64)
        hi = np.zeros(nvm, np.uint64)
        idx = np.flatnonzero(has)
        if len(idx):
            vm = self.vm[idx]
            starts = runs(vm)
            lo[vm[starts]] = np.minimum.reduceat(self.lmin[idx], starts)
            hi[vm[starts]] = np.maximum.reduceat(self.lmax[idx], starts)
        return lcount, lsum, lo, hi

    # ------------------------------------------------------------------ per (VM, key)

    def groups(self) -> tuple[np.ndarray, ...]:
        """(vm, kid, count, first row seq) of every (VM, key) with rows, sorted by VM then key."""
        if self._groups is None:
            nk = max(1, int(self.kid.max()) + 1) if len(self.kid) else 1
            packed = self.vm.astype(np.int64) * nk + self.kid
            o = np.argsort(packed, kind="stable")
            sp = packed[o]
            starts = runs(sp)
            if len(starts):
                cs = seg_sum(self.count[o], starts, np.r_[starts[1:], len(sp)])
                first = np.minimum.reduceat(self.seq[o], starts)
                self._groups = (sp[starts] // nk, sp[starts] % nk, cs, first)
            else:
                self._groups = (_Z, _Z, np.zeros(0, np.uint64), _Z)
        return self._groups

    def top_keys(self, t: Tables, cat: int = CAT_REASON) -> tuple[np.ndarray, np.ndarray]:
        """Each VM's most frequent key of category ``cat`` (key id, -1 for none) and its count,
        ties by code, then first appearance (the head of the VM's sorted list)."""
        g_vm, g_kid, g_count, g_first = self.groups()
        top = np.full(t.vm_count, -1, np.int64)
        top_n = np.zeros(t.vm_count, np.int64)
        sel = np.flatnonzero(t.key_cat[g_kid] == cat) if len(g_kid) else _Z
        if len(sel):
            vm, kid, n = g_vm[sel], g_kid[sel], g_count[sel].astype(np.int64)
            o = np.lexsort((g_first[sel], t.key_code[kid], -n, vm))
            starts = runs(vm[o])
            best = o[starts]
            top[vm[best]] = kid[best]
            top_n[vm[best]] = n[best]
        return top, top_n

    def vm_lat_of(self, t: Tables, cat: int) -> tuple[np.ndarray, ...]:
        """(count, sum, min, max) of each VM's latency of category ``cat`` (rows with durations)."""
        if cat == CAT_REASON:
            return self.vm_lat
        got = self._vm_lat_by.get(cat)
        if got is None:
            got = self._vm_lat_by[cat] = self._latency_per_vm(t, self.cat == cat)
        return got

    def vm_percentile(self, t: Tables, q: float, cat: int = CAT_REASON) -> np.ndarray:
        """The q-quantile of each VM's latency of category ``cat`` (0 without durations), all VMs at once."""
        got = self._vm_pct.get((q, cat))
        if got is None:
            idx = np.flatnonzero((self.cat == cat) & (self.lcount > 0) & (self.hist >= 0))
            dense = t.dense(self.hist[idx], self.vm[idx], t.vm_count)
            _, _, lo, hi = self.vm_lat_of(t, cat)
            got = self._vm_pct[(q, cat)] = percentiles(dense, lo, hi, q)
        return got


class Frame:
    """One snapshot's columns: shared Tables, and Rows (all of them, or those a filter admits)."""

    def __init__(self, tables: Tables, rows: Rows, admit_reason: Callable[[ReasonKey], bool] | None = None,
                 admit_userspace: Callable[[int], bool] | None = None, unfiltered: Rows | None = None):
        self.t = tables
        self.rows = rows
        self.admit_reason = admit_reason
        self.admit_userspace = admit_userspace
        self.unfiltered = unfiltered if unfiltered is not None else rows  # request shares use its exits
        self._top: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._tables: dict[int, _VmLatencies] = {}

    @classmethod
    def build(cls, cols: StatColumns, identities: Mapping[int, VmIdentity], dt: float,
              kernel: str | None) -> Frame:
        t = Tables(cols, identities, dt, kernel)
        vc = t.thread_vc[cols.thread] if len(cols.thread) else _Z
        keep = vc >= 0
        seq = np.arange(len(vc), dtype=np.int32)
        if not keep.all():
            vc, seq = vc[keep], seq[keep]
            arrays = [getattr(cols, n)[keep] for n in ROW_COLUMNS]
        else:
            arrays = [getattr(cols, n) for n in ROW_COLUMNS]
        return cls(t, Rows(t, vc, seq, **dict(zip(ROW_COLUMNS, arrays))))

    def filtered(self, admit_reason: Callable[[ReasonKey], bool] | None,
                 admit_userspace: Callable[[int], bool] | None) -> Frame:
        """The rows whose key the filter admits (None: that category whole)."""
        t, r = self.t, self.unfiltered
        admit = np.ones(len(t.keys), bool)
        for k, (cat, isa, code) in enumerate(t.keys.tuples()):
            if cat == CAT_REASON and admit_reason is not None:
                admit[k] = admit_reason((isa, code))
            elif cat == CAT_USERSPACE and admit_userspace is not None:
                admit[k] = admit_userspace(code)
        m = admit[r.kid] if len(r.kid) else np.zeros(0, bool)
        rows = Rows(t, r.vc[m], r.seq[m], **{n: getattr(r, n)[m] for n in ROW_COLUMNS})
        return Frame(t, rows, admit_reason, admit_userspace, unfiltered=r)

    # ------------------------------------------------------------------ main-table columns (all VMs)

    def top_keys(self, cat: int = CAT_REASON) -> tuple[np.ndarray, np.ndarray]:
        """Each VM's most frequent exit reason (``cat`` CAT_USERSPACE: KVM_EXIT_*) and its count."""
        got = self._top.get(cat)
        if got is None:
            got = self._top[cat] = self.rows.top_keys(self.t, cat)
        return got

    def vm_percentile(self, q: float, cat: int = CAT_REASON) -> np.ndarray:
        return self.rows.vm_percentile(self.t, q, cat)

    # ------------------------------------------------------------------ Python objects on demand

    def vm_latency(self, vm: int) -> Latency:
        """Exit latency of one VM, all reasons merged."""
        return self.vm_latencies([vm])[0]

    def vm_latencies(self, vms: list[int]) -> list[Latency]:
        """Exit latency of each of these VMs (all reasons merged), made in one pass."""
        if self.t.vm_count <= WHOLE_PASS_VMS:
            return self._vm_table(CAT_REASON).latencies(vms)
        r = self.rows
        idx, group = self._rows_of(vms)
        keep = r.cat[idx] == CAT_REASON
        return self._latencies(idx[keep], group[keep], len(vms))

    def _rows_of(self, vms: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The rows of these VMs, and which of them (0..len(vms)-1) each belongs to."""
        r = self.rows
        lo, hi = r.vm_lo[vms], r.vm_hi[vms]
        n = hi - lo
        return np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum())), np.repeat(np.arange(len(vms)), n)

    def _vm_table(self, cat: int) -> _VmLatencies:
        """Every VM's latency of category ``cat``, summed in one pass (made once per frame)."""
        got = self._tables.get(cat)
        if got is None:
            r, t = self.rows, self.t
            idx = np.flatnonzero((r.cat == cat) & (r.lcount > 0))
            got = self._tables[cat] = _VmLatencies(t.dense(r.hist[idx], r.vm[idx], t.vm_count),
                                                   *r.vm_lat_of(t, cat))
        return got

    def top_stats(self, vms: list[int]) -> list[ReasonStat | None]:
        """Each of these VMs' most frequent exit reason (``reasons[0]``), made alone; its latency's
        buckets are summed only when read (the guests table shows only its name and share)."""
        r, t = self.rows, self.t
        top, top_n = self.top_keys(CAT_REASON)
        idx, group = self._rows_of(vms)
        sel = r.kid[idx] == top[vms][group]
        idx, group = idx[sel], group[sel]
        lost = np.zeros(len(vms), np.uint64)
        np.add.at(lost, group, r.lost[idx])
        has = r.lcount[idx] > 0
        idx, group = idx[has], group[has]
        starts = np.searchsorted(group, np.arange(len(vms) + 1))
        count, total, lo, hi = (a.tolist() for a in _figures(r, idx, starts))
        names = t.names()
        out: list[ReasonStat | None] = []
        for i, (k, n) in enumerate(zip(top[vms].tolist(), top_n[vms].tolist())):
            if k < 0:
                out.append(None)
                continue
            rows = idx[starts[i]:starts[i + 1]]
            lat = Latency.deferred(count[i], total[i], lo[i], hi[i], partial(self._merged_rows, rows))
            out.append(ReasonStat(int(t.key_isa[k]), int(t.key_code[k]), names[k], n,
                                  per_second(n, t.dt), lat, int(lost[i])))
        return out

    def longest_in_userspace(self) -> np.ndarray:
        """Per VM, the vCPU whose userspace exit has been in flight longest (-1: none)."""
        t = self.t
        return t.memo("longest in userspace", lambda: _longest(t))

    def host_latency(self, cat: int) -> Latency:
        if self.t.vm_count <= WHOLE_PASS_VMS:  # the VMs' sums, which the guests table reads too
            return self._vm_table(cat).total_latency()
        return self._merged(np.arange(len(self.rows.kid)), cat)

    def vcpu_latency(self, vc: int, cat: int) -> Latency:
        r = self.rows
        return self._merged(np.arange(int(r.vc_lo[vc]), int(r.vc_hi[vc])), cat)

    def _merged(self, idx: np.ndarray, cat: int) -> Latency:
        r = self.rows
        return self._merged_rows(idx[(r.cat[idx] == cat) & (r.lcount[idx] > 0)])

    def _merged_rows(self, idx: np.ndarray) -> Latency:
        return self._latencies(idx, np.zeros(len(idx), np.int64), 1)[0]

    def _latencies(self, idx: np.ndarray, group: np.ndarray, ngroups: int) -> list[Latency]:
        """Latency.merge of the rows ``idx`` per group (rows without durations ignored), with
        the percentiles that tables and JSON read computed for all groups at once."""
        r, t = self.rows, self.t
        out: list[Latency] = [EMPTY_LATENCY] * ngroups
        has = r.lcount[idx] > 0
        idx, group = idx[has], group[has]
        if not len(idx):
            return out
        if ngroups > 1:
            o = np.argsort(group, kind="stable")
            idx, group = idx[o], group[o]
        starts = runs(group)
        ends = np.r_[starts[1:], len(group)]
        gids = group[starts].tolist()
        count, total, lo, hi = _figures(r, idx, np.r_[starts, len(group)])
        hist = r.hist[idx]
        # chunks of groups, so that the summed buckets of a chunk stay a few MB whatever the size
        entries = seg_sum(t.hoff[hist + 1] - t.hoff[hist], starts, ends)
        bounds = np.searchsorted(np.cumsum(entries), np.arange(1, 1 + int(entries.sum()) // CHUNK_ENTRIES)
                                 * CHUNK_ENTRIES)
        cuts = [0, *sorted(set(int(b) + 1 for b in bounds if int(b) + 1 < len(starts))), len(starts)]
        for c0, c1 in zip(cuts, cuts[1:]):
            r0, r1 = int(starts[c0]), int(ends[c1 - 1])
            local = np.repeat(np.arange(c1 - c0), ends[c0:c1] - starts[c0:c1])
            dense = t.dense(hist[r0:r1], local, c1 - c0)  # summed buckets of each group of the chunk
            for g, lat in zip(gids[c0:c1], from_dense(dense, count[c0:c1], total[c0:c1], lo[c0:c1], hi[c0:c1])):
                out[g] = lat
        return out

    def stats(self, lo: int, hi: int, first: np.ndarray | None = None
              ) -> tuple[tuple[ReasonStat, ...], tuple[CodeStat, ...], tuple[CodeStat, ...]]:
        """Reasons, userspace exits and hypercalls of the rows ``lo:hi`` (merged by key),
        most frequent first; ties by code, then by first appearance (``first``: per key id)."""
        return self.grouped_stats(np.arange(lo, hi), np.zeros(hi - lo, np.int64), 1, first)[0]

    def grouped_stats(self, idx: np.ndarray, entity: np.ndarray, nent: int, first: np.ndarray | None = None
                      ) -> list[tuple[tuple[ReasonStat, ...], tuple[CodeStat, ...], tuple[CodeStat, ...]]]:
        """``stats`` of many entities at once: the rows ``idx`` belong to ``entity`` (0..nent-1)."""
        r, t = self.rows, self.t
        out: list = [((), (), ())] * nent
        if not len(idx):
            return out
        nk = max(1, len(t.keys))
        packed = np.asarray(entity, np.int64) * nk + r.kid[idx]
        o = np.argsort(packed, kind="stable")
        sp = packed[o]
        starts = runs(sp)
        ends = np.r_[starts[1:], len(sp)]
        g_ent, g_kid = sp[starts] // nk, sp[starts] % nk
        g_count = seg_sum(r.count[idx][o], starts, ends)
        g_lost = seg_sum(r.lost[idx][o], starts, ends).tolist()
        seen = first[g_kid] if first is not None else np.minimum.reduceat(r.seq[idx][o], starts)
        lats = self._latencies(idx[o], np.repeat(np.arange(len(starts)), ends - starts), len(starts))
        cat = t.key_cat[g_kid]
        code = t.key_code[g_kid]
        order = np.lexsort((seen, code, -g_count.astype(np.int64), cat, g_ent)).tolist()
        ents, cats, isas = g_ent.tolist(), cat.tolist(), t.key_isa[g_kid].tolist()
        codes, counts, kids = code.tolist(), g_count.tolist(), g_kid.tolist()
        names = t.names()
        dt = t.dt
        lists: dict[int, tuple[list, list, list]] = {}
        for g in order:
            e = ents[g]
            slot = lists.get(e)
            if slot is None:
                slot = lists[e] = ([], [], [])
            n, c = counts[g], cats[g]
            name = names[kids[g]]
            if c == CAT_REASON:
                slot[0].append(ReasonStat(isas[g], codes[g], name, n, per_second(n, dt), lats[g], g_lost[g]))
            else:
                slot[c].append(CodeStat(codes[g], name, n, per_second(n, dt), lats[g], g_lost[g]))
        for e, (a, b, c) in lists.items():
            out[e] = (tuple(a), tuple(b), tuple(c))
        return out

    def host_first_seen(self) -> np.ndarray:
        """Per key id: where the host's merge of VM lists first meets it — (VM, position in
        that VM's sorted list) — the tie-break the host's tables have always used."""
        t = self.t
        g_vm, g_kid, g_count, g_first = self.rows.groups()
        first = np.zeros(len(t.keys), np.int64)
        if not len(g_kid):
            return first
        cat = t.key_cat[g_kid]
        o = np.lexsort((g_first, t.key_code[g_kid], -g_count.astype(np.int64), cat, g_vm))
        run = np.r_[True, (g_vm[o][1:] != g_vm[o][:-1]) | (cat[o][1:] != cat[o][:-1])]
        starts = np.flatnonzero(run)
        pos = np.arange(len(o)) - np.repeat(starts, np.diff(np.r_[starts, len(o)]))
        composite = g_vm[o] * (len(t.keys) + 1) + pos
        first[:] = np.iinfo(np.int64).max
        np.minimum.at(first, g_kid[o], composite)
        return first


