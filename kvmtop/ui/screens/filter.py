"""`f`: pick exit reasons (seen so far) to include or exclude.

Type to narrow the list, Space/Enter toggles a reason, Ctrl+X flips include/exclude,
Enter in the search box (or Apply) applies. With nothing ticked, Enter applies every
reason that matches the search text. Dismisses with the new ReasonFilter, None
(cleared) or False (cancelled).
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, SelectionList, Static

from ...filtering import ReasonFilter


class FilterScreen(ModalScreen[ReasonFilter | None | bool]):
    AUTO_FOCUS = "#filter-search"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+x", "toggle_exclude", "Include/exclude"),
        Binding("down", "focus_list", "List", show=False),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(self, names: list[str], current: ReasonFilter | None) -> None:
        super().__init__()
        self.names = names
        self.selected: set[str] = set()
        upper = {n.upper(): n for n in names}
        if current is not None:
            for term in current.terms:
                name = upper.get(term, term)
                self.selected.add(name)
                if name not in self.names:
                    self.names.append(name)
        self.names.sort()
        self.exclude = bool(current and current.exclude)

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-box") as box:
            box.border_title = "Filter by exit reason"
            yield Input(placeholder="type to narrow…", id="filter-search")
            yield SelectionList[str](id="filter-list")
            yield Checkbox("Exclude the ticked reasons (show all others)", self.exclude, id="filter-exclude")
            yield Static(Text("Space tick · Enter apply · Ctrl+X exclude · Esc cancel", style="dim"),
                         id="filter-hint")
            with Horizontal(id="filter-buttons"):
                yield Button("Apply", variant="primary", id="filter-apply")
                yield Button("Clear filter", id="filter-clear")
                yield Button("Cancel", id="filter-cancel")

    def on_mount(self) -> None:
        self._fill("")

    # ------------------------------------------------------------------ list
    def matching(self, text: str) -> list[str]:
        needle = text.strip().lower()
        return [n for n in self.names if needle in n.lower()]

    def _fill(self, text: str) -> None:
        sl = self.query_one("#filter-list", SelectionList)
        sl.clear_options()
        names = self.matching(text)
        sl.add_options([(Text(n), n, n in self.selected) for n in names])
        if not self.names:
            sl.border_subtitle = "no exit reasons seen yet"
        else:
            sl.border_subtitle = f"{len(names)} of {len(self.names)} · {len(self.selected)} ticked"

    @on(Input.Changed, "#filter-search")
    def _narrow(self, event: Input.Changed) -> None:
        self._fill(event.value)

    @on(SelectionList.SelectionToggled, "#filter-list")
    def _toggled(self, event: SelectionList.SelectionToggled) -> None:
        value = event.selection.value
        if value in event.selection_list.selected:
            self.selected.add(value)
        else:
            self.selected.discard(value)
        sl = self.query_one("#filter-list", SelectionList)
        sl.border_subtitle = f"{sl.option_count} of {len(self.names)} · {len(self.selected)} ticked"

    @on(Checkbox.Changed, "#filter-exclude")
    def _exclude_changed(self, event: Checkbox.Changed) -> None:
        self.exclude = event.value

    # ------------------------------------------------------------------ actions
    def action_focus_list(self) -> None:
        sl = self.query_one("#filter-list", SelectionList)
        sl.focus()
        if sl.highlighted is None and sl.option_count:
            sl.highlighted = 0

    def action_toggle_exclude(self) -> None:
        box = self.query_one("#filter-exclude", Checkbox)
        box.value = not box.value

    def action_cancel(self) -> None:
        self.dismiss(False)

    def action_apply(self) -> None:
        names = set(self.selected)
        if not names:
            text = self.query_one("#filter-search", Input).value
            names = set(self.matching(text)) if text.strip() else set()
        self.dismiss(ReasonFilter.of(names, exclude=self.exclude))

    @on(Input.Submitted, "#filter-search")
    def _submitted(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#filter-apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#filter-clear")
    def _clear_pressed(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed, "#filter-cancel")
    def _cancel_pressed(self) -> None:
        self.dismiss(False)
