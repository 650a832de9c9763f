"""The guest screen's per-vCPU table."""

from __future__ import annotations

from textual.binding import Binding

from ...model import CollectorStatus, VcpuStat, VmStat
from .. import format as fmt
from .diff_table import Cells, Col, DiffTable, KeyedText
from .vm_table import rate_cell, user_cell

TREND_WIDTH = 8

COLUMNS: tuple[Col, ...] = (
    Col("vcpu", "vCPU", 5, "left"),
    Col("tid", "TID", 7),
    Col("exits", "EXITS/s", 8),
    Col("top", "TOP REASON", 18, "left"),
    Col("p99", "P99", 6),
    Col("req", "TOP REQUEST", 13, "left"),
    Col("user", "USER/s", 6),
    Col("trend", "TREND", TREND_WIDTH, "left"),
)


def vcpu_key(vcpu: VcpuStat) -> str:
    return str(vcpu.tid)


def vcpu_cells(v: VcpuStat, status: CollectorStatus) -> Cells:
    label = str(v.index) if v.index is not None else "?"
    first = KeyedText(label, vcpu_key(v), style="bold")
    if status.has("exits"):
        top = v.top_reason
        lat = v.latency
        exits = (
            rate_cell(v.exits_per_s, v.exits_lost, "bold"),
            fmt.cell_left(top.name if top else "—", "cyan" if top else "dim"),
            fmt.cell_right(fmt.duration(lat.p99) if lat.count else "—", "yellow" if lat.count else "dim"),
        )
        trend = v.history
    else:
        exits = (fmt.NA_CELL, fmt.cell_left(fmt.NA, "dim"), fmt.NA_CELL)
        trend = v.userspace_history
    if status.has("requests"):
        req = v.top_request
        request = fmt.cell_left(f"{req.name} {fmt.share(req.share)}" if req else "—", "" if req else "dim")
    else:
        request = fmt.cell_left(fmt.NA, "dim")
    user = user_cell(v, v) if status.has("userspace") else fmt.NA_CELL
    return (
        first,
        fmt.cell_right(str(v.tid), "dim"),
        *exits,
        request,
        user,
        fmt.cell_left(fmt.spark(trend, TREND_WIDTH), "green"),
    )


class VcpuTable(DiffTable):
    COLUMNS = COLUMNS
    BINDINGS = [Binding("enter", "select_cursor", "Open vCPU")]

    def show(self, vm: VmStat, status: CollectorStatus) -> None:
        self.sync([(vcpu_key(v), vcpu_cells(v, status)) for v in vm.vcpus])
        if not status.has("exits"):
            self.set_labels({"trend": "TREND user/s"})
