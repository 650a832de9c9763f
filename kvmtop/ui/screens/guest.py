"""The guest screen: one VM (or one of its vCPUs) in detail.

Tables of exit reasons, vCPUs (VM scope only) and userspace exits (KVM_EXIT_*, with the
VMM's round trip), panels of request bits and hypercalls, and two charts that follow
whichever table has the focus: the latency distribution of its highlighted row and the
rates over time of its top rows. Enter on a vCPU opens the same screen scoped to that
vCPU; Escape goes back one level.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.events import DescendantFocus
from textual.widgets import DataTable, Footer, Static

from ... import marks
from ...model import Breakdown, Latency, Snapshot, VcpuStat, VmStat
from ...safe_text import safe_name
from .. import format as fmt
from ..messages import IoWanted
from ..view import View
from ..widgets.charts import LatencyChart, RateChart
from ..widgets.diff_table import DiffTable
from ..widgets.meters import Meters
from ..widgets.panels import HypercallPanel, IoPanel, RequestsPanel, why_empty
from ..widgets.reason_table import ReasonTable, reason_key
from ..widgets.userspace_table import UserspaceTable, userspace_key
from ..widgets.vcpu_table import VcpuTable, vcpu_key
from ..widgets.vm_table import vm_key
from .base import SORT_COMMANDS, KvmtopScreen

CHART_TABLES = ("reasons", "userspace", "vcpus")  # tables the charts can follow
NARROW = 120  # columns below which the tables and panels stack and take turns
MEDIUM, SHORT = 40, 34  # rows below which the charts shrink, then hide


class GuestScreen(KvmtopScreen):
    AUTO_FOCUS = "#reasons"
    BINDINGS = [
        *SORT_COMMANDS,
        Binding("escape", "back", "Back"),
        Binding("tab", "app.focus_next", "Next"),
        Binding("shift+tab", "app.focus_previous", "Previous table", show=False),
    ]

    def __init__(self, vm: str, tid: int | None = None) -> None:
        super().__init__()
        self._behind = False  # a snapshot came while another screen was on top
        self.vm_key = vm
        self.tid = tid
        self.charted = "reasons"  # the table the charts follow (the last one focused)
        self.gone = False
        self._placed = False  # focus placed once the host's features are known
        self.view: View | None = None  # the app's, as last shown
        self._last_highlight: tuple | None = None

    def compose(self) -> ComposeResult:
        yield Meters(id="meters")
        yield Static(id="guest-title")
        with Horizontal(id="guest-body"):
            with Vertical(id="guest-left"):
                reasons = ReasonTable(id="reasons", classes="turn")
                reasons.border_title = "Exit reasons"
                yield reasons
                if self.tid is None:
                    vcpus = VcpuTable(id="vcpus", classes="turn")
                    vcpus.border_title = "vCPUs (Enter: open)"
                    yield vcpus
            with Vertical(id="guest-right"):
                userspace = UserspaceTable(id="userspace", classes="turn")
                userspace.border_title = "Userspace exits (VMM round trip)"
                yield userspace
                yield RequestsPanel(id="requests", classes="panel turn")
                yield HypercallPanel(id="hypercalls", classes="panel turn")
                yield IoPanel(id="io", classes="panel turn")
        with Horizontal(id="guest-charts"):
            yield LatencyChart(id="latency")
            yield RateChart(id="rates")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.app.post_message(IoWanted(True))  # the I/O panel's probes are attached while it is open
        self.watch(self.app, "view", self._show_view, init=True)

    def on_unmount(self) -> None:
        self.app.post_message(IoWanted(False))

    def action_back(self) -> None:
        self.dismiss()

    def on_resize(self) -> None:
        width, height = self.size
        self.set_class(width < NARROW, "-narrow")
        self.set_class(height < MEDIUM, "-medium")
        self.set_class(height < SHORT, "-short")

    # ------------------------------------------------------------------ data
    def _vm(self, snapshot: Snapshot) -> VmStat | None:
        find = getattr(snapshot, "vm_by_key", None)  # a snapshot with columns: its index
        if find is not None:
            return find(self.vm_key)
        return next((v for v in snapshot.vms if vm_key(v) == self.vm_key), None)

    def scope(self, snapshot: Snapshot | None) -> tuple[VmStat | None, Breakdown | None]:
        if snapshot is None:
            return None, None
        vm = self._vm(snapshot)
        if vm is None or self.tid is None:
            return vm, vm
        return vm, vm.vcpu(self.tid)

    def on_screen_resume(self) -> None:
        self.query_one(Meters).catch_up()
        if self._behind:
            self._show_view(self.view)

    def _show_view(self, view: View | None) -> None:
        self.view = view
        if view is None:
            return
        if self.app.screen is not self:  # under a vCPU screen or a picker: catch up when back on top
            self._behind = True
            return
        self._behind = False
        for table in self.query(DiffTable):
            table.edges_to_owner = view.replaying
        snapshot = view.snapshot
        vm, b = self.scope(snapshot)
        if vm is None or b is None:
            if not self.gone:
                self.gone = True
                what = "vCPU thread" if vm is not None else "guest"
                self.query_one("#guest-title", Static).update(
                    Text(f" This {what} has exited; Escape goes back.", style="bold reverse red"))
            return
        self.gone = False
        status = snapshot.collector
        exits_ok = status.has("exits")
        self.query_one("#guest-title", Static).update(self._title(vm, b, snapshot), layout=False)
        reasons = self.query_one("#reasons", ReasonTable)
        reasons.show_breakdown(b)
        reasons.set_class(not exits_ok, "-nosource")
        self.set_class(not exits_ok, "-noexits")
        reasons.border_subtitle = why_empty(status, "exits", "VM exits").plain if not b.reasons else ""
        userspace = self.query_one("#userspace", UserspaceTable)
        userspace.show_breakdown(b)
        userspace.border_subtitle = (why_empty(status, "userspace", "kvm_userspace_exit events").plain
                                     if not b.userspace_exits else "")
        if self.tid is None:
            self.query_one("#vcpus", VcpuTable).show(vm, status, view.trends_shared)
        for panel in (RequestsPanel, HypercallPanel):
            self.query_one(panel).show(b, status)
        self.query_one(IoPanel).show(view.io, view.io_supported, vm.pid, self.tid)
        if not self._placed:
            self._placed = True
            if not exits_ok and self.focused is reasons:
                userspace.focus()  # nothing to see in the reasons here: start where the data is
        self._show_charts(b, snapshot)

    def _title(self, vm: VmStat, b: Breakdown, snapshot: Snapshot) -> Text:
        t = Text(no_wrap=True, overflow="ellipsis")
        # Spaces trail styled runs, never lead them (SVG renderers drop leading spaces).
        t.append(" ", style="reverse").append("VM ", style="bold reverse")
        t.append(" ")
        t.append(safe_name(vm.name), style="bold")
        t.append("  ").append(f"pid {vm.pid}", style="dim")
        if self.tid is not None and b is not vm:
            v = vm.vcpu(self.tid)
            t.append("  ").append("›", style="dim").append("  ")
            t.append(" ", style="reverse").append(f"{v.label if v else self.tid} ", style="bold reverse")
            t.append("  ").append(f"tid {self.tid}", style="dim")
            if v is not None and v.comm:
                t.append("  ").append(safe_name(v.comm, 24), style="dim")
        else:
            t.append("  ").append(f"{len(vm.vcpus)} vCPUs", style="dim")
        t.append("   ")
        status = snapshot.collector
        if status.has("exits"):
            t.append("exits ", style="cyan").append(f"{fmt.rate(b.exits_per_s)}/s", style="bold")
            t.append("  ").append("p99 ", style="cyan").append(fmt.duration(b.latency.p99), style="bold yellow")
        else:
            t.append("exits ", style="cyan").append(fmt.NA, style="dim")
        t.append("  ").append("userspace ", style="cyan").append(f"{fmt.rate(b.userspace_per_s)}/s",
                                                                 style="bold magenta")
        t.append("  ").append("hypercalls ", style="cyan")
        if status.has("hypercalls"):
            t.append(f"{fmt.rate(b.hypercalls_per_s)}/s", style="bold")
        else:
            t.append(fmt.NA, style="dim")
        if b.lost:
            t.append("  ").append(f"{marks.lost_note(b.lost)} ", style="bold reverse red")
        if isinstance(b, VcpuStat):
            flight = b.in_userspace
            stuck = marks.in_userspace(b.label, flight) if marks.stuck(flight) else None
        else:
            stuck = marks.stuck_vcpu(vm)
        if stuck is not None:
            t.append("  ").append(f"{stuck} ", style="bold reverse red")
        return t

    # ------------------------------------------------------------------ charts
    def _highlighted(self, table_id: str) -> str | None:
        tables = self.query(f"#{table_id}")
        return tables.first(DiffTable).cursor_key if tables else None

    def chart_target(self, b: Breakdown, snapshot: Snapshot) -> tuple[Latency | None, str, str]:
        """(latency, its name, why it is empty) of the highlighted row of the charted table."""
        status = snapshot.collector
        key = self._highlighted(self.charted)
        if self.charted == "userspace" or (self.charted == "reasons" and not status.has("exits")):
            if not b.userspace_exits:
                return None, "", why_empty(status, "userspace", "userspace exits").plain
            u = next((u for u in b.userspace_exits if userspace_key(u) == key), b.userspace_exits[0])
            return u.latency, f"{u.name} round trip", ""
        if self.charted == "vcpus" and isinstance(b, VmStat) and b.vcpus:
            v = next((v for v in b.vcpus if vcpu_key(v) == key), b.vcpus[0])
            if status.has("exits"):
                return v.latency, f"{v.label} exits", ""
            return v.userspace_latency, f"{v.label} round trips", ""
        if not b.reasons:
            return None, "", why_empty(status, "exits", "VM exits").plain
        r = next((r for r in b.reasons if reason_key(r) == key), b.reasons[0])
        return r.latency, r.name, ""

    def _show_charts(self, b: Breakdown, snapshot: Snapshot) -> None:
        latency, name, why = self.chart_target(b, snapshot)
        self.query_one(LatencyChart).show(latency, name, why)
        userspace = self.charted == "userspace"
        self.query_one(RateChart).show(b, snapshot.collector, snapshot.interval_s, userspace=userspace)

    def _recharted(self) -> None:
        snapshot = self.view.snapshot if self.view is not None else None
        vm, b = self.scope(snapshot)
        if b is not None and snapshot is not None:
            self._show_charts(b, snapshot)

    # ------------------------------------------------------------------ events
    @on(DescendantFocus)
    def _focus_moved(self, event: DescendantFocus) -> None:
        table_id = event.widget.id
        if table_id in CHART_TABLES and table_id != self.charted:
            self.charted = table_id
            self._recharted()

    @on(DataTable.RowHighlighted)
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = (event.data_table.id, event.row_key.value)
        if event.data_table.id == self.charted and key != self._last_highlight:
            self._last_highlight = key
            self._recharted()

    @on(DataTable.RowSelected, "#reasons, #userspace")
    def _row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()

    @on(DataTable.RowSelected, "#vcpus")
    def _open_vcpu(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key is not None:
            self.app.push_screen(GuestScreen(self.vm_key, int(key)))
