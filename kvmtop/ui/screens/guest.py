"""The guest screen: one VM (or one of its vCPUs) in detail.

Per-vCPU table (VM scope only), per-reason table with percentiles, the latency
distribution of the highlighted reason, rates over time of the top reasons, and panels
for request bits, hypercalls and userspace exits. Enter on a vCPU opens the same
screen scoped to that vCPU; Escape goes back one level.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Static

from ... import marks
from ...model import Breakdown, Snapshot, VcpuStat, VmStat
from ...safe_text import safe_name
from .. import format as fmt
from ..view import View
from ..widgets.charts import LatencyChart, RateChart
from ..widgets.diff_table import DiffTable
from ..widgets.meters import Meters
from ..widgets.panels import HypercallPanel, RequestsPanel, UserspacePanel, why_empty
from ..widgets.reason_table import ReasonTable, reason_key
from ..widgets.vcpu_table import VcpuTable
from ..widgets.vm_table import vm_key


class GuestScreen(Screen):
    AUTO_FOCUS = "#reasons"
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("tab", "app.focus_next", "Next table", show=False),
    ]

    def __init__(self, vm: str, tid: int | None = None) -> None:
        super().__init__()
        self.vm_key = vm
        self.tid = tid
        self.reason: str | None = None  # key of the reason the latency chart shows
        self.gone = False
        self.view: View | None = None  # the app's, as last shown

    def compose(self) -> ComposeResult:
        yield Meters(id="meters")
        yield Static(id="guest-title")
        with Horizontal(id="guest-body"):
            with Vertical(id="guest-left"):
                reasons = ReasonTable(id="reasons")
                reasons.border_title = "Exit reasons"
                yield reasons
                if self.tid is None:
                    vcpus = VcpuTable(id="vcpus")
                    vcpus.border_title = "vCPUs (Enter: open)"
                    yield vcpus
            with Vertical(id="guest-right"):
                yield RequestsPanel(id="requests")
                yield HypercallPanel(id="hypercalls")
                yield UserspacePanel(id="userspace")
        with Horizontal(id="guest-charts"):
            yield LatencyChart(id="latency")
            yield RateChart(id="rates")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "view", self._show_view, init=True)

    def action_back(self) -> None:
        self.dismiss()

    # ------------------------------------------------------------------ data
    def _vm(self, snapshot: Snapshot) -> VmStat | None:
        return next((v for v in snapshot.vms if vm_key(v) == self.vm_key), None)

    def scope(self, snapshot: Snapshot | None) -> tuple[VmStat | None, Breakdown | None]:
        if snapshot is None:
            return None, None
        vm = self._vm(snapshot)
        if vm is None or self.tid is None:
            return vm, vm
        return vm, vm.vcpu(self.tid)

    def _show_view(self, view: View | None) -> None:
        self.view = view
        if view is None:
            return
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
        self.query_one("#guest-title", Static).update(self._title(vm, b, snapshot), layout=False)
        reasons = self.query_one("#reasons", ReasonTable)
        reasons.show(b)
        if not b.reasons:
            reasons.border_subtitle = why_empty(status, "exits", "VM exits").plain
        else:
            reasons.border_subtitle = ""
        if self.tid is None:
            self.query_one("#vcpus", VcpuTable).show(vm, status)
        for panel in (RequestsPanel, HypercallPanel, UserspacePanel):
            self.query_one(panel).show(b, status)
        self._show_latency(b, snapshot)
        self.query_one(RateChart).show(b, status, snapshot.interval_s)

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
        if snapshot.collector.has("exits"):
            t.append("exits ", style="cyan").append(f"{fmt.rate(b.exits_per_s)}/s", style="bold")
            t.append("  ").append("p99 ", style="cyan").append(fmt.duration(b.latency.p99), style="bold yellow")
        else:
            t.append("exits ", style="cyan").append(fmt.NA, style="dim")
        t.append("  ").append("userspace ", style="cyan").append(f"{fmt.rate(b.userspace_per_s)}/s",
                                                                 style="bold magenta")
        t.append("  ").append("hypercalls ", style="cyan").append(f"{fmt.rate(b.hypercalls_per_s)}/s", style="bold")
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

    def _show_latency(self, b: Breakdown, snapshot: Snapshot) -> None:
        chart = self.query_one(LatencyChart)
        if not b.reasons:
            chart.show(None, "", why_empty(snapshot.collector, "exits", "VM exits").plain)
            return
        selected = next((r for r in b.reasons if reason_key(r) == self.reason), None)
        if selected is None:
            selected = b.reasons[0]
        chart.show(selected.latency, selected.name)

    # ------------------------------------------------------------------ events
    @on(DataTable.RowHighlighted, "#reasons")
    def _reason_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key = event.row_key.value
        if key is not None and key != self.reason:
            self.reason = key
            snapshot = self.view.snapshot if self.view is not None else None
            vm, b = self.scope(snapshot)
            if b is not None and snapshot is not None:
                self._show_latency(b, snapshot)

    @on(DataTable.RowSelected, "#reasons")
    def _reason_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()

    @on(DataTable.RowSelected, "#vcpus")
    def _open_vcpu(self, event: DataTable.RowSelected) -> None:
        event.stop()
        key = event.row_key.value
        if key is not None:
            self.app.push_screen(GuestScreen(self.vm_key, int(key)))
