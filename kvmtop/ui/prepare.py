"""Work done on the feed's thread before a snapshot reaches the UI thread.

Filtering, percentiles, histories and the VM table's cells are pure functions of the
snapshot, so the worker computes them and the UI thread only diffs the table.
"""

from __future__ import annotations

from ..filtering import ReasonFilter
from ..gc_policy import paused as gc_paused
from ..model import Snapshot
from .widgets.diff_table import Cells
from .widgets.vm_table import all_cells


def prepare(raw: Snapshot, reason_filter: ReasonFilter | None,
            trends_shared: bool = True) -> tuple[Snapshot, dict[str, Cells]]:
    with gc_paused():  # thousands of small acyclic objects (see kvmtop.gc_policy)
        shown = reason_filter.apply(raw) if reason_filter is not None else raw
        host = shown.host
        _ = host.latency.p99, host.userspace_latency.p99, host.history, host.userspace_history
        return shown, all_cells(shown, trends_shared)
