"""A DataTable that mirrors a list of keyed rows by diffing, never by clearing.

Each tick, ``sync(rows)`` removes rows whose key is gone, adds new keys, updates only
the cells that changed (text or style), reorders to the given order and puts the cursor back on the
row it was on (not the index). Column widths are fixed, so updates never re-measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich.text import Text
from textual.actions import SkipAction
from textual.widgets import DataTable
from textual.widgets.data_table import ColumnKey, RowKey

Cells = tuple[Text, ...]


def signature(cells: Cells) -> tuple:
    """What a row looks like (text and style of each cell): rows are diffed by this."""
    return tuple((c.plain, c.style) for c in cells)


class KeyedText(Text):
    """The first cell of a row: carries the row's key so the table can be ordered by it."""

    def __init__(self, text: str, key: str, style: str = "", justify=None) -> None:
        super().__init__(text, style=style, justify=justify, no_wrap=True, overflow="ellipsis")
        self.row_key = key


@dataclass(frozen=True)
class Col:
    key: str
    label: str
    width: int
    justify: str = "right"  # "left" for text columns
    tooltip: str = ""


class DiffTable(DataTable):
    """DataTable + ``sync``: the owner passes rows already filtered and sorted."""

    COLUMNS: tuple[Col, ...] = ()
    # Above this many stale rows, one clear() beats O(n) remove_row calls.
    CLEAR_THRESHOLD = 64

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("cursor_type", "row")
        kwargs.setdefault("zebra_stripes", False)
        super().__init__(**kwargs)
        # Set by the owner: Home/End are not this table's but go up to the bindings above it
        # (a replay seeks to its first/last interval with them).
        self.edges_to_owner = False
        self._cells: dict[str, Cells] = {}
        self._sigs: dict[str, tuple] = {}
        self._order: list[str] = []

    def on_mount(self) -> None:
        for col in self.COLUMNS:
            self.add_column(self._label(col, ""), key=col.key, width=col.width)

    # ------------------------------------------------------------------ Home/End
    def action_scroll_home(self) -> None:
        """Home: the first row (as in htop), unless the owner takes Home (``edges_to_owner``)."""
        if self.edges_to_owner:
            raise SkipAction()
        self.action_scroll_top()

    def action_scroll_end(self) -> None:
        """End: the last row (as in htop), unless the owner takes End (``edges_to_owner``)."""
        if self.edges_to_owner:
            raise SkipAction()
        self.action_scroll_bottom()

    # ------------------------------------------------------------------ labels
    def _label(self, col: Col, mark: str) -> Text:
        text = col.label + mark
        return Text(text.rjust(col.width) if col.justify == "right" else text, no_wrap=True)

    def set_labels(self, labels: dict[str, str]) -> None:
        """Change column labels (sort marks, "no source" marks); only repaints on change."""
        changed = False
        for col in self.COLUMNS:
            label = self._label(Col(col.key, labels.get(col.key, col.label), col.width, col.justify), "")
            column = self.columns.get(ColumnKey(col.key))
            if column is not None and column.label != label:
                column.label = label
                changed = True
        if changed:
            self.notify_style_update()

    # ------------------------------------------------------------------ rows
    @property
    def cursor_key(self) -> str | None:
        if not self.row_count:
            return None
        try:
            return self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:
            return None

    @property
    def order(self) -> list[str]:
        return list(self._order)

    def sync(self, rows: Sequence[tuple[str, Cells]], sigs: dict[str, tuple] | None = None) -> None:
        """Mirror ``rows`` (key, cells) in this order; ``sigs`` may carry precomputed signatures."""
        cursor = self.cursor_key
        scroll_y = self.scroll_y
        wanted = {key: cells for key, cells in rows}
        keys = [key for key, _ in rows]
        stale = [k for k in self._order if k not in wanted]
        col_keys = [c.key for c in self.COLUMNS]
        with self.app.batch_update():
            if len(stale) > self.CLEAR_THRESHOLD:
                self.clear()
                self._cells.clear()
                self._sigs.clear()
                self._order = []
            else:
                for key in stale:
                    self.remove_row(key)
                    del self._cells[key]
                    del self._sigs[key]
                if stale:
                    gone = set(stale)
                    self._order = [k for k in self._order if k not in gone]
            changed = 0
            data = getattr(self, "_data", None)
            for key, cells in rows:
                sig = sigs.get(key) if sigs is not None else None
                if sig is None:
                    sig = signature(cells)
                old = self._sigs.get(key)
                if old is None:
                    self.add_row(*cells, key=key)
                    self._order.append(key)
                elif old != sig:
                    row = data.get(RowKey(key)) if data is not None else None
                    for ck, new, now, was in zip(col_keys, cells, sig, old):
                        if now != was:
                            if row is not None and ck in row:
                                # update_cell() without its per-call refresh: one refresh below
                                row[ck] = new
                                changed += 1
                            else:
                                self.update_cell(key, ck, new)
                self._cells[key] = cells
                self._sigs[key] = sig
            if changed:
                self._update_count += 1
                self.refresh()
            if self._order != keys:
                rank = {k: i for i, k in enumerate(keys)}
                self.sort(key=lambda values: rank[values[0].row_key])
                self._order = keys
            if cursor is not None and cursor in wanted:
                row = self.get_row_index(RowKey(cursor))
                if row != self.cursor_row:
                    self.move_cursor(row=row, animate=False, scroll=True)
            elif cursor is not None and self.row_count:
                self.scroll_y = scroll_y
