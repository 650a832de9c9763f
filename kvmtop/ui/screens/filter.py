"""`f`: pick exit reasons and KVM_EXIT_* reasons to include or exclude.

The list holds every reason the host's ISA can produce and every KVM_EXIT_* reason, the
ones seen so far first. Type to narrow it (text or a regular expression, as ``--filter``),
Space ticks a reason, Enter applies: the ticked reasons, else the highlighted one (in the
list) or the reasons matching the search text (in the search box: those seen so far, or
all of them when none was seen). Ctrl+X flips include/exclude. Dismisses with the new
ReasonFilter, None (cleared) or False (cancelled).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, SelectionList, Static

from ...filtering import ReasonFilter, is_regex


class ReasonList(SelectionList[str]):
    """Space ticks; Enter applies (the picker's hint says so), it does not tick again."""

    BINDINGS = [Binding("enter", "screen.apply_list", "Apply", show=False)]


class FilterScreen(ModalScreen[ReasonFilter | None | bool]):
    AUTO_FOCUS = "#filter-search"
    BINDINGS = [
        Binding("escape", "cancel", "Cancel"),
        Binding("ctrl+x", "toggle_exclude", "Include/exclude"),
        Binding("down", "focus_list", "List", show=False),
        Binding("ctrl+s", "apply", "Apply"),
    ]

    def __init__(self, seen: Sequence[str], choices: Sequence[str], current: ReasonFilter | None) -> None:
        """``seen``: reasons seen so far (listed first); ``choices``: every other reason."""
        super().__init__()
        self.seen = list(dict.fromkeys(seen))
        seen_upper = {n.upper() for n in self.seen}
        self.others = [n for n in dict.fromkeys(choices) if n.upper() not in seen_upper]
        self.selected: set[str] = set()
        upper = {n.upper(): n for n in (*self.others, *self.seen)}
        if current is not None:
            for term in current.terms:
                name = upper.get(term, term)
                self.selected.add(name)
                if name not in upper.values():  # a regular expression from --filter
                    self.seen.insert(0, name)
        self.exclude = bool(current and current.exclude)

    @property
    def names(self) -> list[str]:
        return [*self.seen, *self.others]

    def compose(self) -> ComposeResult:
        with Vertical(id="filter-box") as box:
            box.border_title = "Filter by exit reason"
            yield Input(placeholder="type to narrow (text or regular expression)…", id="filter-search")
            yield ReasonList(id="filter-list")
            yield Checkbox("Exclude the ticked reasons (show all others)", self.exclude, id="filter-exclude")
            yield Static(Text("Space tick · Enter apply · Ctrl+X exclude · Esc cancel", style="italic"),
                         id="filter-hint")
            with Horizontal(id="filter-buttons"):
                yield Button("Apply", variant="primary", id="filter-apply")
                yield Button("Clear filter", id="filter-clear")
                yield Button("Cancel", id="filter-cancel")

    def on_mount(self) -> None:
        self._fill("")

    # ------------------------------------------------------------------ list
    def matching(self, text: str) -> list[str]:
        """The names the search text keeps: a substring, or a regular expression's matches."""
        needle = text.strip()
        if not needle:
            return self.names
        if is_regex(needle):
            try:
                rx = re.compile(needle, re.IGNORECASE)
            except re.error:
                rx = None
            if rx is not None:
                return [n for n in self.names if rx.search(n)]
        low = needle.lower()
        return [n for n in self.names if low in n.lower()]

    def _label(self, name: str) -> Text:
        if name in self.seen:
            return Text(name)
        return Text(name, style="italic").append("  not seen yet", style="italic")

    def _fill(self, text: str) -> None:
        sl = self.query_one("#filter-list", SelectionList)
        sl.clear_options()
        names = self.matching(text)
        sl.add_options([(self._label(n), n, n in self.selected) for n in names])
        self._count(sl)

    def _count(self, sl: SelectionList) -> None:
        seen = len(self.seen)
        sl.border_subtitle = (f"{sl.option_count} of {len(self.names)} ({seen} seen) · "
                              f"{len(self.selected)} ticked")

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
        self._count(event.selection_list)

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
        """The ticked reasons; with none ticked, the seen reasons the search text keeps
        (every reason it keeps when it keeps none seen)."""
        names = set(self.selected)
        if not names:
            text = self.query_one("#filter-search", Input).value
            kept = self.matching(text) if text.strip() else []
            names = {n for n in kept if n in self.seen} or set(kept)
        self.dismiss(ReasonFilter.of(names, exclude=self.exclude))

    def action_apply_list(self) -> None:
        """Enter in the list: the ticked reasons; with none ticked, the highlighted one."""
        sl = self.query_one("#filter-list", SelectionList)
        if not self.selected and sl.highlighted is not None:
            name = sl.get_option_at_index(sl.highlighted).value
            self.dismiss(ReasonFilter.of([name], exclude=self.exclude))
        else:
            self.action_apply()

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
