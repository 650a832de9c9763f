"""The main screen's table: one row per guest, sortable by any column.

A snapshot made by the builder (one with ``frame``, its columns) is sorted in numpy, every
guest at once, and cells are made only for the rows in view (``cells_of``); rows that
scroll into view get theirs then. A thousand guests cost about what forty do.

Two layouts: where ``kvm_exit`` has a source, exits (rate, top reason, latency) lead and
userspace exits and hypercalls follow; where it has none (as on PVM), the exit columns
give way to userspace-exit columns (rate, top ``KVM_EXIT_*``, VMM round trip).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from rich.text import Text
from textual.binding import Binding

from ... import history, marks
from ...columns import CAT_REASON, CAT_USERSPACE
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
    "vcpus": lambda v: v.vcpu_count if isinstance(v, VmStat) else 0,
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
_BLANK = Text("")
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


def exit_cells(b: Breakdown, status: CollectorStatus, scale: float | None = None, spark: str | None = None) -> Cells:
    """EXITS/s … HCALL/s, TREND of the exit layout (``scale``: the shared trend scale; ``spark``:
    the TREND already drawn)."""
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
        fmt.cell_left(fmt.spark(b.history, TREND_WIDTH, top=scale) if spark is None else spark, "green"),
    )


def user_cells(b: Breakdown, scale: float | None = None, spark: str | None = None) -> Cells:
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
        fmt.cell_left(fmt.spark(b.userspace_history, TREND_WIDTH, top=scale) if spark is None else spark, "green"),
    )


def vm_cells(vm: VmStat, status: CollectorStatus, scale: float | None = None, spark: str | None = None) -> Cells:
    """One row, as Text (never markup: the name is untrusted), in the status's layout;
    ``scale``: the trend scale shared by the rows (None: the row's own)."""
    name = KeyedText(safe_name(vm.name, 40) + (EXITED if vm.exited else ""), vm_key(vm),
                     style="dim bold" if vm.exited else "bold")
    figures = exit_cells(vm, status, scale, spark) if status.has("exits") else user_cells(vm, scale, spark)
    return (name, fmt.cell_right(str(vm.pid), "dim"), fmt.cell_right(str(vm.vcpu_count)), *figures)


def vcpu_row_key(vm: VmStat, vcpu: VcpuStat) -> str:
    return f"{vm_key(vm)}/{vcpu.tid}"


def vcpu_row_cells(vm: VmStat, vcpu: VcpuStat, status: CollectorStatus, last: bool,
                   scale: float | None = None) -> Cells:
    """A vCPU under its guest in the tree view (F5): NAME is the branch, PID the thread id."""
    name = KeyedText(f" {'└' if last else '├'}─ {vcpu.label}", vcpu_row_key(vm, vcpu), style="dim")
    figures = exit_cells(vcpu, status, scale) if status.has("exits") else user_cells(vcpu, scale)
    return (name, fmt.cell_right(str(vcpu.tid), "dim"), fmt.cell_right(""), *figures)


class RowCells(dict):
    """key -> cells of VM rows, plus ``sigs`` (key -> signature) for the diff and the trend
    ``scale`` they were drawn with."""

    sigs: dict[str, tuple]
    scale: float | None = None


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


def vm_keys(snapshot: Snapshot) -> list[str]:
    """Row keys of ``snapshot.vms``, in its order."""
    frame = getattr(snapshot, "frame", None)
    return frame.t.vm_keys() if frame is not None else [vm_key(v) for v in snapshot.vms]


def vm_names(snapshot: Snapshot) -> list[str]:
    """Guest names of ``snapshot.vms``, in its order."""
    frame = getattr(snapshot, "frame", None)
    if frame is None:
        return [v.name for v in snapshot.vms]
    return frame.t.memo("vm names", lambda: [i.name for i in frame.t.idents])


def cells_of(snapshot: Snapshot, indices: Sequence[int], scale: float | None = None,
             trends: np.ndarray | None = None) -> RowCells:
    """Cells and signatures of the rows of ``snapshot.vms[i]`` for these i (the feed worker makes
    the rows in view; the UI thread those that scroll in). From the columns, the figures of
    all these guests are made in one pass first; ``trends``: every guest's TREND window (see
    ``trend_window``), drawn on ``scale`` for all these rows at once."""
    status = snapshot.collector
    vms = batch_views(snapshot, indices) if hasattr(snapshot, "frame") else [snapshot.vms[i] for i in indices]
    sparks: list[str | None] = [None] * len(vms)
    if trends is not None and scale is not None:
        sparks = list(fmt.sparks(trends[np.asarray(indices, np.int64)], TREND_WIDTH, scale))
    out = RowCells((vm_key(vm), vm_cells(vm, status, scale, spark)) for vm, spark in zip(vms, sparks))
    out.sigs = {key: signature(cells) for key, cells in out.items()}
    out.scale = scale
    return out


def batch_views(snapshot: Any, indices: Sequence[int]) -> list[VmStat]:
    """The views of these guests with what their rows show made together, one reduction of
    their rows for all: the latency, the top reason (the top KVM_EXIT_* reasons' table where
    exits have no source) and the vCPU whose userspace exit is oldest."""
    from ...snapshot_views import vcpu_view

    frame = snapshot.frame
    views = [snapshot.vm_at(i) for i in indices]
    todo = [v for v in views if "latency" not in v.__dict__]
    if not todo:
        return views
    picked = [v._vm for v in todo]
    lats = frame.vm_latencies(picked)
    tops = frame.top_stats(picked) if snapshot.collector.has("exits") else [None] * len(todo)
    longest = frame.longest_in_userspace()
    for v, lat, top in zip(todo, lats, tops):
        d = v.__dict__
        d.setdefault("latency", lat)
        d.setdefault("top_reason", top)
        vc = int(longest[v._vm])
        d.setdefault("longest_in_userspace", vcpu_view(frame, v.history_slot, vc) if vc >= 0 else None)
    return views


def _ranks(strings: Sequence[str]) -> np.ndarray:
    """Each string's rank in sorted order (equal strings, equal ranks)."""
    if not len(strings):
        return np.zeros(0, np.int64)
    return np.unique(np.array(strings, dtype=object).astype(str), return_inverse=True)[1].reshape(-1)


def _trend_window(snapshot: Any, status: CollectorStatus, width: int) -> np.ndarray:
    """Every guest's TREND series (the last ``width`` values; summed over the reasons a filter
    admits, as Breakdown.history does), one row per guest."""
    frame, hist = snapshot.frame, snapshot.hist
    t = frame.t
    eids = hist.eids(t.memo("vm entities", lambda: [("vm", i.pid, i.start_time) for i in t.idents]))
    exits_ok = status.has("exits")
    admit = frame.admit_reason if exits_ok else frame.admit_userspace
    if admit is None:
        kb = history.KB_TOTAL if exits_ok else history.KB_USERSPACE_TOTAL
        keys = (np.maximum(eids, 0).astype(np.uint64) << np.uint64(40)) | np.uint64(kb << 32)
        return hist.window(np.where(eids >= 0, hist.rows(keys), -1), width)
    owner, kb, code, rows = hist.series_of(eids)
    if exits_ok:
        ok = [k < history.KB_USERSPACE and admit((k, c)) for k, c in zip(kb.tolist(), code.tolist())]
    else:
        ok = [k == history.KB_USERSPACE and admit(c) for k, c in zip(kb.tolist(), code.tolist())]
    mask = np.array(ok, bool)
    part = hist.window(rows[mask], width)
    out = np.zeros((t.vm_count, part.shape[1]), np.float32)
    np.add.at(out, owner[mask], part)
    return out


def trend_top_of(snapshot: Snapshot, status: CollectorStatus, width: int = TREND_WIDTH,
                 window: np.ndarray | None = None) -> float:
    """``trend_top`` of every guest of ``snapshot`` (from the history rings at once when it has
    columns; ``window``: their ``trend_window``, where the caller has it)."""
    if not hasattr(snapshot, "frame"):
        return trend_top(snapshot.vms, status, width)
    w = _trend_window(snapshot, status, width) if window is None else window
    return float(w.max()) if w.size else 0.0


def trend_window(snapshot: Snapshot, status: CollectorStatus) -> np.ndarray | None:
    """Every guest's TREND values, one row per guest, where they are exactly what each row's
    own history holds: columns and no reason filter (a filter's sums are made differently)."""
    frame = getattr(snapshot, "frame", None)
    if frame is None or (frame.admit_reason if status.has("exits") else frame.admit_userspace) is not None:
        return None
    return _trend_window(snapshot, status, TREND_WIDTH)


def _trend_sums(snapshot: Any, status: CollectorStatus) -> np.ndarray:
    """``sum(history[-10:])`` of every guest, added oldest first as ``sum`` does."""
    w = _trend_window(snapshot, status, 10)
    total = np.zeros(len(w))
    for j in range(w.shape[1]):
        total += w[:, j]
    return total


def _latency_key(frame, cat: int, q: float | None) -> np.ndarray:
    """Each guest's ``latency`` (exits) or ``userspace_latency`` percentile, or max (``q`` None)."""
    if cat == CAT_REASON:
        return frame.vm_percentile(q) if q is not None else frame.rows.vm_lat[3].astype(np.int64)
    return frame.vm_percentile(q, CAT_USERSPACE) if q is not None else \
        frame.rows.vm_lat_of(frame.t, CAT_USERSPACE)[3].astype(np.int64)


def column_keys(snapshot: Any, column: str) -> np.ndarray:
    """The sort key of every guest for ``column`` (SORTS, from the columns)."""
    frame = snapshot.frame
    t, r = frame.t, frame.rows
    status = snapshot.collector
    if column == "name":
        return t.memo("name ranks", lambda: _ranks([i.name.lower() for i in t.idents]))
    if column == "pid":
        return t.vm_pid
    if column == "vcpus":
        return t.vm_hi - t.vm_lo
    if column in ("top", "utop"):
        cat = CAT_REASON if column == "top" else CAT_USERSPACE
        top, _ = frame.top_keys(cat)
        names = t.names()
        return _ranks([names[k] if k >= 0 else "" for k in top.tolist()])
    if column in ("share", "ushare"):
        cat, total = (CAT_REASON, r.vm_exits) if column == "share" else (CAT_USERSPACE, r.vm_user)
        top, top_n = frame.top_keys(cat)
        total_f = total.astype(np.float64)
        return np.where((top >= 0) & (total_f > 0), top_n / np.maximum(total_f, 1), 0.0)
    if column in ("p50", "p99", "max"):
        return _latency_key(frame, CAT_REASON, {"p50": 0.5, "p99": 0.99}.get(column))
    if column in ("up50", "up99", "umax"):
        return _latency_key(frame, CAT_USERSPACE, {"up50": 0.5, "up99": 0.99}.get(column))
    if column == "user":
        return r.vm_user
    if column == "hcall":
        return r.vm_hcall
    if column in ("trend", "utrend"):
        return _trend_sums(snapshot, status if column == "trend" else _USER_ONLY)
    return r.vm_exits


_USER_ONLY = CollectorStatus(features={"exits": False})  # utrend: the userspace series whatever the host


def column_order(snapshot: Snapshot, column: str, descending: bool, indices: Sequence[int] | None = None
                 ) -> list[int]:
    """Positions in ``snapshot.vms`` sorted by ``column`` (its SORTS key), ties in the given order,
    as ``sorted(..., reverse=descending)`` leaves them."""
    keys = column_keys(snapshot, column)
    if indices is not None:
        idx = np.asarray(indices, np.int64)
        keys = keys[idx]
    else:
        idx = np.arange(len(keys))
    if descending:
        keys = -keys.astype(np.float64) if keys.dtype.kind in "uf" else -keys
    return idx[np.lexsort((np.arange(len(idx)), keys))].tolist()


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
        self._snapshot: Any = None  # the snapshot shown, when it has columns (the fast path)
        self.tree_view = False  # F5: each guest's vCPUs under it, sorted by the same column

    def set_tree(self, tree: bool) -> None:
        if tree != self.tree_view:
            self.tree_view = tree
            self.show_items(self._items)

    def show(self, snapshot: Snapshot, cells: Mapping[str, Cells] | None = None,
             vms: Sequence[int] | None = None, trends_shared: bool = True) -> None:
        """The guests of ``snapshot`` (or only those at positions ``vms`` of ``snapshot.vms``),
        sorted by this table's column; ``cells`` (some rows, made with ``trends_shared``) came
        with the snapshot."""
        self.trends_shared = trends_shared
        self._status = snapshot.collector
        layout = layout_for(snapshot.collector)
        if layout is not self.layout_columns:
            self.set_layout(layout)
            if not self.sort_chosen or self.sort_column not in {c.key for c in layout}:
                self.sort_column, self.sort_reverse = layout[3].key, False  # the layout's leading rate
            self.announce_sort()
        if hasattr(snapshot, "frame"):
            self._snapshot = snapshot
            self._row_cells = cells if cells is not None else {}
            self.show_items(vms)
            return
        self._snapshot = None  # a snapshot made by hand: every row, from its objects
        self._row_cells = cells if cells is not None and len(cells) == len(snapshot.vms) else \
            all_cells(snapshot, trends_shared)
        self.show_items(snapshot.vms if vms is None else [snapshot.vms[i] for i in vms])

    def show_items(self, items: Any) -> None:
        if self._snapshot is None:
            super().show_items(items)
            return
        self._items = items
        snapshot, status = self._snapshot, self._status
        keys, names = vm_keys(snapshot), vm_names(snapshot)
        order = column_order(snapshot, self.sort_column, self.descending, items)
        made = self._row_cells
        if not self.trends_shared:
            scale = None
        elif isinstance(made, RowCells) and made.scale is not None:
            scale = made.scale  # what the feed worker drew the rows it made with
        else:
            scale = trend_top_of(snapshot, status)
        row_keys = [keys[i] for i in order]
        index = {keys[i]: i for i in order}
        vcpus: dict[str, tuple[VmStat, VcpuStat, bool]] = {}
        vscale: float | None = None
        if self.tree_view:
            row_keys, vcpus, vscale = self._tree(snapshot, order, keys)

        def make(wanted: Sequence[str]) -> dict[str, Cells]:
            out = {k: made[k] for k in wanted if k in made}
            missing = [index[k] for k in wanted if k not in out and k in index]
            if missing:
                out.update(cells_of(snapshot, missing, scale))
            for k in wanted:
                if k in vcpus:
                    vm, v, last = vcpus[k]
                    out[k] = vcpu_row_cells(vm, v, status, last, vscale)
            return out

        width = len(self.layout_columns)

        def placeholder(key: str) -> Cells:  # a row not in view yet: its name, the rest when it scrolls in
            i = index.get(key)
            if i is None:
                return (KeyedText("", key), *(_BLANK for _ in range(width - 1)))
            exited = snapshot.vm_at(i).exited
            return (KeyedText(safe_name(names[i], 40) + (EXITED if exited else ""), key,
                              style="dim bold" if exited else "bold"), *(_BLANK for _ in range(width - 1)))

        self.show_rows(row_keys, make, placeholder, getattr(made, "sigs", None))
        self._mark()

    def _tree(self, snapshot: Any, order: list[int], keys: list[str]):
        """F5: every guest's row, then its vCPUs' rows sorted by the same column."""
        vms = snapshot.vms  # every guest's figures, made in one pass
        status = self._status
        scale = trend_top((v for vm in vms for v in vm.vcpus), status) if self.trends_shared else None
        rows: list[str] = []
        vcpus: dict[str, tuple[VmStat, VcpuStat, bool]] = {}
        for i in order:
            vm = vms[i]
            rows.append(keys[i])
            ordered = self.sorted_items(vm.vcpus)
            for j, v in enumerate(ordered):
                key = vcpu_row_key(vm, v)
                rows.append(key)
                vcpus[key] = (vm, v, j == len(ordered) - 1)
        return rows, vcpus, scale

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
