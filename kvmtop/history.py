"""Rate history for sparklines: a compact ring per series, frozen into each snapshot.

A series is identified by ``(entity, kind, code)``: ``entity`` names a VM, a vCPU or the
host, ``kind`` is one of TOTAL/REASON/USERSPACE/USERSPACE_TOTAL. Values are events per
second, one column per interval. Storage is one float32 matrix (8 vCPUs x 1,000 VMs x a
few reasons x 120 intervals is tens of MB, not hundreds as Python floats would be).
"""

from __future__ import annotations

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


class HistoryView:
    """The store as it was at one interval; series come out oldest first.

    Copy-on-write: a view shares the store's matrix, and the store saves, into every live
    view, a column before it overwrites it and a row before it clears it. A view held
    for one interval costs one column, not a copy of the whole matrix.
    """

    __slots__ = ("_data", "_rows", "_pos", "_filled", "_cols", "_saved_rows", "__weakref__")

    def __init__(self, data: np.ndarray, rows: dict[Entity, dict[SeriesKey, int]], pos: int, filled: int):
        self._data = data
        self._rows = rows
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

    def _save_column(self, col: int) -> None:
        if col not in self._cols and col in self._window():
            self._cols[col] = self._data[:, col].copy()

    def _save_row(self, row: int) -> None:
        if row not in self._saved_rows:
            self._saved_rows[row] = self._raw(row)

    def series(self, entity: Entity, kind: str, code: object = None) -> tuple[float, ...]:
        row = self._rows.get(entity, {}).get((kind, code))
        if row is None:
            return (0.0,) * self._filled
        return tuple(float(v) for v in self._raw(row)[self._window()])

    def keys(self, entity: Entity, kind: str) -> list[object]:
        return [code for (k, code) in self._rows.get(entity, {}) if k == kind]

    def sum_series(self, entity: Entity, kind: str, admit: Callable[[Any], bool]) -> tuple[float, ...]:
        rows = [r for (k, code), r in self._rows.get(entity, {}).items() if k == kind and admit(code)]
        if not rows:
            return (0.0,) * self._filled
        total = np.sum([self._raw(r) for r in rows], axis=0)
        return tuple(float(v) for v in total[self._window()])


EMPTY_VIEW = HistoryView(np.zeros((0, 1), np.float32), {}, 0, 0)


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
        self._rows: dict[Entity, dict[SeriesKey, int]] = {}
        self._free: list[int] = []
        self._used = 0
        self._pos = -1
        self._filled = 0
        self._ticks = 0
        self._views: weakref.WeakSet[HistoryView] = weakref.WeakSet()  # frozen views sharing _data

    def _views_sharing(self) -> list[HistoryView]:
        return [v for v in list(self._views) if v._data is self._data]

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

    def add(self, entity: Entity, kind: str, code: object, value: float) -> None:
        series = self._rows.setdefault(entity, {})
        row = series.get((kind, code))
        if row is None:
            row = series[(kind, code)] = self._allocate()
        self._data[row, self._pos] += value

    def add_many(self, entity: Entity, kind: str, values: Iterable[tuple[object, float]]) -> None:
        for code, value in values:
            self.add(entity, kind, code, value)

    def forget(self, keep: Callable[[Entity], bool]) -> None:
        """Drop every entity for which ``keep`` is false (a VM that exited)."""
        views = None
        for entity in [e for e in self._rows if not keep(e)]:
            for row in self._rows.pop(entity).values():
                views = self._views_sharing() if views is None else views
                for view in views:
                    view._save_row(row)
                self._data[row] = 0.0
                self._free.append(row)

    def freeze(self) -> HistoryView:
        rows = {e: dict(s) for e, s in self._rows.items()}
        view = HistoryView(self._data, rows, self._pos, self._filled)
        self._views.add(view)
        return view

    def clear(self) -> None:
        HistoryStore.__init__(self, self.length, self._data.shape[0])

    def _allocate(self) -> int:
        if self._free:
            return self._free.pop()
        if self._used == self._data.shape[0]:
            grown = np.zeros((self._data.shape[0] * 2, self.length), np.float32)
            grown[: self._used] = self._data
            self._data = grown
        self._used += 1
        return self._used - 1

    def _collect(self) -> None:
        """Free series that were zero for a whole window, so memory follows activity."""
        zero = np.logical_not(self._data[: self._used].any(axis=1))
        for entity in list(self._rows):
            series = self._rows[entity]
            for key in [k for k, r in series.items() if zero[r]]:
                self._free.append(series.pop(key))
            if not series:
                del self._rows[entity]
