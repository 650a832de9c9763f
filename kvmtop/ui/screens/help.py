"""`?` / F1: every key, grouped (the README's key table says the same)."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Everywhere", (
        ("F1 ?", "this help"),
        ("F10 q Ctrl+C", "quit"),
        ("Space", "pause the display (collection continues); replay: pause / resume"),
        ("f", "filter by exit reason or KVM_EXIT_* (include or exclude)"),
        ("c", "clear the reason filter"),
        ("r", "reset counters and history"),
        ("+ -", "longer / shorter interval (live only)"),
        ("s", "trend scale: shared by all rows / each row its own"),
        ("Ctrl+P", "command palette (every action)"),
    )),
    ("Guests (the main screen)", (
        ("↑ ↓ PgUp PgDn", "move"),
        ("Home End", "first / last guest"),
        ("Enter", "open the guest (on a vCPU row: that vCPU)"),
        ("F3 /", "find a guest by name; F3 again: the next match"),
        ("F4 \\", "show only guests whose names match (text, glob or regex); Esc clears"),
        ("F5 t", "tree: each guest's vCPUs under it"),
    )),
    ("Sorting (any table)", (
        ("< >", "sort by the previous / next column"),
        ("F6", "choose the sort column"),
        ("I", "invert the sort order"),
        ("click a header", "sort by it (again: invert)"),
    )),
    ("Guest and vCPU screens", (
        ("Tab Shift+Tab", "next / previous table; the charts follow the table in use"),
        ("↑ ↓", "pick the row whose latency the chart shows"),
        ("Enter on a vCPU", "the same view for that vCPU"),
        ("Escape", "back one level"),
    )),
    ("Marks", (
        ("≥273 (red)", "a lower bound: a full BPF map lost some of this row's events (--max-keys)"),
        ("3.20s! (USER/s)", "a vCPU's VMM has had a userspace exit that long: counted when KVM_RUN comes back"),
    )),
    ("Replay (recordings and captures)", (
        ("Space", "pause / resume advancing"),
        (". ,", "step one interval forward / back"),
        ("] [", "seek 10 intervals forward / back"),
        ("Home End", "first / last interval"),
        ("} {", "faster / slower"),
    )),
)

KEY_WIDTH = max(len(key) for _, keys in KEYS for key, _ in keys)


def help_text(notes: tuple[str, ...] = ()) -> RenderableType:
    """The source's notes (what is missing here and why, in full), then each group of keys,
    its title on a line of its own (never cut)."""
    parts: list[RenderableType] = []
    if notes:
        parts.append(Text("This host", style="bold underline"))
        for note in notes:
            parts.append(Text(f"⚠ {note}"))
        parts.append(Text(""))
    for group, keys in KEYS:
        parts.append(Text(group, style="bold underline"))
        t = Table(box=None, show_header=False, padding=(0, 2), expand=True)
        t.add_column(style="bold cyan", no_wrap=True, width=KEY_WIDTH)
        t.add_column(ratio=1)
        for key, what in keys:
            t.add_row(key, what)
        parts.append(t)
        parts.append(Text(""))
    return Group(*parts)


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close"),
    ]

    def __init__(self, notes: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.notes = notes  # the source's notes: the header shows one line of them

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "kvmtop keys"
            box.border_subtitle = "Esc to close"
            yield Static(help_text(self.notes))
