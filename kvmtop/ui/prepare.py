"""Work done on the feed's thread before a snapshot reaches the UI thread.

Filtering (on the columns), the header's figures and the cells of the VM table's rows in
view are pure functions of the snapshot, so the worker computes them and the UI thread
only diffs the table. ``VmView`` is what the main screen last showed (its sort and rows in
view); rows that scroll in later get their cells on the UI thread, on demand.
"""

from __future__ import annotations

from typing import NamedTuple

from ..filtering import ReasonFilter
from ..gc_policy import paused as gc_paused
from ..model import Snapshot
from .widgets.vm_table import (
    ASCENDING,
    RowCells,
    all_cells,
    cells_of,
    column_order,
    trend_top_of,
    trend_window,
    vm_keys,
)


class VmView(NamedTuple):
    column: str = "exits"
    reverse: bool = False
    top: int = 0  # first row on screen
    height: int = 60  # rows on screen
    cursor: str | None = None  # key of the row the cursor is on (the table keeps it there)
    margin: int = 8
    rows: tuple[int, ...] | None = None  # the F4 filter's guests (positions in snapshot.vms), None: all

    @property
    def descending(self) -> bool:
        return (self.column not in ASCENDING) != self.reverse


def rows_in_view(order: list[str], view: VmView) -> list[str]:
    """The rows the table will show once it has put the cursor back on its guest (it scrolls
    only as far as needed to keep that row on screen), with the margin."""
    top = view.top
    if view.cursor is not None:
        try:
            pos = order.index(view.cursor)
        except ValueError:
            pos = None
        if pos is not None and not top <= pos < top + view.height:
            top = pos if pos < top else pos - view.height + 1
    top = max(0, min(top, len(order) - view.height))
    return order[max(0, top - view.margin):top + view.height + view.margin]


def prepare(raw: Snapshot, reason_filter: ReasonFilter | None, trends_shared: bool = True,
            view: VmView | None = None) -> tuple[Snapshot, RowCells]:
    view = view or VmView()
    with gc_paused():  # thousands of small acyclic objects (see kvmtop.gc_policy)
        shown = reason_filter.apply(raw) if reason_filter is not None else raw
        host = shown.host
        _ = host.latency.p99, host.userspace_latency.p99, host.history, host.userspace_history
        if not hasattr(shown, "frame"):
            return shown, all_cells(shown, trends_shared)
        keys = vm_keys(shown)
        order = [keys[i] for i in column_order(shown, view.column, view.descending, view.rows)]
        index = {k: i for i, k in enumerate(keys)}
        trends = trend_window(shown, shown.collector) if trends_shared else None
        scale = trend_top_of(shown, shown.collector, window=trends) if trends_shared else None
        return shown, cells_of(shown, [index[k] for k in rows_in_view(order, view)], scale, trends)
