"""What the screens show: one value the app sets and the screens watch (``app.view``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..io_stats import IoSample
from ..model import Snapshot
from .widgets.diff_table import Cells


@dataclass(frozen=True)
class View:
    snapshot: Snapshot  # after the reason filter
    vm_cells: Mapping[str, Cells]  # the VM table's cells of ``snapshot``, by row key (computed off the UI thread)
    replaying: bool = False  # a seekable feed: tables hand Home/End to the app, which seeks
    trends_shared: bool = True  # sparklines on one scale per table (`s` toggles: each row its own)
    io: IoSample | None = None  # PIO/MMIO accesses of the interval, while a screen asks for them
    io_supported: bool = False  # the source can count them (live, kvm_pio/kvm_mmio present)
