"""An interval's measurements as columns: numpy arrays, one row per (thread, kind, code).

Every source ends up here (the live maps, the demo generator, recordings, trace imports),
and the snapshot builder reduces these arrays without making a Python object per row.

* the threads of the interval: ``tpid``, ``ttid``, ``tvcpu`` (KVM's vcpu_id, -1 unknown),
  ``tiu_code``/``tiu_ns`` (a userspace exit in flight at the end: its code and age, -1/0
  for none), including threads that have no rows;
* stat rows: ``thread`` (an index into the thread table), ``kid`` (an index into the key
  table: category, isa, code), ``count`` (events), ``lost`` (events a full map could not
  take) and the latency of the durations paired with them: ``lcount``, ``lsum``, ``lmin``,
  ``lmax`` and ``hist``, an index into the histogram pool (-1: no durations). Several rows
  may share one pool histogram (the demo does).
* the pool: histogram ``h`` is ``bidx[hoff[h]:hoff[h+1]]`` (u8 bucket indices, ascending)
  with ``bcnt`` (u64 counts) alongside;
* request rows: ``qthread``, ``qbit``, ``qcount`` (exits with the bit set), ``qlost`` (such exits
  a full map could not take; a bit may have only those).

Row order is the source's order (it breaks ties between equal counts, as dicts did).
``kvmtop.model`` converts between these and ThreadIntervals (``columns_of``, ``threads_of``).
"""

from __future__ import annotations

import numpy as np

CAT_REASON, CAT_USERSPACE, CAT_HYPERCALL = 0, 1, 2
NO_VCPU = -1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1

_EMPTY_U8 = np.zeros(0, np.uint8)
_EMPTY_U64 = np.zeros(0, np.uint64)
_EMPTY_I64 = np.zeros(0, np.int64)


class KeyTable:
    """The distinct (category, isa, code) keys of an interval, sorted; rows point here by index."""

    __slots__ = ("cat", "isa", "code", "_index")

    def __init__(self, cat: np.ndarray, isa: np.ndarray, code: np.ndarray):
        self.cat = np.asarray(cat, np.uint8)
        self.isa = np.asarray(isa, np.uint8)
        self.code = np.asarray(code, np.uint64)
        self._index: dict | None = None

    def __len__(self) -> int:
        return len(self.cat)

    def tuples(self) -> list[tuple[int, int, int]]:
        return list(zip(self.cat.tolist(), self.isa.tolist(), self.code.tolist()))

    def index(self) -> dict[tuple[int, int, int], int]:
        if self._index is None:
            self._index = {k: i for i, k in enumerate(self.tuples())}
        return self._index

    @classmethod
    def of_rows(cls, cat: np.ndarray, isa: np.ndarray, code: np.ndarray) -> tuple[KeyTable, np.ndarray]:
        """The table of these rows' keys and each row's index into it."""
        cat = np.asarray(cat, np.uint64)
        isa = np.asarray(isa, np.uint64)
        code = np.asarray(code, np.uint64)
        if not len(code):
            return EMPTY_KEYS, np.zeros(0, np.int32)
        if int(code.max()) <= U32_MAX:
            packed = (cat << np.uint64(40)) | (isa << np.uint64(32)) | code
            uniq, kid = np.unique(packed, return_inverse=True)
            table = cls((uniq >> np.uint64(40)).astype(np.uint8), ((uniq >> np.uint64(32)) & np.uint64(0xFF)),
                        uniq & np.uint64(U32_MAX))
            return table, kid.astype(np.int32).reshape(-1)
        stacked = np.stack([cat, isa, code], axis=1)
        uniq, kid = np.unique(stacked, axis=0, return_inverse=True)
        return cls(uniq[:, 0], uniq[:, 1], uniq[:, 2]), kid.astype(np.int32).reshape(-1)


EMPTY_KEYS = KeyTable(_EMPTY_U8, _EMPTY_U8, _EMPTY_U64)


class StatColumns:
    """One interval's threads, stat rows, histogram pool and request rows (read-only arrays)."""

    __slots__ = ("tpid", "ttid", "tvcpu", "tiu_code", "tiu_ns", "thread", "kid", "keys", "count", "lost", "lcount",
                 "lsum", "lmin", "lmax", "hist", "hoff", "bidx", "bcnt", "qthread", "qbit", "qcount", "qlost")

    def __init__(self, *, tpid, ttid, tvcpu, thread, kid, keys: KeyTable, count, lcount, lsum, lmin, lmax, hist,
                 hoff, bidx, bcnt, qthread, qbit, qcount, lost=None, qlost=None, tiu_code=None, tiu_ns=None):
        self.tpid = np.asarray(tpid, np.uint32)
        self.ttid = np.asarray(ttid, np.uint32)
        self.tvcpu = np.asarray(tvcpu, np.int64)
        n, nt, nq = len(kid), len(self.tpid), len(qthread)
        self.tiu_code = np.full(nt, -1, np.int64) if tiu_code is None else np.asarray(tiu_code, np.int64)
        self.tiu_ns = np.zeros(nt, np.uint64) if tiu_ns is None else np.asarray(tiu_ns, np.uint64)
        self.thread = np.asarray(thread, np.int32)
        self.kid = np.asarray(kid, np.int32)
        self.keys = keys
        self.count = np.asarray(count, np.uint64)
        self.lost = np.zeros(n, np.uint64) if lost is None else np.asarray(lost, np.uint64)
        self.lcount = np.asarray(lcount, np.uint64)
        self.lsum = np.asarray(lsum, np.uint64)
        self.lmin = np.asarray(lmin, np.uint64)
        self.lmax = np.asarray(lmax, np.uint64)
        self.hist = np.asarray(hist, np.int64)
        self.hoff = np.asarray(hoff, np.int64)
        self.bidx = np.asarray(bidx, np.uint8)
        self.bcnt = np.asarray(bcnt, np.uint64)
        self.qthread = np.asarray(qthread, np.int32)
        self.qbit = np.asarray(qbit, np.uint64)
        self.qcount = np.asarray(qcount, np.uint64)
        self.qlost = np.zeros(nq, np.uint64) if qlost is None else np.asarray(qlost, np.uint64)

    def __len__(self) -> int:
        return len(self.kid)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in self.__slots__ if name != "keys")

    def equals(self, other: StatColumns) -> bool:
        if self.keys.tuples() != other.keys.tuples():
            return False
        return all(np.array_equal(getattr(self, n), getattr(other, n)) for n in self.__slots__ if n != "keys")

    # ------------------------------------------------------------------ builders

    @classmethod
    def empty(cls) -> StatColumns:
        z = _EMPTY_I64
        return cls(tpid=z, ttid=z, tvcpu=z, thread=z, kid=z, keys=EMPTY_KEYS, count=z, lcount=z, lsum=z, lmin=z,
                   lmax=z, hist=z, hoff=np.zeros(1, np.int64), bidx=_EMPTY_U8, bcnt=_EMPTY_U64, qthread=z, qbit=z,
                   qcount=z)

    def with_threads(self, keep: np.ndarray, tvcpu: np.ndarray | None = None) -> StatColumns:
        """The threads ``keep`` (a boolean mask) and their rows; ``tvcpu``: new vcpu_ids of the kept."""
        out = object.__new__(StatColumns)
        for name in self.__slots__:
            setattr(out, name, getattr(self, name))
        if not keep.all():
            new_index = np.cumsum(keep) - 1
            rows, reqs = keep[self.thread], keep[self.qthread]
            for name in ("tpid", "ttid", "tvcpu", "tiu_code", "tiu_ns"):
                setattr(out, name, getattr(self, name)[keep])
            out.thread = new_index[self.thread[rows]].astype(np.int32)
            for name in ("kid", "count", "lost", "lcount", "lsum", "lmin", "lmax", "hist"):
                setattr(out, name, getattr(self, name)[rows])
            out.qthread = new_index[self.qthread[reqs]].astype(np.int32)
            out.qbit, out.qcount, out.qlost = self.qbit[reqs], self.qcount[reqs], self.qlost[reqs]
        if tvcpu is not None:
            out.tvcpu = np.asarray(tvcpu, np.int64)
        return out

    def with_in_userspace(self, code: np.ndarray, ns: np.ndarray) -> StatColumns:
        """The same, with each thread's userspace exit in flight (code -1: none)."""
        out = self.with_threads(np.ones(len(self.tpid), bool))
        out.tiu_code, out.tiu_ns = np.asarray(code, np.int64), np.asarray(ns, np.uint64)
        return out


def checked_array(values: list, dtype, what: str) -> np.ndarray:
    """``np.array(values, dtype)``, or ValueError saying which field is out of range."""
    try:
        return np.array(values, dtype)
    except (OverflowError, TypeError, ValueError):
        raise ValueError(f"{what} out of range") from None
