"""`?` / F1: every key, grouped."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    ("Everywhere", (
        ("Space", "pause the display (collection continues); replay: pause/resume"),
        ("f", "filter by exit reason (include or exclude)"),
        ("c", "clear the filter"),
        ("r", "reset counters and history"),
        ("+ / -", "longer / shorter interval"),
        ("? / F1", "this help"),
        ("Ctrl+P", "command palette (every action)"),
        ("q", "quit"),
    )),
    ("Guests (main screen)", (
        ("↑ ↓ PgUp PgDn", "move"),
        ("Home / End", "first / last guest"),
        ("Enter", "open the guest: vCPUs, reasons, latency, requests, hypercalls"),
        ("< / >", "sort by the previous / next column"),
        ("F6", "choose the sort column"),
        ("I", "invert the sort order"),
        ("click a header", "sort by it (again: invert)"),
        ("/", "find a VM by name as you type (Enter: back to the table)"),
    )),
    ("Guest screen", (
        ("Tab", "switch between the reason and vCPU tables"),
        ("↑ ↓ on a reason", "show its latency distribution"),
        ("Enter on a vCPU", "the same view for that vCPU"),
        ("Escape", "back one level"),
    )),
    ("Marks", (
        ("≥273 (red)", "a lower bound: a full BPF map lost some of this row's events (--max-keys)"),
        ("3.20s! (USER/s)", "a vCPU's VMM has had a userspace exit that long: counted when KVM_RUN comes back"),
    )),
    ("Replay (recordings)", (
        ("Space", "pause / resume advancing"),
        (". / ,", "step one interval forward / back"),
        ("] / [", "seek 10 intervals forward / back"),
        ("Home / End", "first / last interval"),
        ("} / {", "faster / slower"),
    )),
)


def help_table() -> Table:
    t = Table(box=None, show_header=False, padding=(0, 2), expand=True)
    t.add_column(style="bold cyan", no_wrap=True, width=16)
    t.add_column()
    for group, keys in KEYS:
        t.add_row(Text(group, style="bold underline"), "")
        for key, what in keys:
            t.add_row(key, what)
        t.add_row("", "")
    return t


class HelpScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("escape,q,question_mark,f1", "dismiss", "Close"),
    ]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box") as box:
            box.border_title = "kvmtop keys"
            box.border_subtitle = "Esc to close"
            yield Static(help_table())
