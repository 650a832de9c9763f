"""What the dashboard's full screens share: htop's sort keys acting on the table in use,
and a footer that lists the function keys first, as htop's does."""

from __future__ import annotations

import re

from textual.binding import ActiveBinding, Binding
from textual.events import DescendantFocus
from textual.screen import Screen

from ..palette import Command
from ..widgets.sortable import SortableTable

_FKEY = re.compile(r"f(\d+)$")
SORT = Binding.Group("Sort", compact=True)

# The screens put these in their BINDINGS (the palette lists a screen's own bindings).
SORT_COMMANDS = [
    Command("less_than_sign", "sort_step(-1)", "Sort column left", key_display="<", group=SORT, show=False,
            title="Sort by the previous column", help="Sort the table in use by the column to the left"),
    Command("greater_than_sign", "sort_step(1)", "Sort column right", key_display=">", group=SORT, show=False,
            title="Sort by the next column", help="Sort the table in use by the column to the right"),
    Command("f6", "sort_pick", "Sort", title="Sort by…", help="Choose the column to sort the table in use by"),
    Command("I", "sort_invert", "Invert", key_display="I", show=False, title="Invert sort order",
            help="Flip the sort direction of the table in use"),
]


def footer_rank(key: str) -> tuple[int, int]:
    """F1…F12 first, in order; every other key after them, in the order it was bound."""
    m = _FKEY.match(key)
    return (0, int(m.group(1))) if m else (1, 0)


class KvmtopScreen(Screen):
    def __init__(self) -> None:
        super().__init__()
        self._sortable: SortableTable | None = None  # the sortable table used last

    @property
    def active_bindings(self) -> dict[str, ActiveBinding]:
        bindings = super().active_bindings
        return dict(sorted(bindings.items(), key=lambda item: footer_rank(item[0])))

    # ------------------------------------------------------------------ sorting
    def sort_target(self) -> SortableTable | None:
        """The focused table, else the sortable table focused last, else the first one."""
        if isinstance(self.focused, SortableTable):
            return self.focused
        if self._sortable is not None and self._sortable.is_attached:
            return self._sortable
        tables = self.query(SortableTable)
        return tables.first() if tables else None

    def on_descendant_focus(self, event: DescendantFocus) -> None:
        if isinstance(event.widget, SortableTable):
            self._sortable = event.widget

    def action_sort_step(self, step: int) -> None:
        if (table := self.sort_target()) is not None:
            table.action_sort_step(step)

    def action_sort_invert(self) -> None:
        if (table := self.sort_target()) is not None:
            table.action_sort_invert()

    def action_sort_pick(self) -> None:
        if (table := self.sort_target()) is not None:
            table.action_sort_pick()
