"""The guest screen's per-vCPU table (exit layout, or userspace layout where kvm_exit has no source)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.binding import Binding

from ...model import CollectorStatus, VcpuStat, VmStat
from .. import format as fmt
from .diff_table import Cells, Col, KeyedText
from .vm_table import SORTS, TrendTable, _top_user, rate_cell, trend_top, user_cell, user_share

TREND_WIDTH = 9
USER_TREND_WIDTH = 14

VCPU = Col("vcpu", "vCPU", 5, "left")
TID = Col("tid", "TID", 7, priority=5)

EXIT_COLUMNS: tuple[Col, ...] = (
    VCPU, TID,
    Col("exits", "EXITS/s", 8),
    Col("top", "TOP REASON", 18, "left", priority=1),
    Col("p99", "P99", 6, priority=2),
    Col("req", "TOP REQUEST", 13, "left", priority=4),
    Col("user", "USER/s", 6, priority=3),
    Col("trend", "TREND", TREND_WIDTH, "left", priority=6),
)

USER_COLUMNS: tuple[Col, ...] = (
    VCPU, TID,
    Col("user", "USER/s", 7),
    Col("utop", "TOP KVM_EXIT", 12, "left", priority=1),
    Col("ushare", "%", 4, priority=4),
    Col("up50", "RT P50", 6, priority=3),
    Col("up99", "RT P99", 6, priority=2),
    Col("utrend", "USER TREND", USER_TREND_WIDTH, "left", "userspace exits per second", priority=6),
)
COLUMNS = EXIT_COLUMNS

VCPU_SORTS = {
    **{k: SORTS[k] for k in ("exits", "top", "p99", "user", "trend", "utop", "ushare", "up50", "up99", "utrend")},
    "vcpu": lambda v: (v.index is None, v.index or 0, v.tid),
    "tid": lambda v: v.tid,
    "req": lambda v: v.top_request.share if v.top_request else 0.0,
}


def vcpu_key(vcpu: VcpuStat) -> str:
    return str(vcpu.tid)


def vcpu_cells(v: VcpuStat, status: CollectorStatus, scale: float | None = None) -> Cells:
    """One vCPU's row; ``scale``: the trend scale shared by the rows (None: the row's own)."""
    label = str(v.index) if v.index is not None else "?"
    head = (KeyedText(label, vcpu_key(v), style="bold"), fmt.cell_right(str(v.tid), "dim"))
    if not status.has("exits"):
        lat = v.userspace_latency
        top = _top_user(v)
        return (
            *head,
            user_cell(v, v, "bold magenta"),
            fmt.cell_left(top.name.removeprefix("KVM_EXIT_"), "magenta") if top else fmt.cell_left("—", "dim"),
            fmt.cell_right(fmt.share(user_share(v))) if top else fmt.cell_right("—", "dim"),
            fmt.cell_right(fmt.duration(lat.p50)) if lat.count else fmt.cell_right("—", "dim"),
            fmt.cell_right(fmt.duration(lat.p99), "yellow") if lat.count else fmt.cell_right("—", "dim"),
            fmt.cell_left(fmt.spark(v.userspace_history, USER_TREND_WIDTH, top=scale), "green"),
        )
    top = v.top_reason
    lat = v.latency
    if status.has("requests"):
        req = v.top_request
        request = fmt.cell_left(f"{req.name} {fmt.share(req.share)}" if req else "—", "" if req else "dim")
    else:
        request = fmt.cell_left(fmt.NA, "dim")
    return (
        *head,
        rate_cell(v.exits_per_s, v.exits_lost, "bold"),
        fmt.cell_left(top.name if top else "—", "cyan" if top else "dim"),
        fmt.cell_right(fmt.duration(lat.p99) if lat.count else "—", "yellow" if lat.count else "dim"),
        request,
        user_cell(v, v) if status.has("userspace") else fmt.NA_CELL,
        fmt.cell_left(fmt.spark(v.history, TREND_WIDTH, top=scale), "green"),
    )


class VcpuTable(TrendTable):
    COLUMNS = EXIT_COLUMNS
    SORTS = VCPU_SORTS
    ASCENDING = frozenset({"vcpu", "tid", "top", "utop"})
    DEFAULT_SORT = "vcpu"
    BINDINGS = [Binding("enter", "select_cursor", "Open vCPU")]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._status = CollectorStatus()

    def show(self, vm: VmStat, status: CollectorStatus, trends_shared: bool = True) -> None:
        self._status = status
        self.trends_shared = trends_shared
        layout = EXIT_COLUMNS if status.has("exits") else USER_COLUMNS
        if layout is not self.layout_columns:
            self.set_layout(layout)
            if self.sort_column not in {c.key for c in layout}:
                self.sort_column, self.sort_reverse = self.DEFAULT_SORT, False
        self.show_items(vm.vcpus)

    def rows_of(self, items: Sequence[VcpuStat]) -> list[tuple[str, Cells]]:
        status = self._status
        width = TREND_WIDTH if status.has("exits") else USER_TREND_WIDTH
        scale = trend_top(items, status, width) if self.trends_shared else None
        return [(vcpu_key(v), vcpu_cells(v, status, scale)) for v in items]
