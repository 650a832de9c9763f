"""A DataTable that mirrors a list of keyed rows by diffing, never by clearing.

Each tick, ``sync(rows)`` removes rows whose key is gone, adds new keys, updates only
the cells that changed (text or style), reorders to the given order and puts the cursor back on the
row it was on (not the index). Column widths are fixed, so updates never re-measure.

Rows carry one cell per column of the table's *layout*; the table shows the columns of
the layout that fit its width, dropping the least important first (``Col.priority``), and
rebuilds itself only when that set (or the layout) changes.
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
    priority: int = 0  # when the table is too narrow, the highest priority goes first; 0 stays


def fit_columns(columns: Sequence[Col], width: int, padding: int = 1) -> tuple[int, ...]:
    """Indices of the columns shown in ``width`` cells: the least important go first."""
    need = [c.width + 2 * padding for c in columns]
    shown = set(range(len(columns)))
    total = sum(need)
    # highest priority first; among equals the rightmost first
    for i in sorted(range(len(columns)), key=lambda i: (-columns[i].priority, -i)):
        if total <= width or columns[i].priority == 0:
            break
        shown.discard(i)
        total -= need[i]
    return tuple(sorted(shown))


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
        self.layout_columns: tuple[Col, ...] = self.COLUMNS  # what each row's cells are
        self._shown: tuple[int, ...] | None = None  # indices of layout_columns on screen
        self._labels: dict[str, str] = {}
        self._cursor_hint: str | None = None  # the cursor's row across a rebuild

    def on_mount(self) -> None:
        self._refit()

    def on_resize(self) -> None:
        self._refit()

    # ------------------------------------------------------------------ columns
    @property
    def shown_columns(self) -> tuple[Col, ...]:
        shown = self._shown if self._shown is not None else range(len(self.layout_columns))
        return tuple(self.layout_columns[i] for i in shown)

    def set_layout(self, columns: tuple[Col, ...]) -> None:
        """Rows will carry cells for ``columns`` from now on (the rows so far are dropped)."""
        if columns == self.layout_columns:
            return
        self._cursor_hint = self.cursor_key or self._cursor_hint
        self.layout_columns = columns
        self._cells.clear()
        self._sigs.clear()
        self._order = []
        self._shown = None
        self._refit()

    def _available_width(self) -> int:
        """The content width less a vertical scrollbar, whether one shows now or not (so a
        scrollbar appearing as rows are added never drops a column)."""
        width = self.size.width
        if self.show_vertical_scrollbar:
            width += self.scrollbar_size_vertical
        return width - self.styles.scrollbar_size_vertical

    def _refit(self) -> None:
        """Show the columns that fit; rebuild the table when that set changed."""
        width = self._available_width()
        columns = self.layout_columns
        shown = fit_columns(columns, width, self.cell_padding) if width > 0 else tuple(range(len(columns)))
        if shown == self._shown:
            return
        self._shown = shown
        cursor = self.cursor_key or self._cursor_hint
        with self.app.batch_update():
            self.clear(columns=True)
            for i in shown:
                col = columns[i]
                self.add_column(self._label(col), key=col.key, width=col.width)
            for key in self._order:
                self.add_row(*self._visible(self._cells[key]), key=key)
            self._restore_cursor(cursor)

    def _visible(self, cells: Cells) -> Cells:
        shown = self._shown
        if shown is None or len(shown) == len(cells):
            return cells
        return tuple(cells[i] for i in shown)

    def _restore_cursor(self, cursor: str | None) -> None:
        if cursor is not None and cursor in self._sigs:
            row = self.get_row_index(RowKey(cursor))
            if row != self.cursor_row:
                self.move_cursor(row=row, animate=False, scroll=True)
            self._cursor_hint = None

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
    def _label(self, col: Col) -> Text:
        text = self._labels.get(col.key, col.label)
        return Text(text.rjust(col.width) if col.justify == "right" else text, no_wrap=True)

    def set_labels(self, labels: dict[str, str]) -> None:
        """Change column labels (sort marks, "no source" marks); only repaints on change."""
        self._labels = dict(labels)
        changed = False
        for col in self.layout_columns:
            label = self._label(col)
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
        if self._shown is None:
            self._refit()
        columns = self.layout_columns
        shown = self._shown if self._shown is not None else tuple(range(len(columns)))
        col_keys = [columns[i].key for i in shown]
        project = len(shown) != len(columns)
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
                    self.add_row(*(self._visible(cells) if project else cells), key=key)
                    self._order.append(key)
                elif old != sig:
                    row = data.get(RowKey(key)) if data is not None else None
                    cells_: Sequence = [cells[i] for i in shown] if project else cells
                    sig_: Sequence = [sig[i] for i in shown] if project else sig
                    old_: Sequence = [old[i] for i in shown] if project else old
                    for ck, new, now, was in zip(col_keys, cells_, sig_, old_):
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
            cursor = cursor or self._cursor_hint
            if cursor is not None and cursor in wanted:
                self._restore_cursor(cursor)
            elif cursor is not None and self.row_count:
                self.scroll_y = scroll_y
