"""The main screen: header meters and one row per guest.

F3 (or ``/``) finds a guest by name and moves the cursor to it, as htop's search; F4 (or
``\\``) hides the guests whose names do not match, as htop's filter (Enter keeps it,
Escape clears it); F5 (or ``t``) shows each guest's vCPUs under it, as htop's tree.
Sorting belongs to the table (`<` `>` F6 `I`, header clicks).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable, Footer, Input

from ...safe_text import printable
from ...selection import NamePattern
from ..messages import SortChanged
from ..palette import Command
from ..prepare import VmView
from ..view import View
from ..widgets.meters import Meters
from ..widgets.vm_table import VmTable, vm_keys, vm_names
from .base import SORT_COMMANDS, KvmtopScreen


class MainScreen(KvmtopScreen):
    AUTO_FOCUS = "#vms"
    BINDINGS = [
        *SORT_COMMANDS,
        Command("f3,slash", "find", "Find", title="Find a VM",
                help="Jump to a guest by name (F3 again: the next match)"),
        Command("f4,backslash", "filter_rows", "Filter", title="Filter guests by name",
                help="Show only guests whose names match (text, glob or regular expression)"),
        Command("f5,t", "tree", "Tree", title="Tree view",
                help="Show each guest's vCPUs under it (again: guests only)"),
        Binding("escape", "close_boxes", "Close", show=False),
        # The table takes Enter first (its own binding); this one is the palette's entry.
        Command("enter", "open", "Open", show=False, title="Open guest",
                help="Show the selected guest's vCPUs, reasons and charts"),
    ]

    class RowFilterChanged(Message):
        """The F4 name filter changed (the header shows it); None when cleared."""

        def __init__(self, pattern: NamePattern | None) -> None:
            super().__init__()
            self.pattern = pattern

    def __init__(self) -> None:
        super().__init__()
        self.row_filter: NamePattern | None = None
        self.view: View | None = None  # the app's, as last shown
        self._rows: tuple[int, ...] | None = None  # the guests the F4 filter shows (positions), None: all
        self._behind = False  # a snapshot came while another screen was on top

    def compose(self) -> ComposeResult:
        yield Meters(id="meters")
        yield Input(placeholder="find a guest by name (F3: next match; Enter or Esc: back to the table)",
                    id="find", classes="line-box")
        yield Input(placeholder="show only guests matching (text, glob or regex; Enter: keep, Esc: clear)",
                    id="filter-rows", classes="line-box")
        yield VmTable(id="vms")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.watch(self.app, "view", self._show_view, init=True)
        self.watch(self.table, "scroll_y", lambda: self._publish_view(), init=False)

    @property
    def table(self) -> VmTable:
        return self.query_one("#vms", VmTable)

    def on_screen_resume(self) -> None:
        self.query_one(Meters).catch_up()
        if self._behind:
            self._show_view(self.view)

    def _show_view(self, view: View | None) -> None:
        self.view = view
        if view is None:
            return
        if self.app.screen is not self:  # under a guest screen or a picker: catch up when back on top
            self._behind = True
            return
        self._behind = False
        snapshot = view.snapshot
        pattern = self.row_filter
        vms = None if pattern is None else \
            [i for i, name in enumerate(vm_names(snapshot)) if pattern.matches(printable(name))]
        self.table.edges_to_owner = view.replaying
        self.table.show(snapshot, view.vm_cells, vms, view.trends_shared)
        self._rows = None if vms is None else tuple(vms)
        self._publish_view()

    def _publish_view(self) -> None:
        """Tell the feed worker which rows to make cells of next time: this sort, these rows."""
        table = self.table
        self.app.vm_view = VmView(table.sort_column, table.sort_reverse,  # type: ignore[attr-defined]
                                  *table.view_rows(), table.cursor_key, table.MARGIN, self._rows)

    def _reshow(self) -> None:
        self._show_view(self.view)

    @on(SortChanged)
    def _sort_changed(self) -> None:
        self._publish_view()  # (the message goes on up to the app, which shows the label)

    # ------------------------------------------------------------------ drill down
    @on(DataTable.RowSelected, "#vms")
    def _open_guest(self, event: DataTable.RowSelected) -> None:
        event.stop()
        from .guest import GuestScreen

        key = event.row_key.value
        if key is not None:
            self.app.push_screen(GuestScreen(*VmTable.split_key(key)))

    def action_open(self) -> None:
        self.table.action_select_cursor()

    def action_tree(self) -> None:
        """F5: each guest's vCPUs under it (as htop's tree of threads)."""
        self.table.set_tree(not self.table.tree_view)

    # ------------------------------------------------------------------ find (F3, /)
    def _box(self, box_id: str) -> Input:
        return self.query_one(f"#{box_id}", Input)

    def _open_box(self, box_id: str) -> None:
        for other in ("find", "filter-rows"):
            if other != box_id:
                self._box(other).remove_class("-visible")
        box = self._box(box_id)
        box.add_class("-visible")
        box.focus()

    def action_find(self) -> None:
        box = self._box("find")
        if box.has_class("-visible") and box.value.strip():
            self._find(box.value, after_cursor=True)  # F3 again: the next match, as in htop
        else:
            self._open_box("find")

    def action_close_boxes(self) -> None:
        """Escape: close the find box, or clear and close the filter box."""
        if self._box("filter-rows").has_class("-visible"):
            self._box("filter-rows").value = ""
        for box_id in ("find", "filter-rows"):
            self._box(box_id).remove_class("-visible")
        self.table.focus()

    def _find(self, text: str, after_cursor: bool) -> bool:
        needle = text.strip().lower()
        if not needle or self.view is None:
            return False
        snapshot = self.view.snapshot
        names = dict(zip(vm_keys(snapshot), (printable(n).lower() for n in vm_names(snapshot))))
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
        self._box("find").remove_class("-visible")
        self.table.focus()

    # ------------------------------------------------------------------ filter (F4, \)
    def action_filter_rows(self) -> None:
        self._open_box("filter-rows")

    def set_row_filter(self, text: str) -> None:
        try:
            pattern = NamePattern.parse(text)
        except ValueError:
            return  # half-typed regex: keep the last good filter until it parses
        if pattern != self.row_filter:
            self.row_filter = pattern
            self.post_message(self.RowFilterChanged(pattern).set_sender(self))
            self._reshow()

    @on(Input.Changed, "#filter-rows")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.set_row_filter(event.value)

    @on(Input.Submitted, "#filter-rows")
    def _filter_done(self, event: Input.Submitted) -> None:
        """Enter keeps the filter (the header shows it); F4 again edits it, Escape clears it."""
        try:
            NamePattern.parse(event.value)
        except ValueError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self._box("filter-rows").remove_class("-visible")
        self.table.focus()
