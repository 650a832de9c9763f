"""The main screen's table: one row per guest, sortable by any column."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rich.text import Text
from textual.binding import Binding

from ... import marks
from ...model import CollectorStatus, Snapshot, VcpuStat, VmStat
from ...safe_text import safe_name
from .. import format as fmt
from .diff_table import Cells, Col, DiffTable, KeyedText, signature

TREND_WIDTH = 16

COLUMNS: tuple[Col, ...] = (
    Col("name", "NAME", 20, "left", "guest name (from the VMM's command line)"),
    Col("pid", "PID", 7),
    Col("vcpus", "vCPU", 4),
    Col("exits", "EXITS/s", 8),
    Col("top", "TOP REASON", 18, "left"),
    Col("share", "%", 4),
    Col("p50", "P50", 7),
    Col("p99", "P99", 7),
    Col("max", "MAX", 7),
    Col("user", "USER/s", 7),
    Col("hcall", "HCALL/s", 7),
    Col("trend", "TREND", TREND_WIDTH, "left"),
)

# Which collector feature each column needs.
NEEDS = {"exits": "exits", "top": "exits", "share": "exits", "p50": "exits", "p99": "exits",
         "max": "exits", "user": "userspace", "hcall": "hypercalls"}

SortKey = Callable[[VmStat], object]

SORTS: dict[str, SortKey] = {
    "name": lambda v: v.name.lower(),
    "pid": lambda v: v.pid,
    "vcpus": lambda v: len(v.vcpus),
    "exits": lambda v: v.exits_per_s,
    "top": lambda v: v.top_reason.name if v.top_reason else "",
    "share": lambda v: v.top_reason_share,
    "p50": lambda v: v.latency.p50,
    "p99": lambda v: v.latency.p99,
    "max": lambda v: v.latency.max,
    "user": lambda v: v.userspace_per_s,
    "hcall": lambda v: v.hypercalls_per_s,
    "trend": lambda v: sum(v.history[-10:]),
}
# Text columns sort ascending by default, numbers descending (biggest first, as in htop).
ASCENDING = {"name", "pid", "top"}

EXITED = " (exited)"  # a VM whose process ended in this interval: its last counts


def vm_key(vm: VmStat) -> str:
    return f"{vm.pid}:{vm.start_time}"


CUT = "bold red"  # a figure a full BPF map cut: shown as a lower bound


def rate_cell(per_s: float, lost: int, style: str = "") -> Text:
    """A rate, marked ``≥`` in red when a full map cut events from it."""
    return fmt.cell_right(marks.at_least(fmt.rate(per_s), lost), CUT if lost else style)


def user_cell(b: VmStat | VcpuStat, longest: VcpuStat | None) -> Text:
    """USER/s; while a vCPU's VMM has had an exit for STUCK_NS or more, how long instead (``3.20s!``)."""
    flight = longest.in_userspace if longest is not None else None
    if flight is not None and marks.stuck(flight):
        return fmt.cell_right(f"{fmt.duration(flight.ns)}!", "bold reverse red")
    return rate_cell(b.userspace_per_s, b.userspace_lost, "magenta")


def vm_cells(vm: VmStat, status: CollectorStatus) -> Cells:
    """One row, as Text (never markup: the name is untrusted)."""
    key = vm_key(vm)
    name = KeyedText(safe_name(vm.name, 40) + (EXITED if vm.exited else ""), key,
                     style="dim bold" if vm.exited else "bold")
    exits_ok = status.has("exits")
    if exits_ok:
        lat = vm.latency
        top = vm.top_reason
        exit_cells = (
            rate_cell(vm.exits_per_s, vm.exits_lost, "bold"),
            fmt.cell_left(top.name if top else "—", "cyan" if top else "dim"),
            fmt.cell_right(fmt.share(vm.top_reason_share) if top else "—", "" if top else "dim"),
            fmt.cell_right(fmt.duration(lat.p50) if lat.count else "—", "" if lat.count else "dim"),
            fmt.cell_right(fmt.duration(lat.p99) if lat.count else "—", "yellow" if lat.count else "dim"),
            fmt.cell_right(fmt.duration(lat.max) if lat.count else "—", "" if lat.count else "dim"),
        )
        trend = vm.history
    else:
        exit_cells = (fmt.NA_CELL, fmt.cell_left(fmt.NA, "dim"), fmt.NA_CELL, fmt.NA_CELL, fmt.NA_CELL, fmt.NA_CELL)
        trend = vm.userspace_history
    user = user_cell(vm, vm.longest_in_userspace) if status.has("userspace") else fmt.NA_CELL
    hcall = rate_cell(vm.hypercalls_per_s, vm.hypercalls_lost) if status.has("hypercalls") else fmt.NA_CELL
    return (
        name,
        fmt.cell_right(str(vm.pid), "dim"),
        fmt.cell_right(str(len(vm.vcpus))),
        *exit_cells,
        user,
        hcall,
        fmt.cell_left(fmt.spark(trend, TREND_WIDTH), "green"),
    )


class RowCells(dict):
    """key -> cells of every VM row, plus ``sigs`` (key -> signature) for the diff."""

    sigs: dict[str, tuple]


def all_cells(snapshot: Snapshot) -> RowCells:
    """Cells and signatures of every row (pure; the feed worker calls this off the UI thread)."""
    out = RowCells((vm_key(vm), vm_cells(vm, snapshot.collector)) for vm in snapshot.vms)
    out.sigs = {key: signature(cells) for key, cells in out.items()}
    return out


def sorted_vms(snapshot: Snapshot, column: str, reverse: bool) -> list[VmStat]:
    """Rows in display order: ``reverse`` flips the column's natural direction."""
    key = SORTS.get(column, SORTS["exits"])
    descending = (column not in ASCENDING) != reverse
    return sorted(snapshot.vms, key=lambda v: (key(v), -v.pid if descending else v.pid), reverse=descending)


def labels(column: str, reverse: bool, status: CollectorStatus) -> dict[str, str]:
    """Column labels with the sort mark and ``n/a`` marks for columns without a source."""
    out = {}
    for col in COLUMNS:
        label = col.label
        if col.key == "trend" and not status.has("exits"):
            label = "TREND user/s"
        descending = (col.key not in ASCENDING) != reverse
        if col.key == column:
            label = label + ("▼" if descending else "▲")
        out[col.key] = label
    return out


class VmTable(DiffTable):
    COLUMNS = COLUMNS
    BINDINGS = [Binding("enter", "select_cursor", "Open")]

    def show(self, snapshot: Snapshot, column: str, reverse: bool,
             cells: Mapping[str, Cells] | None = None) -> None:
        if cells is None:
            cells = all_cells(snapshot)
        order = sorted_vms(snapshot, column, reverse)
        keys = [vm_key(vm) for vm in order]
        self.sync([(k, cells[k]) for k in keys], getattr(cells, "sigs", None))
        self.set_labels(labels(column, reverse, snapshot.collector))
