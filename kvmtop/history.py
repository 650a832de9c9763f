"""Rate history for sparklines: one ring per series, frozen into each snapshot.

A series is identified by ``(entity, kind, code)``: ``entity`` names a VM, a vCPU or the
host, ``kind`` is one of TOTAL/REASON/USERSPACE/USERSPACE_TOTAL. Values are events per
second, one column per interval.

What a ring keeps is each interval's count; the length of each interval is kept once per
column, and a value is read as ``float32(count / seconds)``, bit for bit what a float32
ring of rates would hold. A series whose counts fit in 16 bits (most per-vCPU series) keeps
them in a uint16 matrix; one that outgrows it moves for good to a float32 matrix of rates.
At 1,000 VMs x 8 vCPUs (about 100,000 series of 120 intervals) that is ~25 MB where
float32 rates took ~50 (and Python floats would take hundreds).

Series are found through arrays, not dicts: each entity gets a small id, and a series
key packs (entity id, kind, code) into one u64 kept in a sorted array, so the builder
records a whole interval with a few numpy calls (``add_packed``). Keys that do not pack
(codes beyond 32 bits, other kinds) go through a dict."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

TOTAL = "x"  # exits/s
REASON = "r"  # exits/s of one (isa, code)
USERSPACE = "u"  # KVM_EXIT_* round trips/s of one code
USERSPACE_TOTAL = "U"

Entity = tuple  # ("host",), ("vm", pid, start), ("vcpu", pid, start, tid)
SeriesKey = tuple[str, object]  # (kind, code)

# The kind byte of a packed key: a REASON's isa (below 0x10) is its own kind byte.
KB_USERSPACE, KB_TOTAL, KB_USERSPACE_TOTAL = 0x10, 0xF0, 0xF1
_KB_OF = {TOTAL: KB_TOTAL, USERSPACE_TOTAL: KB_USERSPACE_TOTAL, USERSPACE: KB_USERSPACE}
_ENTITY_SHIFT = np.uint64(40)
_KIND_SHIFT = np.uint64(32)
_MAX_EID = 1 << 24
_EMPTY_KEYS = np.zeros(0, np.uint64)
# A series' row: a row of the counts matrix, or WIDE + a row of the rates matrix.
WIDE = 1 << 32
NARROW_MAX = int(np.iinfo(np.uint16).max)
_EMPTY_ROWS = np.zeros(0, np.int64)
_GENERATIONS = itertools.count()


def pack(eid: int, kind: str, code: object) -> int | None:
    """The u64 key of a series, or None when it does not pack."""
    if kind == REASON:
        if not (isinstance(code, tuple) and len(code) == 2):
            return None
        kb, code = code
        if not (isinstance(kb, int) and 0 <= kb < KB_USERSPACE):
            return None
    else:
        kb = _KB_OF.get(kind)
        if kb is None:
            return None
        if code is None:
            code = 0
    if not isinstance(code, int) or not 0 <= code < 2**32:
        return None
    return (eid << 40) | (kb << 32) | code


def unpack(key: int) -> SeriesKey:
    kb, code = (key >> 32) & 0xFF, key & 0xFFFFFFFF
    if kb < KB_USERSPACE:
        return REASON, (kb, code)
    if kb == KB_USERSPACE:
        return USERSPACE, code
    return (TOTAL if kb == KB_TOTAL else USERSPACE_TOTAL), None


def entity_range(eid: int) -> tuple[int, int]:
    return eid << 40, (eid + 1) << 40


class HistoryView:
    """The store as it was at one interval; series come out oldest first.

    Copy-on-write: a view shares the store's matrices, and the store saves, into every
    live view, a column before it overwrites it and a row before it clears it. A view held
    for one interval costs one column, not a copy of the whole matrix.
    """

    __slots__ = ("_counts", "_rates", "_seconds", "_eids", "_keys", "_krows", "_other", "_pos", "_filled",
                 "_count_cols", "_rate_cols", "_saved_rows", "__weakref__")

    def __init__(self, counts: np.ndarray, rates: np.ndarray, seconds: np.ndarray, eids: dict, keys: np.ndarray,
                 krows: np.ndarray, other: dict, pos: int, filled: int):
        self._counts = counts  # uint16 counts of the narrow series (shared with the store)
        self._rates = rates  # float32 rates of the wide series (shared with the store)
        self._seconds = seconds  # length of each column's interval (never changed in place)
        self._eids = eids  # entity -> id (shared with the store until it changes)
        self._keys = keys  # sorted packed keys
        self._krows = krows  # row of each key
        self._other = other  # (eid, kind, code) -> row, for keys that do not pack
        self._pos = pos
        self._filled = filled
        # column -> its values when this view was made, one dict per matrix
        self._count_cols: dict[int, np.ndarray] = {}
        self._rate_cols: dict[int, np.ndarray] = {}
        self._saved_rows: dict[int, np.ndarray] = {}  # row -> its values when this view was made

    @property
    def length(self) -> int:
        return self._filled

    def _window(self) -> np.ndarray:
        width = len(self._seconds)
        start = (self._pos + 1 - self._filled) % width
        return (np.arange(self._filled) + start) % width

    def _raw(self, row: int) -> np.ndarray:
        return self._raw_many(np.array([row], np.int64))[0]

    def _raw_many(self, rows: np.ndarray) -> np.ndarray:
        """Rates of these rows as this view saw them (one row of zeros where ``rows`` is -1)."""
        rows = np.asarray(rows, np.int64)
        values = np.zeros((len(rows), len(self._seconds)), np.float32)
        wide = rows >= WIDE
        narrow = (rows >= 0) & ~wide
        if narrow.any():
            values[narrow] = _gather(self._counts, self._count_cols, rows[narrow]) / self._seconds
        if wide.any():
            values[wide] = _gather(self._rates, self._rate_cols, rows[wide] - WIDE)
        if self._saved_rows:
            for i, r in enumerate(rows.tolist()):
                saved = self._saved_rows.get(r)
                if saved is not None:
                    values[i] = saved
        return values

    def _save_column(self, col: int, counts: np.ndarray, rates: np.ndarray) -> None:
        """Keep column ``col`` of the store's matrices (those this view still shares)."""
        if col not in self._window():
            return
        for matrix, mine, saved in ((counts, self._counts, self._count_cols), (rates, self._rates, self._rate_cols)):
            if matrix is mine and col not in saved:
                saved[col] = matrix[:, col].copy()

    def _save_row(self, row: int) -> None:
        if row not in self._saved_rows:
            self._saved_rows[row] = self._raw(row)

    def _row(self, entity: Entity, kind: str, code: object) -> int | None:
        eid = self._eids.get(entity)
        if eid is None:
            return None
        key = pack(eid, kind, code)
        if key is None:
            return self._other.get((eid, kind, code))
        i = int(np.searchsorted(self._keys, np.uint64(key)))
        if i < len(self._keys) and int(self._keys[i]) == key:
            return int(self._krows[i])
        return None

    def _entity_series(self, entity: Entity) -> list[tuple[SeriesKey, int]]:
        eid = self._eids.get(entity)
        if eid is None:
            return []
        lo, hi = entity_range(eid)
        a, b = np.searchsorted(self._keys, [np.uint64(lo), np.uint64(hi)])
        out = [(unpack(k), r) for k, r in zip(self._keys[a:b].tolist(), self._krows[a:b].tolist())]
        out += [((kind, code), r) for (e, kind, code), r in self._other.items() if e == eid]
        return out

    def series(self, entity: Entity, kind: str, code: object = None) -> tuple[float, ...]:
        row = self._row(entity, kind, code)
        if row is None:
            return (0.0,) * self._filled
        return tuple(self._raw(row)[self._window()].tolist())

    def keys(self, entity: Entity, kind: str) -> list[object]:
        return [code for (k, code), _ in self._entity_series(entity) if k == kind]

    def sum_series(self, entity: Entity, kind: str, admit: Callable[[Any], bool]) -> tuple[float, ...]:
        rows = [r for (k, code), r in self._entity_series(entity) if k == kind and admit(code)]
        if not rows:
            return (0.0,) * self._filled
        total = np.sum(self._raw_many(np.array(rows, np.int64)), axis=0)
        return tuple(total[self._window()].tolist())

    # ------------------------------------------------------------------ vectorized reads

    def eids(self, entities: Iterable[Entity]) -> np.ndarray:
        """Entity ids (-1 for entities without history)."""
        get = self._eids.get
        return np.array([get(e, -1) for e in entities], np.int64)

    def rows(self, keys: np.ndarray) -> np.ndarray:
        """Rows of packed keys (-1 where there is no such series)."""
        keys = np.asarray(keys, np.uint64)
        if not len(self._keys):
            return np.full(len(keys), -1, np.int64)
        i = np.minimum(np.searchsorted(self._keys, keys), len(self._keys) - 1)
        return np.where(self._keys[i] == keys, self._krows[i], -1)

    def window(self, rows: np.ndarray, last: int | None = None) -> np.ndarray:
        """Values of these rows, oldest first (the last ``last`` intervals), as a matrix."""
        cols = self._window()
        if last is not None:
            cols = cols[len(cols) - min(last, len(cols)):]
        return self._raw_many(rows)[:, cols]

    def series_of(self, eids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every packed series of these entities: (index into ``eids``, kind byte, code, row)."""
        eids = np.asarray(eids, np.int64)
        keys = self._keys
        if not len(keys) or not len(eids):
            return _EMPTY_ROWS, _EMPTY_ROWS, _EMPTY_ROWS, _EMPTY_ROWS
        owner = (keys >> _ENTITY_SHIFT).astype(np.int64)
        order = np.argsort(eids, kind="stable")
        sorted_eids = eids[order]
        pos = np.minimum(np.searchsorted(sorted_eids, owner), len(sorted_eids) - 1)
        hit = sorted_eids[pos] == owner
        k = keys[hit]
        return (order[pos[hit]], ((k >> _KIND_SHIFT) & np.uint64(0xFF)).astype(np.int64),
                (k & np.uint64(0xFFFFFFFF)).astype(np.int64), self._krows[hit])


def _gather(matrix: np.ndarray, saved_cols: dict[int, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Rows of a shared matrix with the columns a view saved put back."""
    # Read the shared matrix first, then the saved columns: the store saves before it writes.
    values = matrix[rows]
    for col, column in list(saved_cols.items()):
        values[:, col] = column[rows]
    return values


EMPTY_VIEW = HistoryView(np.zeros((0, 1), np.uint16), np.zeros((0, 1), np.float32), np.ones(1), {}, _EMPTY_KEYS,
                         _EMPTY_ROWS, {}, 0, 0)


class HistorySlot:
    """Where the stats of one snapshot find their history: the builder makes the stats,
    records them into the store and only then freezes the view they all point at, so it
    sets ``view`` once, before anyone sees the snapshot."""

    __slots__ = ("view",)

    def __init__(self, view: HistoryView = EMPTY_VIEW) -> None:
        self.view = view


EMPTY_SLOT = HistorySlot()


class _Rings:
    """One matrix of rings (a row per series) and its free rows; a free row is all zeros."""

    __slots__ = ("data", "used", "free")

    def __init__(self, dtype: type, capacity: int, length: int) -> None:
        self.data: np.ndarray = np.zeros((capacity, length), dtype)
        self.used = 0
        self.free: list[int] = []

    def allocate(self, n: int) -> np.ndarray:
        take = min(n, len(self.free))
        rows = [self.free.pop() for _ in range(take)]
        more = n - take
        if more:
            need = self.used + more
            if need > self.data.shape[0]:  # a new matrix: views keep the old one, the store no longer writes it
                grown = np.zeros((max(need, int(self.data.shape[0] * 1.5) + 16), self.data.shape[1]), self.data.dtype)
                grown[: self.used] = self.data[: self.used]
                self.data = grown
            rows.extend(range(self.used, need))
            self.used = need
        return np.array(rows, np.int64)

    def zero_rows(self) -> np.ndarray:
        return np.logical_not(self.data[: self.used].any(axis=1))


class HistoryStore:
    """The mutable rings behind HistoryView; owned by one SnapshotBuilder."""

    def __init__(self, length: int = 120, capacity: int = 256):
        self.length = length
        self._counts = _Rings(np.uint16, capacity, length)
        self._rates = _Rings(np.float32, 16, length)
        self._seconds = np.ones(length)  # length of each column's interval (replaced, never changed in place)
        self._eids: dict[Entity, int] = {}
        self._eids_shared = False  # a view holds ``_eids``: copy before changing it
        self._free_eids: list[int] = []
        self._next_eid = 0
        self._keys = _EMPTY_KEYS  # sorted packed keys (replaced, never changed in place)
        self._krows = _EMPTY_ROWS
        self._other: dict[tuple, int] = {}
        self._other_shared = False
        self._pos = -1
        self._filled = 0
        self._ticks = 0
        self._last_add: tuple[np.ndarray, np.ndarray] | None = None  # (keys, rows) of the last add_packed
        self._views: weakref.WeakSet[HistoryView] = weakref.WeakSet()  # frozen views sharing the matrices
        self.eid_generation = next(_GENERATIONS)  # changes whenever entity ids are freed (may be reused)

    def _views_sharing(self) -> list[HistoryView]:
        counts, rates = self._counts.data, self._rates.data
        return [v for v in list(self._views) if v._counts is counts or v._rates is rates]

    @property
    def series_count(self) -> int:
        return len(self._keys) + len(self._other)

    def advance(self, seconds: float = 1.0) -> None:
        """Open the column of a new interval, ``seconds`` long."""
        self._pos = (self._pos + 1) % self.length
        counts, rates = self._counts.data, self._rates.data
        for view in self._views_sharing():
            view._save_column(self._pos, counts, rates)
        counts[: self._counts.used, self._pos] = 0
        rates[: self._rates.used, self._pos] = 0.0
        spans = self._seconds.copy()
        spans[self._pos] = seconds if seconds > 0 else np.inf  # no time, no rate: its counts read as 0/s
        self._seconds = spans
        self._filled = min(self._filled + 1, self.length)
        self._ticks += 1
        if self._ticks % self.length == 0:
            self._collect()

    # ------------------------------------------------------------------ entities

    def _own_eids(self) -> dict[Entity, int]:
        if self._eids_shared:
            self._eids = dict(self._eids)
            self._eids_shared = False
        return self._eids

    def _own_other(self) -> dict[tuple, int]:
        if self._other_shared:
            self._other = dict(self._other)
            self._other_shared = False
        return self._other

    def entity_id(self, entity: Entity) -> int:
        eid = self._eids.get(entity)
        if eid is None:
            if self._free_eids:
                eid = self._free_eids.pop()
            else:
                eid = self._next_eid
                self._next_eid += 1
                if eid >= _MAX_EID:
                    raise OverflowError("too many history entities")
            self._own_eids()[entity] = eid
        return eid

    def entity_ids(self, entities: Iterable[Entity]) -> np.ndarray:
        get = self._eids.get
        out = []
        for e in entities:
            eid = get(e)
            out.append(self.entity_id(e) if eid is None else eid)
        return np.array(out, np.int64)

    # ------------------------------------------------------------------ adding

    def add(self, entity: Entity, kind: str, code: object, count: float) -> None:
        """Add ``count`` events to the current interval of one series."""
        eid = self.entity_id(entity)
        key = pack(eid, kind, code)
        if key is not None:
            self.add_packed(np.array([key], np.uint64), np.array([count], np.float64))
            return
        row = self._other.get((eid, kind, code))
        if row is None:
            row = self._other_row(eid, kind, code, int(self._counts.allocate(1)[0]))
        moved = int(self._add(np.array([row], np.int64), np.array([count], np.float64))[0])
        if moved != row:
            self._other_row(eid, kind, code, moved)

    def _other_row(self, eid: int, kind: str, code: object, row: int) -> int:
        self._own_other()[(eid, kind, code)] = row
        return row

    def add_many(self, entity: Entity, kind: str, values: Iterable[tuple[object, float]]) -> None:
        for code, count in values:
            self.add(entity, kind, code, count)

    def add_packed(self, keys: np.ndarray, counts: np.ndarray) -> None:
        """Add ``counts`` events to the current interval of the series ``keys`` (distinct packed keys)."""
        keys = np.asarray(keys, np.uint64)
        if not len(keys):
            return
        last = self._last_add
        if last is not None and len(last[0]) == len(keys) and np.array_equal(last[0], keys):
            rows = last[1]
        else:
            rows = self._rows_for(keys)
            self._last_add = (keys, rows)
        moved = self._add(rows, counts)
        if moved is not rows:
            changed = moved != rows
            krows = self._krows.copy()  # views hold the old one
            krows[np.searchsorted(self._keys, keys[changed])] = moved[changed]
            self._krows = krows
            self._last_add = (keys, moved)

    def _add(self, rows: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Add counts to the current column of these (distinct) rows. Returns the rows, a new
        one for each series whose counts no longer fit in 16 bits (moved to the rates)."""
        counts = np.asarray(counts)
        if counts.dtype.kind not in "ui":
            counts = counts.astype(np.float64)
        pos = self._pos
        narrow = rows < WIDE
        everyone = bool(narrow.all())
        at = rows if everyone else rows[narrow]
        total = self._counts.data[at, pos] + (counts if everyone else counts[narrow])
        fits = total <= NARROW_MAX
        if total.dtype.kind != "u":  # (a count is a whole number of events)
            fits &= (total >= 0) & (total == np.rint(total))
        if not fits.all():
            outgrown = np.flatnonzero(narrow)[~fits]
            rows = rows.copy()
            rows[outgrown] = self._widen(rows[outgrown])
            narrow[outgrown] = False
            everyone = False
            at, total = at[fits], total[fits]
        self._counts.data[at, pos] = total
        if not everyone:
            wide = ~narrow
            self._rates.data[rows[wide] - WIDE, pos] += (counts[wide] / self._seconds[pos]).astype(np.float32)
        return rows

    def _widen(self, rows: np.ndarray) -> np.ndarray:
        """Move narrow series to the rates matrix, values unchanged; returns their new rows."""
        rates = (self._counts.data[rows] / self._seconds).astype(np.float32)
        wide = self._rates.allocate(len(rows))
        self._rates.data[wide] = rates
        self._release(rows.tolist())
        return wide + WIDE

    def _rows_for(self, keys: np.ndarray) -> np.ndarray:
        """Rows of these keys, allocating new series."""
        n = len(self._keys)
        if n:
            i = np.minimum(np.searchsorted(self._keys, keys), n - 1)
            found = self._keys[i] == keys
        else:
            i = np.zeros(len(keys), np.int64)
            found = np.zeros(len(keys), bool)
        if found.all():
            return self._krows[i]
        new_keys = np.unique(keys[~found])
        new_rows = self._counts.allocate(len(new_keys))
        merged = np.concatenate([self._keys, new_keys])
        order = np.argsort(merged, kind="stable")
        self._keys = merged[order]
        self._krows = np.concatenate([self._krows, new_rows])[order]
        self._last_add = None
        i = np.searchsorted(self._keys, keys)
        return self._krows[i]

    # ------------------------------------------------------------------ forgetting

    def forget(self, keep: Callable[[Entity], bool]) -> None:
        """Drop every entity for which ``keep`` is false (a VM that exited)."""
        self.forget_entities([e for e in self._eids if not keep(e)])

    def forget_entities(self, entities: Iterable[Entity]) -> None:
        gone = {e: self._eids[e] for e in entities if e in self._eids}
        if not gone:
            return
        eids = set(gone.values())
        drop = np.isin(self._keys >> _ENTITY_SHIFT, np.array(sorted(eids), np.uint64))
        other_rows = [r for (e, _, _), r in self._other.items() if e in eids]
        self._release(self._krows[drop].tolist() + other_rows)
        self._keys, self._krows = self._keys[~drop], self._krows[~drop]
        if other_rows:
            self._other = {k: r for k, r in self._other.items() if k[0] not in eids}
            self._other_shared = False
        mapping = self._own_eids()
        for e in gone:
            del mapping[e]
        self._free_eids.extend(eids)
        self.eid_generation = next(_GENERATIONS)
        self._last_add = None

    def _release(self, rows: list[int]) -> None:
        """Clear rows (saving them into live views first) and free them."""
        if not rows:
            return
        counts, rates = self._counts.data, self._rates.data
        for view in self._views_sharing():
            shares = (view._counts is counts, view._rates is rates)
            for row in rows:
                if shares[row >= WIDE]:  # (a view with an older matrix keeps it whole)
                    view._save_row(row)
        arr = np.array(rows, np.int64)
        for rings, mine, base in ((self._counts, arr < WIDE, 0), (self._rates, arr >= WIDE, WIDE)):
            at = arr[mine] - base
            rings.data[at] = 0
            rings.free.extend(at.tolist())

    def _free(self, rows: np.ndarray) -> None:
        """Free rows that are all zeros already."""
        self._counts.free.extend(rows[rows < WIDE].tolist())
        self._rates.free.extend((rows[rows >= WIDE] - WIDE).tolist())

    def freeze(self) -> HistoryView:
        self._eids_shared = True
        self._other_shared = True
        view = HistoryView(self._counts.data, self._rates.data, self._seconds, self._eids, self._keys, self._krows,
                           self._other, self._pos, self._filled)
        self._views.add(view)
        return view

    def clear(self) -> None:
        HistoryStore.__init__(self, self.length, self._counts.data.shape[0])

    # ------------------------------------------------------------------ rows

    def _zero(self, rows: np.ndarray) -> np.ndarray:
        """Which of these rows are zero over the whole ring."""
        rows = np.asarray(rows, np.int64)
        out = np.zeros(len(rows), bool)
        wide = rows >= WIDE
        out[~wide] = self._counts.zero_rows()[rows[~wide]]
        if wide.any():
            out[wide] = self._rates.zero_rows()[rows[wide] - WIDE]
        return out

    def _collect(self) -> None:
        """Free series that were zero for a whole window, so memory follows activity."""
        if len(self._krows):
            dead = self._zero(self._krows)
            if dead.any():
                self._free(self._krows[dead])
                self._keys, self._krows = self._keys[~dead], self._krows[~dead]
                self._last_add = None
        if self._other:
            zero = self._zero(np.array(list(self._other.values()), np.int64)).tolist()
            dead_other = {k for k, z in zip(self._other, zero) if z}
            if dead_other:
                self._free(np.array([self._other[k] for k in dead_other], np.int64))
                self._other = {k: r for k, r in self._other.items() if k not in dead_other}
                self._other_shared = False
        live = set(np.unique(self._keys >> _ENTITY_SHIFT).tolist()) | {k[0] for k in self._other}
        mapping = self._eids
        gone = [e for e, i in mapping.items() if i not in live]
        if gone:
            mapping = self._own_eids()
            for e in gone:
                self._free_eids.append(mapping.pop(e))
            self.eid_generation = next(_GENERATIONS)
