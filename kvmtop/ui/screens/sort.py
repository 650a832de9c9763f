"""F6: choose the sort column from a list (as htop's F6)."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from ..widgets.diff_table import Col


class SortScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape,f6", "dismiss(None)", "Cancel")]

    def __init__(self, columns: Sequence[Col], current: str) -> None:
        super().__init__()
        self.sort_columns = tuple(columns)
        self.current = current

    def compose(self) -> ComposeResult:
        options = OptionList(*[Option(c.label, id=c.key) for c in self.sort_columns], id="sort-list")
        options.border_title = "Sort by"
        yield options

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = next((i for i, c in enumerate(self.sort_columns) if c.key == self.current), 0)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)
