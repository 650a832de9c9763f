"""A DiffTable that sorts its own rows: htop's `<` `>` (previous/next column), F6 (choose
the column) and `I` (invert) act on the table in use (the screens bind them, see
``screens.base``), and a click on a header sorts by it.

Subclasses name a sort key per column (``SORTS``, applied to the items ``rows_of``
turns into rows) and keep the items of the last ``show``; a change of sort re-renders
them at once. The table posts ``SortChanged`` (the header's "Sort" label) whenever its
sort changes or it gets the focus, so the header always describes the table in use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from textual.message import Message
from textual.widgets import DataTable

from ..messages import SortChanged
from .diff_table import Cells, Col, DiffTable


class SortableTable(DiffTable):
    SORTS: dict[str, Callable[[Any], Any]] = {}
    ASCENDING: frozenset[str] = frozenset()  # text columns sort A→Z first, numbers biggest first
    DEFAULT_SORT = ""

    class PickSort(Message):
        """F6: show the columns to choose from; the answer goes to ``table.sort_by``."""

        def __init__(self, table: SortableTable, columns: tuple[Col, ...], current: str) -> None:
            super().__init__()
            self.table = table
            self.columns = columns
            self.current = current

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sort_column = self.DEFAULT_SORT
        self.sort_reverse = False
        self.sort_chosen = False  # the user picked a column (defaults no longer apply)
        self._items: Sequence[Any] = ()

    # ------------------------------------------------------------------ subclass hooks
    def rows_of(self, items: Sequence[Any]) -> list[tuple[str, Cells]]:
        """(key, cells) of each item, in the order given."""
        raise NotImplementedError

    def row_sigs(self) -> dict[str, tuple] | None:
        """Precomputed row signatures for ``sync``, when the rows came with them."""
        return None

    def column_label(self, col: Col) -> str:
        """A column's label before the sort mark (subclasses mark "no source" columns)."""
        return col.label

    # ------------------------------------------------------------------ sorting
    @property
    def descending(self) -> bool:
        return (self.sort_column not in self.ASCENDING) != self.sort_reverse

    def announce_sort(self) -> None:
        """Tell the app (the header) this table's sort, when its screen is the one shown.

        Sent as the table's own message, so it bubbles past the screen even when a
        screen's callback called us (Textual stops a message at the parent of its sender).
        """
        if self.screen is self.app.screen:
            self.post_message(SortChanged(self.sort_label()).set_sender(self))

    def sort_label(self) -> str:
        col = next((c for c in self.layout_columns if c.key == self.sort_column), None)
        label = col.label if col is not None else self.sort_column
        return f"{label} {'▼' if self.descending else '▲'}"

    def sorted_items(self, items: Sequence[Any]) -> list[Any]:
        """``items`` in display order; ties keep their given order."""
        key = self.SORTS.get(self.sort_column)
        if key is None:
            return list(items)
        return sorted(items, key=key, reverse=self.descending)

    def show_items(self, items: Sequence[Any]) -> None:
        self._items = items
        self.sync(self.rows_of(self.sorted_items(items)), self.row_sigs())
        self._mark()

    def resort(self) -> None:
        self.show_items(self._items)
        self.announce_sort()

    def set_sort(self, column: str, reverse: bool = False, *, chosen: bool = True) -> None:
        if column not in self.SORTS:
            return
        self.sort_chosen = self.sort_chosen or chosen
        if (column, reverse) != (self.sort_column, self.sort_reverse):
            self.sort_column, self.sort_reverse = column, reverse
            self.resort()

    def sort_by(self, column: str) -> None:
        """Sort by ``column``; again on the same column inverts (as a header click)."""
        if column == self.sort_column:
            self.set_sort(column, not self.sort_reverse)
        else:
            self.set_sort(column)

    def _mark(self) -> None:
        labels = {}
        for col in self.layout_columns:
            label = self.column_label(col)
            if col.key == self.sort_column:
                label += "▼" if self.descending else "▲"
            labels[col.key] = label
        self.set_labels(labels)

    # ------------------------------------------------------------------ actions
    def sortable_columns(self) -> list[Col]:
        return [c for c in self.shown_columns if c.key in self.SORTS]

    def action_sort_step(self, step: int) -> None:
        keys = [c.key for c in self.sortable_columns()]
        if not keys:
            return
        i = keys.index(self.sort_column) if self.sort_column in keys else -1
        self.set_sort(keys[(i + step) % len(keys)])

    def action_sort_invert(self) -> None:
        self.set_sort(self.sort_column, not self.sort_reverse)

    def action_sort_pick(self) -> None:
        """F6: ask for the column list (the app opens the picker and calls ``sort_by``)."""
        columns = tuple(c for c in self.layout_columns if c.key in self.SORTS)
        self.post_message(self.PickSort(self, columns, self.sort_column).set_sender(self))

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def on_focus(self) -> None:
        self.announce_sort()
