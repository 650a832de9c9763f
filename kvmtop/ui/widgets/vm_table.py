"""The main screen's table: one row per guest, sortable by any column.

Two layouts: where ``kvm_exit`` has a source, exits (rate, top reason, latency) lead and
userspace exits and hypercalls follow; where it has none (as on PVM), the exit columns
give way to userspace-exit columns (rate, top ``KVM_EXIT_*``, VMM round trip).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.binding import Binding

from ... import marks
from ...model import Breakdown, CollectorStatus, Snapshot, VcpuStat, VmStat
from ...safe_text import safe_name
from .. import format as fmt
from .diff_table import Cells, Col, KeyedText, signature
from .sortable import SortableTable

TREND_WIDTH = 16

NAME = Col("name", "NAME", 20, "left", "guest name (from the VMM's command line)")
PID = Col("pid", "PID", 7, priority=7)
VCPUS = Col("vcpus", "vCPU", 4, priority=8)

EXIT_COLUMNS: tuple[Col, ...] = (
    NAME, PID, VCPUS,
    Col("exits", "EXITS/s", 8),
    Col("top", "TOP REASON", 18, "left", priority=1),
    Col("share", "%", 4, priority=9),
    Col("p50", "P50", 7, priority=5),
    Col("p99", "P99", 7, priority=2),
    Col("max", "MAX", 7, priority=6),
    Col("user", "USER/s", 7, priority=3),
    Col("hcall", "HCALL/s", 7, priority=10),
    Col("trend", "TREND", TREND_WIDTH, "left", priority=4),
)

# Where kvm_exit never fires: userspace exits and the VMM's round trip take the exits' place.
USER_COLUMNS: tuple[Col, ...] = (
    NAME, PID, VCPUS,
    Col("user", "USER/s", 8),
    Col("utop", "TOP KVM_EXIT", 14, "left", "the most frequent KVM_EXIT_* reason", priority=1),
    Col("ushare", "%", 4, priority=9),
    Col("up50", "RT P50", 7, "right", "VMM round trip: KVM_RUN return to the next KVM_RUN", priority=5),
    Col("up99", "RT P99", 7, priority=2),
    Col("umax", "RT MAX", 7, priority=6),
    Col("utrend", "USER TREND", TREND_WIDTH, "left", "userspace exits per second", priority=4),
)

COLUMNS = EXIT_COLUMNS  # the layout where every measurement has a source

# Which collector feature each column needs.
NEEDS = {"exits": "exits", "top": "exits", "share": "exits", "p50": "exits", "p99": "exits",
         "max": "exits", "user": "userspace", "hcall": "hypercalls"}

SortKey = Callable[[Any], Any]  # of a VmStat (or, in the tree view, a VcpuStat)


def _top_user(b: Breakdown):
    return b.userspace_exits[0] if b.userspace_exits else None


def user_share(b: Breakdown) -> float:
    top = _top_user(b)
    return top.count / b.userspace_count if top and b.userspace_count else 0.0


SORTS: dict[str, SortKey] = {
    # vCPU rows (the tree view) sort by vCPU number and thread id under NAME and PID
    "name": lambda v: v.name.lower() if isinstance(v, VmStat) else (v.index is None, v.index or 0),
    "pid": lambda v: v.pid if isinstance(v, VmStat) else v.tid,
    "vcpus": lambda v: len(v.vcpus) if isinstance(v, VmStat) else 0,
    "exits": lambda v: v.exits_per_s,
    "top": lambda v: v.top_reason.name if v.top_reason else "",
    "share": lambda v: v.top_reason_share,
    "p50": lambda v: v.latency.p50,
    "p99": lambda v: v.latency.p99,
    "max": lambda v: v.latency.max,
    "user": lambda v: v.userspace_per_s,
    "hcall": lambda v: v.hypercalls_per_s,
    "trend": lambda v: sum(v.history[-10:]),
    "utop": lambda v: u.name if (u := _top_user(v)) else "",
    "ushare": user_share,
    "up50": lambda v: v.userspace_latency.p50,
    "up99": lambda v: v.userspace_latency.p99,
    "umax": lambda v: v.userspace_latency.max,
    "utrend": lambda v: sum(v.userspace_history[-10:]),
}
# Text columns sort ascending by default, numbers descending (biggest first, as in htop).
ASCENDING = frozenset({"name", "pid", "top", "utop"})

EXITED = " (exited)"  # a VM whose process ended in this interval: its last counts
CUT = "bold red"  # a figure a full BPF map cut: shown as a lower bound


def vm_key(vm: VmStat) -> str:
    return f"{vm.pid}:{vm.start_time}"


def rate_cell(per_s: float, lost: int, style: str = "") -> Text:
    """A rate, marked ``≥`` in red when a full map cut events from it."""
    return fmt.cell_right(marks.at_least(fmt.rate(per_s), lost), CUT if lost else style)


def user_cell(b: Breakdown, longest: VcpuStat | None, style: str = "magenta") -> Text:
    """USER/s; while a vCPU's VMM has had an exit for STUCK_NS or more, how long instead (``3.20s!``)."""
    flight = longest.in_userspace if longest is not None else None
    if flight is not None and marks.stuck(flight):
        return fmt.cell_right(f"{fmt.duration(flight.ns)}!", "bold reverse red")
    return rate_cell(b.userspace_per_s, b.userspace_lost, style)


def _longest(b: Breakdown) -> VcpuStat | None:
    """The vCPU whose VMM round trip has been in flight longest (a vCPU: itself)."""
    if isinstance(b, VmStat):
        return b.longest_in_userspace
    return b if isinstance(b, VcpuStat) else None


def layout_for(status: CollectorStatus) -> tuple[Col, ...]:
    return EXIT_COLUMNS if status.has("exits") else USER_COLUMNS


def _dur(ns: int, count: int, style: str = "") -> Text:
    return fmt.cell_right(fmt.duration(ns), style) if count else fmt.cell_right("—", "dim")


def trend_series(b: Breakdown, status: CollectorStatus):
    """What a row's TREND draws: exits/s, or userspace exits/s where kvm_exit has no source."""
    return b.history if status.has("exits") else b.userspace_history


def trend_top(items, status: CollectorStatus, width: int = TREND_WIDTH) -> float:
    """The shared TREND scale of these rows."""
    return fmt.spark_top((trend_series(b, status) for b in items), width)


def exit_cells(b: Breakdown, status: CollectorStatus, scale: float | None = None) -> Cells:
    """EXITS/s … HCALL/s, TREND of the exit layout (``scale``: the shared trend scale)."""
    lat = b.latency
    top = b.top_reason
    user = user_cell(b, _longest(b)) if status.has("userspace") else fmt.NA_CELL
    hcall = rate_cell(b.hypercalls_per_s, b.hypercalls_lost) if status.has("hypercalls") else fmt.NA_CELL
    return (
        rate_cell(b.exits_per_s, b.exits_lost, "bold"),
        fmt.cell_left(top.name, "cyan") if top else fmt.cell_left("—", "dim"),
        fmt.cell_right(fmt.share(b.top_reason_share)) if top else fmt.cell_right("—", "dim"),
        _dur(lat.p50, lat.count),
        _dur(lat.p99, lat.count, "yellow"),
        _dur(lat.max, lat.count),
        user,
        hcall,
        fmt.cell_left(fmt.spark(b.history, TREND_WIDTH, top=scale), "green"),
    )


def user_cells(b: Breakdown, scale: float | None = None) -> Cells:
    """USER/s … TREND of the userspace layout."""
    lat = b.userspace_latency
    top = _top_user(b)
    return (
        user_cell(b, _longest(b), "bold magenta"),
        fmt.cell_left(top.name.removeprefix("KVM_EXIT_"), "magenta") if top else fmt.cell_left("—", "dim"),
        fmt.cell_right(fmt.share(user_share(b))) if top else fmt.cell_right("—", "dim"),
        _dur(lat.p50, lat.count),
        _dur(lat.p99, lat.count, "yellow"),
        _dur(lat.max, lat.count),
        fmt.cell_left(fmt.spark(b.userspace_history, TREND_WIDTH, top=scale), "green"),
    )


def vm_cells(vm: VmStat, status: CollectorStatus, scale: float | None = None) -> Cells:
    """One row, as Text (never markup: the name is untrusted), in the status's layout;
    ``scale``: the trend scale shared by the rows (None: the row's own)."""
    name = KeyedText(safe_name(vm.name, 40) + (EXITED if vm.exited else ""), vm_key(vm),
                     style="dim bold" if vm.exited else "bold")
    figures = exit_cells(vm, status, scale) if status.has("exits") else user_cells(vm, scale)
    return (name, fmt.cell_right(str(vm.pid), "dim"), fmt.cell_right(str(len(vm.vcpus))), *figures)


def vcpu_row_key(vm: VmStat, vcpu: VcpuStat) -> str:
    return f"{vm_key(vm)}/{vcpu.tid}"


def vcpu_row_cells(vm: VmStat, vcpu: VcpuStat, status: CollectorStatus, last: bool,
                   scale: float | None = None) -> Cells:
    """A vCPU under its guest in the tree view (F5): NAME is the branch, PID the thread id."""
    name = KeyedText(f" {'└' if last else '├'}─ {vcpu.label}", vcpu_row_key(vm, vcpu), style="dim")
    figures = exit_cells(vcpu, status, scale) if status.has("exits") else user_cells(vcpu, scale)
    return (name, fmt.cell_right(str(vcpu.tid), "dim"), fmt.cell_right(""), *figures)


class RowCells(dict):
    """key -> cells of every VM row, plus ``sigs`` (key -> signature) for the diff."""

    sigs: dict[str, tuple]


def all_cells(snapshot: Snapshot, shared: bool = True) -> RowCells:
    """Cells and signatures of every row (pure; the feed worker calls this off the UI thread).

    ``shared``: every row's trend on one scale (the largest rate any row drew), so a
    steady, small guest stays low; else each row on its own.
    """
    status = snapshot.collector
    scale = trend_top(snapshot.vms, status) if shared else None
    out = RowCells((vm_key(vm), vm_cells(vm, status, scale)) for vm in snapshot.vms)
    out.sigs = {key: signature(cells) for key, cells in out.items()}
    return out


def sorted_vms(snapshot: Snapshot, column: str, reverse: bool) -> list[VmStat]:
    """Rows in display order: ``reverse`` flips the column's natural direction."""
    key = SORTS.get(column, SORTS["exits"])
    descending = (column not in ASCENDING) != reverse
    return sorted(snapshot.vms, key=key, reverse=descending)


TREND_KEYS = frozenset({"trend", "utrend"})


class TrendTable(SortableTable):
    """A sortable table with a TREND column: on one scale for all rows (``trends_shared``,
    the default) or each row on its own (labelled ``… row``)."""

    trends_shared = True

    def column_label(self, col: Col) -> str:
        return f"{col.label} row" if col.key in TREND_KEYS and not self.trends_shared else col.label


class VmTable(TrendTable):
    COLUMNS = EXIT_COLUMNS
    SORTS = SORTS
    ASCENDING = ASCENDING
    DEFAULT_SORT = "exits"
    BINDINGS = [Binding("enter", "select_cursor", "Open", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._row_cells: Mapping[str, Cells] = {}
        self._status = CollectorStatus()
        self.tree_view = False  # F5: each guest's vCPUs under it, sorted by the same column

    def set_tree(self, tree: bool) -> None:
        if tree != self.tree_view:
            self.tree_view = tree
            self.show_items(self._items)

    def show(self, snapshot: Snapshot, cells: Mapping[str, Cells] | None = None,
             vms: Sequence[VmStat] | None = None, trends_shared: bool = True) -> None:
        """The guests of ``snapshot`` (or only ``vms`` of it), sorted by this table's column;
        ``cells`` were made with ``trends_shared`` (all_cells)."""
        self.trends_shared = trends_shared
        self._row_cells = cells if cells is not None else all_cells(snapshot, trends_shared)
        self._status = snapshot.collector
        layout = layout_for(snapshot.collector)
        if layout is not self.layout_columns:
            self.set_layout(layout)
            if not self.sort_chosen or self.sort_column not in {c.key for c in layout}:
                self.sort_column, self.sort_reverse = layout[3].key, False  # the layout's leading rate
            self.announce_sort()
        self.show_items(snapshot.vms if vms is None else vms)

    def rows_of(self, items: Sequence[VmStat]) -> list[tuple[str, Cells]]:
        cells = self._row_cells
        if not self.tree_view:
            return [(k, cells[k]) for k in (vm_key(v) for v in items)]
        rows = []
        status = self._status
        scale = trend_top((v for vm in items for v in vm.vcpus), status) if self.trends_shared else None
        for vm in items:
            rows.append((vm_key(vm), cells[vm_key(vm)]))
            vcpus = self.sorted_items(vm.vcpus)
            for i, v in enumerate(vcpus):
                rows.append((vcpu_row_key(vm, v), vcpu_row_cells(vm, v, status, i == len(vcpus) - 1, scale)))
        return rows

    def row_sigs(self) -> dict[str, tuple] | None:
        return getattr(self._row_cells, "sigs", None)

    @staticmethod
    def split_key(key: str) -> tuple[str, int | None]:
        """(guest key, vCPU thread id or None) of a row key."""
        vm, _, tid = key.partition("/")
        return vm, int(tid) if tid else None
