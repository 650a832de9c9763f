"""Rate history for sparklines: one float32 ring per series, frozen into each snapshot.

A series is identified by ``(entity, kind, code)``: ``entity`` names a VM, a vCPU or the
host, ``kind`` is one of TOTAL/REASON/USERSPACE/USERSPACE_TOTAL. Values are events per
second, one column per interval. Storage is one float32 matrix (8 vCPUs x 1,000 VMs x a
few reasons x 120 intervals is tens of MB, not hundreds as Python floats would be).

Series are found through arrays, not dicts: each entity gets a small id, and a series
key packs (entity id, kind, code) into one u64 kept in a sorted array, so the builder
records a whole interval with a few numpy calls (``add_packed``). Keys that do not pack
(codes beyond 32 bits, other kinds) go through a dict.
"""

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

    Copy-on-write: a view shares the store's matrix, and the store saves, into every live
    view, a column before it overwrites it and a row before it clears it. A view held
    for one interval costs one column, not a copy of the whole matrix.
    """

    __slots__ = ("_data", "_eids", "_keys", "_krows", "_other", "_pos", "_filled", "_cols", "_saved_rows",
                 "__weakref__")

    def __init__(self, data: np.ndarray, eids: dict, keys: np.ndarray, krows: np.ndarray, other: dict,
                 pos: int, filled: int):
        self._data = data
        self._eids = eids  # entity -> id (shared with the store until it changes)
        self._keys = keys  # sorted packed keys
        self._krows = krows  # row of each key
        self._other = other  # (eid, kind, code) -> row, for keys that do not pack
        self._pos = pos
        self._filled = filled
        self._cols: dict[int, np.ndarray] = {}  # column -> its values when this view was made
        self._saved_rows: dict[int, np.ndarray] = {}  # row -> its values when this view was made

    @property
    def length(self) -> int:
        return self._filled

    def _window(self) -> np.ndarray:
        width = self._data.shape[1]
        start = (self._pos + 1 - self._filled) % width
        return (np.arange(self._filled) + start) % width

    def _raw(self, row: int) -> np.ndarray:
        saved = self._saved_rows.get(row)
        if saved is not None:
            return saved
        # Read the shared matrix first, then the saved columns: the store saves before it writes.
        values = self._data[row].copy()
        for col, column in list(self._cols.items()):
            values[col] = column[row]
        return values

    def _raw_many(self, rows: np.ndarray) -> np.ndarray:
        """Rows of the matrix as this view saw them (one row of zeros where ``rows`` is -1)."""
        rows = np.asarray(rows, np.int64)
        safe = np.where(rows >= 0, rows, 0)
        values = self._data[safe]
        for col, column in list(self._cols.items()):
            values[:, col] = column[safe]
        if self._saved_rows:
            for i, r in enumerate(rows.tolist()):
                saved = self._saved_rows.get(r)
                if saved is not None:
                    values[i] = saved
        values[rows < 0] = 0.0
        return values

    def _save_column(self, col: int) -> None:
        if col not in self._cols and col in self._window():
            self._cols[col] = self._data[:, col].copy()

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
        total = np.sum([self._raw(r) for r in rows], axis=0)
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


EMPTY_VIEW = HistoryView(np.zeros((0, 1), np.float32), {}, _EMPTY_KEYS, _EMPTY_ROWS, {}, 0, 0)


class HistorySlot:
    """Where the stats of one snapshot find their history: the builder makes the stats,
    records them into the store and only then freezes the view they all point at, so it
    sets ``view`` once, before anyone sees the snapshot."""

    __slots__ = ("view",)

    def __init__(self, view: HistoryView = EMPTY_VIEW) -> None:
        self.view = view


EMPTY_SLOT = HistorySlot()


class HistoryStore:
    """The mutable rings behind HistoryView; owned by one SnapshotBuilder."""

    def __init__(self, length: int = 120, capacity: int = 256):
        self.length = length
        self._data = np.zeros((capacity, length), np.float32)
        self._eids: dict[Entity, int] = {}
        self._eids_shared = False  # a view holds ``_eids``: copy before changing it
        self._free_eids: list[int] = []
        self._next_eid = 0
        self._keys = _EMPTY_KEYS  # sorted packed keys (replaced, never changed in place)
        self._krows = _EMPTY_ROWS
        self._other: dict[tuple, int] = {}
        self._other_shared = False
        self._free: list[int] = []
        self._used = 0
        self._pos = -1
        self._filled = 0
        self._ticks = 0
        self._last_add: tuple[np.ndarray, np.ndarray] | None = None  # (keys, rows) of the last add_packed
        self._views: weakref.WeakSet[HistoryView] = weakref.WeakSet()  # frozen views sharing _data
        self.eid_generation = next(_GENERATIONS)  # changes whenever entity ids are freed (may be reused)

    def _views_sharing(self) -> list[HistoryView]:
        return [v for v in list(self._views) if v._data is self._data]

    @property
    def series_count(self) -> int:
        return len(self._keys) + len(self._other)

    def advance(self) -> None:
        """Open the column of a new interval."""
        self._pos = (self._pos + 1) % self.length
        for view in self._views_sharing():
            view._save_column(self._pos)
        self._data[: self._used, self._pos] = 0.0
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

    def add(self, entity: Entity, kind: str, code: object, value: float) -> None:
        eid = self.entity_id(entity)
        key = pack(eid, kind, code)
        if key is None:
            row = self._other.get((eid, kind, code))
            if row is None:
                if self._other_shared:
                    self._other = dict(self._other)
                    self._other_shared = False
                row = self._other[(eid, kind, code)] = self._allocate()
            self._data[row, self._pos] += value
            return
        self.add_packed(np.array([key], np.uint64), np.array([value], np.float32))

    def add_many(self, entity: Entity, kind: str, values: Iterable[tuple[object, float]]) -> None:
        for code, value in values:
            self.add(entity, kind, code, value)

    def add_packed(self, keys: np.ndarray, values: np.ndarray) -> None:
        """Add ``values`` to the current column of the series ``keys`` (distinct packed keys)."""
        keys = np.asarray(keys, np.uint64)
        if not len(keys):
            return
        last = self._last_add
        if last is not None and len(last[0]) == len(keys) and np.array_equal(last[0], keys):
            rows = last[1]
        else:
            rows = self._rows_for(keys)
            self._last_add = (keys, rows)
        self._data[rows, self._pos] += np.asarray(values, np.float32)

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
        new_rows = self._allocate_many(len(new_keys))
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
        views = self._views_sharing()
        for view in views:
            for row in rows:
                view._save_row(row)
        arr = np.array(rows, np.int64)
        self._data[arr] = 0.0
        self._free.extend(rows)

    def freeze(self) -> HistoryView:
        self._eids_shared = True
        self._other_shared = True
        view = HistoryView(self._data, self._eids, self._keys, self._krows, self._other, self._pos, self._filled)
        self._views.add(view)
        return view

    def clear(self) -> None:
        HistoryStore.__init__(self, self.length, self._data.shape[0])

    # ------------------------------------------------------------------ rows

    def _allocate(self) -> int:
        return int(self._allocate_many(1)[0])

    def _allocate_many(self, n: int) -> np.ndarray:
        take = min(n, len(self._free))
        rows = [self._free.pop() for _ in range(take)]
        more = n - take
        if more:
            need = self._used + more
            if need > self._data.shape[0]:
                grown = np.zeros((max(need, int(self._data.shape[0] * 1.5) + 16), self.length), np.float32)
                grown[: self._used] = self._data[: self._used]
                self._data = grown
            rows.extend(range(self._used, need))
            self._used = need
        return np.array(rows, np.int64)

    def _collect(self) -> None:
        """Free series that were zero for a whole window, so memory follows activity."""
        zero = np.logical_not(self._data[: self._used].any(axis=1))
        if len(self._krows):
            dead = zero[self._krows]
            if dead.any():
                self._free.extend(self._krows[dead].tolist())
                self._keys, self._krows = self._keys[~dead], self._krows[~dead]
                self._last_add = None
        dead_other = {k: r for k, r in self._other.items() if zero[r]}
        if dead_other:
            self._free.extend(dead_other.values())
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
