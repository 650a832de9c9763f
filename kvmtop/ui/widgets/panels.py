"""Small read-only panels of the guest screen: request bits and hypercalls.

Each renders a Rich table from a Breakdown; with nothing to show it says why (no events
this interval, or the collector note saying the tracepoint has no source).
"""

from __future__ import annotations

from rich.console import JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from ... import marks
from ...io_stats import IoSample
from ...model import NEEDS_EXITS, Breakdown, CollectorStatus
from .. import format as fmt


def _table(*columns: tuple[str, JustifyMethod]) -> Table:
    """A borderless table; the first left-aligned column gives way when space is short."""
    t = Table(box=None, pad_edge=False, expand=True, show_edge=False, padding=(0, 1),
              header_style="bold")
    flexible = next((i for i, (_, j) in enumerate(columns) if j == "left"), None)
    for i, (name, justify) in enumerate(columns):
        if i == flexible:
            t.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", ratio=1)
        else:
            t.add_column(name, justify=justify, no_wrap=True, min_width=len(name))
    return t


def _count(n: int, lost: int) -> Text:
    """A count, marked ``≥`` in red when a full map cut events from its row."""
    return Text(marks.at_least(fmt.count(n), lost), style="bold red" if lost else "")


def why_empty(status: CollectorStatus, feature: str, what: str) -> Text:
    """Why a panel is empty: the collector's note when the feature has no source.

    Request bits are read at kvm_exit, so they have no source when exits have none.
    """
    if not status.has(feature):
        if feature == "exits":
            note = "no source: kvm_exit never fires here (F1 says more)"
        elif feature in NEEDS_EXITS and not status.has("exits"):
            words = {"requests": "request bits"}.get(feature, feature)
            note = f"no source: {words} are read at a kvm_exit, which never fires here"
        else:
            note = next((n for n in status.notes), f"{feature}: no source on this host")
        return Text(note, style="italic yellow")
    return Text(f"no {what} this interval", style="dim italic")


class Panel(Static):
    """A bordered panel that re-renders from a Breakdown; focusable, so that on a small
    terminal Tab gives it its turn of the space (see the guest screen)."""

    DEFAULT_CLASSES = "panel"
    can_focus = True
    TITLE = ""

    def on_mount(self) -> None:
        self.border_title = self.TITLE

    FEATURE = ""  # the collector feature the panel's figures need

    def show(self, b: Breakdown, status: CollectorStatus) -> None:
        self.set_class(not status.has(self.FEATURE), "-nosource")  # shrinks to its one line of why
        self.update(self.render_breakdown(b, status), layout=False)  # fixed-size panel

    def render_breakdown(self, b: Breakdown, status: CollectorStatus) -> RenderableType:
        raise NotImplementedError


class RequestsPanel(Panel):
    """vcpu->requests bits pending at exit: how often each bit was set."""

    TITLE = "Requests pending at exit"
    FEATURE = "requests"
    BAR = 6

    def render_breakdown(self, b: Breakdown, status: CollectorStatus) -> RenderableType:
        if not b.requests:
            return why_empty(status, "requests", "request bits set at exit")
        t = _table(("BIT", "right"), ("NAME", "left"), ("EXITS", "right"), ("SHARE", "right"), ("", "right"))
        top = max(r.share for r in b.requests) or 1.0
        for r in b.requests[:12]:
            t.add_row(str(r.bit), Text(r.name, style="cyan"), _count(r.count, r.lost), fmt.share(r.share),
                      Text(fmt.bar(r.share / top, self.BAR), style="blue", no_wrap=True))
        return t


class HypercallPanel(Panel):
    TITLE = "Hypercalls"
    FEATURE = "hypercalls"

    def render_breakdown(self, b: Breakdown, status: CollectorStatus) -> RenderableType:
        if not b.hypercalls:
            return why_empty(status, "hypercalls", "kvm_hypercall events")
        t = _table(("NR", "right"), ("NAME", "left"), ("COUNT", "right"), ("RATE/s", "right"), ("P99", "right"))
        for h in b.hypercalls[:8]:
            name = h.name.removeprefix("KVM_HC_")
            t.add_row(str(h.code), Text(name, style="cyan"), _count(h.count, h.lost), fmt.rate(h.per_s),
                      fmt.duration(h.latency.p99) if h.latency.count else "—")
        return t


class IoPanel(Static):
    """PIO ports and MMIO addresses of the guest (or vCPU), by direction: counts and rates, as
    ``perf kvm stat --event=ioport|mmio``. Its probes are attached while it is on screen."""

    DEFAULT_CLASSES = "panel"
    can_focus = True
    ROWS = 12

    def on_mount(self) -> None:
        self.border_title = "I/O: ports and MMIO addresses"

    def show(self, sample: IoSample | None, supported: bool, pid: int, tid: int | None) -> None:
        self.update(self.render_io(sample, supported, pid, tid), layout=False)

    def render_io(self, sample: IoSample | None, supported: bool, pid: int, tid: int | None) -> RenderableType:
        if not supported:
            return Text("no source: PIO/MMIO accesses are counted live (kvm_pio, kvm_mmio) "
                        "and kept by record --io", style="italic yellow")
        if sample is None:
            return Text("counting PIO ports and MMIO addresses from the next interval…", style="italic")
        stats = sample.stats(pid, tid)
        if not stats:
            return Text("no port or MMIO access this interval", style="italic")
        t = _table(("SPACE", "left"), ("DIR", "left"), ("ADDRESS", "right"), ("COUNT", "right"),
                   ("RATE/s", "right"))
        for st in stats[:self.ROWS]:
            t.add_row(Text(st.space, style="cyan"), st.direction, st.address, fmt.count(st.count), fmt.rate(st.per_s))
        if len(stats) > self.ROWS:
            t.add_row("", Text(f"+{len(stats) - self.ROWS} more", style="italic"), "", "", "")
        if sample.drops:
            self.border_subtitle = f"{fmt.count(sample.drops)} accesses lost: BPF map full"
        else:
            self.border_subtitle = ""
        return t
