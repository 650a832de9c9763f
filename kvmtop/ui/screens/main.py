"""The main screen: header meters and one row per guest."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input

from ...safe_text import printable
from ..messages import SortChanged
from ..palette import Command
from ..view import View
from ..widgets.meters import Meters
from ..widgets.vm_table import ASCENDING, COLUMNS, NEEDS, VmTable, vm_key
from .sort import SortScreen

COLUMN_KEYS = [c.key for c in COLUMNS]
SORT = Binding.Group("Sort", compact=True)
NEEDS_EXITS = frozenset(k for k, feature in NEEDS.items() if feature == "exits")


class MainScreen(Screen):
    AUTO_FOCUS = "#vms"
    BINDINGS = [
        Binding("less_than_sign", "sort_step(-1)", "Sort column left", key_display="<", group=SORT),
        Binding("greater_than_sign", "sort_step(1)", "Sort column right", key_display=">", group=SORT),
        Command("f6", "sort_pick", "Sort by", title="Sort by…", help="Choose the column to sort guests by"),
        Command("I", "sort_invert", "Invert", key_display="I", title="Invert sort order",
                help="Flip the sort direction"),
        Command("slash", "find", "Find", key_display="/", title="Find a VM", help="Jump to a guest by name"),
        Binding("escape", "close_find", "Close find", show=False),
        # The table takes Enter first (its own binding); this one is the palette's entry.
        Command("enter", "open", "Open", show=False, title="Open guest",
                help="Show the selected guest's vCPUs, reasons and charts"),
    ]

    sort_column: var[str] = var("exits")
    sort_reverse: var[bool] = var(False)

    def __init__(self) -> None:
        super().__init__()
        self._sort_chosen = False  # set once the user (or the no-kvm_exit default) picked a column
        self.view: View | None = None  # the app's, as last shown

    def compose(self) -> ComposeResult:
        yield Meters(id="meters")
        yield Input(placeholder="find a VM by name (Enter or Esc: back to the table)", id="find")
        yield VmTable(id="vms")
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "view", self._show_view, init=True)
        self._publish_sort()

    @property
    def table(self) -> VmTable:
        return self.query_one("#vms", VmTable)

    def _show_view(self, view: View | None) -> None:
        self.view = view
        if view is None:
            return
        snapshot = view.snapshot
        if not self._sort_chosen and not snapshot.collector.has("exits"):
            self._sort_chosen = True
            if self.sort_column in NEEDS_EXITS:
                self.sort_column = "user"  # nothing to sort exits by on this host
        cells = view.vm_cells
        complete = all(vm_key(v) in cells for v in snapshot.vms)
        self.table.edges_to_owner = view.replaying
        self.table.show(snapshot, self.sort_column, self.sort_reverse, cells if complete else None)

    def _publish_sort(self) -> None:
        col = next(c for c in COLUMNS if c.key == self.sort_column)
        descending = (col.key not in ASCENDING) != self.sort_reverse
        self.post_message(SortChanged(f"{col.label} {'▼' if descending else '▲'}"))

    def _resort(self) -> None:
        self._publish_sort()
        self._show_view(self.view)

    def watch_sort_column(self) -> None:
        if self.is_mounted:
            self._resort()

    def watch_sort_reverse(self) -> None:
        if self.is_mounted:
            self._resort()

    # ------------------------------------------------------------------ sorting
    def action_sort_step(self, step: int) -> None:
        self._sort_chosen = True
        i = COLUMN_KEYS.index(self.sort_column)
        self.sort_reverse = False
        self.sort_column = COLUMN_KEYS[(i + step) % len(COLUMN_KEYS)]

    def action_sort_invert(self) -> None:
        self.sort_reverse = not self.sort_reverse

    def action_sort_pick(self) -> None:
        def done(column: str | None) -> None:
            if column:
                self.sort_by(column)

        self.app.push_screen(SortScreen(self.sort_column), done)

    def sort_by(self, column: str) -> None:
        self._sort_chosen = True
        if column == self.sort_column:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_reverse = False
            self.sort_column = column

    @on(DataTable.HeaderSelected, "#vms")
    def _header_clicked(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    # ------------------------------------------------------------------ drill down
    @on(DataTable.RowSelected, "#vms")
    def _open_guest(self, event: DataTable.RowSelected) -> None:
        event.stop()
        from .guest import GuestScreen

        key = event.row_key.value
        if key is not None:
            self.app.push_screen(GuestScreen(key))

    def action_open(self) -> None:
        self.table.action_select_cursor()

    # ------------------------------------------------------------------ find
    def action_find(self) -> None:
        box = self.query_one("#find", Input)
        box.add_class("-visible")
        box.focus()

    def action_close_find(self) -> None:
        box = self.query_one("#find", Input)
        if box.has_class("-visible"):
            box.remove_class("-visible")
            self.table.focus()

    def _find(self, text: str, after_cursor: bool) -> bool:
        needle = text.strip().lower()
        if not needle or self.view is None:
            return False
        names = {vm_key(v): printable(v.name).lower() for v in self.view.snapshot.vms}
        order = self.table.order
        start = self.table.cursor_row + 1 if after_cursor else 0
        for i in list(range(start, len(order))) + list(range(0, start)):
            if needle in names.get(order[i], ""):
                self.table.move_cursor(row=i, animate=False, scroll=True)
                return True
        return False

    @on(Input.Changed, "#find")
    def _find_changed(self, event: Input.Changed) -> None:
        self._find(event.value, after_cursor=False)

    @on(Input.Submitted, "#find")
    def _find_done(self, event: Input.Submitted) -> None:
        """Enter: stay on the match and go back to the table (as htop's search)."""
        if event.value.strip() and not self._find(event.value, after_cursor=False):
            self.notify(f"no VM matches {printable(event.value)!r}", severity="warning", markup=False)
        self.action_close_find()
