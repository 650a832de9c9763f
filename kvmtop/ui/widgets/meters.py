"""The htop-like header: host figures, a 2-minute sparkline, state, collector cost, notices."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Static

from ...model import NOTE_NO_EXITS, CollectorStatus, Snapshot
from .. import format as fmt
from .text_content import app_content

SPARK_SECONDS = 120.0


@dataclass(frozen=True)
class Replay:
    position: int
    length: int
    speed: float
    paused: bool


@dataclass(frozen=True, eq=False)
class HeaderState:
    """Everything the header shows; the app replaces it whenever any part changes."""

    snapshot: Snapshot | None = None
    filter_text: str = ""
    paused: bool = False
    interval_s: float = 1.0
    source: str = ""
    replay: Replay | None = None
    sort_label: str = ""
    selection: tuple[tuple[str, str], ...] = ()  # ("PID", "4242"), ("Guests", "web*"), ("Rows", "db")


GAP = "  "

# The header's one line where kvm_exit never fires (the full note is in the help, F1).
NO_EXITS_LINE = "kvm_exit never fires here: showing userspace exits instead"


def _kv(text: Text, label: str, value: str, style: str = "bold") -> Text:
    """``label value`` then a gap.

    Spaces only ever trail a styled run, never lead it: SVG renderers (rsvg) drop a
    run's leading spaces, which glued "Collector" to its value in the screenshots.
    """
    text.append(label + " ", style="cyan")
    text.append(value, style=style)
    text.append(GAP)
    return text


def _badge(text: Text, label: str, style: str) -> Text:
    """`` label `` in a reverse style; the leading pad is a run of its own (see ``_kv``)."""
    text.append(" ", style="reverse")
    text.append(label + " ", style=style)
    return text


def _percentiles(text: Text, lat) -> Text:
    _kv(text, "p50", fmt.duration(lat.p50) if lat.count else "—")
    _kv(text, "p99", fmt.duration(lat.p99) if lat.count else "—", "bold yellow")
    _kv(text, "max", fmt.duration(lat.max) if lat.count else "—")
    return text


def rate_text(snap: Snapshot | None) -> tuple[Text, list[float]]:
    """The header's lead figure and its sparkline's values: exits/s, or userspace exits/s
    where kvm_exit never fires (they take the exits' place, as in the table)."""
    rate = Text(no_wrap=True)
    if snap is None:
        rate.append("Exits ", style="cyan").append("—", style="bold")
        return rate, []
    if snap.collector.has("exits"):
        rate.append("Exits ", style="cyan").append(f"{fmt.rate(snap.host.exits_per_s)}/s", style="bold")
        return rate, list(snap.host.history)
    rate.append("Userspace ", style="cyan").append(f"{fmt.rate(snap.host.userspace_per_s)}/s",
                                                     style="bold magenta")
    return rate, list(snap.host.userspace_history)


def summary_lines(state: HeaderState) -> tuple[Text, Text, Text, Text | None]:
    """(line 1 right part, line 2, line 3, notice) — pure, for tests and the widget.

    Most important first on each line, so a narrow terminal cuts the least important.
    """
    snap = state.snapshot
    host = snap.host if snap else None
    status = snap.collector if snap else CollectorStatus()  # before the first: nothing is missing
    exits_ok = status.has("exits")

    right = Text(no_wrap=True)
    if host is not None and exits_ok:
        _percentiles(right, host.latency)
    elif host is not None:
        right.append("RT ", style="cyan")  # the VMM round trip, as the table's RT columns
        _percentiles(right, host.userspace_latency)

    line2 = Text(no_wrap=True, overflow="ellipsis")
    if host is not None:
        _kv(line2, "VMs", str(host.vm_count))
        _kv(line2, "vCPUs", str(host.vcpu_count))
        if not exits_ok:
            _kv(line2, "Exits", fmt.NA)
        elif status.has("userspace"):
            _kv(line2, "Userspace", f"{fmt.rate(host.userspace_per_s)}/s", "bold magenta")
            ul = host.userspace_latency
            _kv(line2, "round trip p99", fmt.duration(ul.p99) if ul.count else "—")
        else:
            _kv(line2, "Userspace", fmt.NA)
        _kv(line2, "Hypercalls", f"{fmt.rate(host.hypercalls_per_s)}/s" if status.has("hypercalls") else fmt.NA)
    else:
        line2.append("waiting for the first interval…", style="italic")

    line3 = Text(no_wrap=True, overflow="ellipsis")
    _kv(line3, "Interval", fmt.interval(state.interval_s))
    if state.replay is not None:
        r = state.replay
        _kv(line3, "Replay", f"{r.position}/{r.length} ×{r.speed:g}" + (" ⏸" if r.paused else " ▶"),
            "bold reverse yellow" if r.paused else "bold green")
    if state.paused:
        _badge(line3, "PAUSED", "bold reverse yellow")
        line3.append(GAP)
    else:
        line3.append("● ", style="green")
        line3.append(state.source or "live", style="green")
        line3.append(GAP)
    if state.sort_label:
        _kv(line3, "Sort", state.sort_label)
    selections = [*state.selection, *((("Reasons", state.filter_text),) if state.filter_text else ())]
    for label, value in selections:
        _kv(line3, label, value, "bold reverse magenta")
    if not selections:
        _kv(line3, "Selection", "all", "")
    _kv(line3, "Collector", f"{status.poll_ms:.1f} ms", "")
    kinds = ", ".join(f"{k} {fmt.count(n)}" for k, n in status.drops_by_kind.items())
    drops = fmt.count(status.drops) + (f" ({kinds})" if kinds else "")
    for label, n, value in (("drops", status.drops, drops),
                            ("unmatched exits", status.unmatched_exits, fmt.count(status.unmatched_exits)),
                            ("unmatched entries", status.unmatched_entries, fmt.count(status.unmatched_entries))):
        if n:
            _kv(line3, label, value, "bold red")
    return right, line2, line3, notice_line(status)


def notice_line(status: CollectorStatus) -> Text | None:
    """One line, whatever the width: why figures are missing, and how many notes the help
    (F1) lists in full."""
    notes = list(status.notes)
    if status.has("exits"):
        if not notes:
            return None
        lead, others = notes[0], notes[1:]
    else:
        lead, others = NO_EXITS_LINE, [n for n in notes if n != NOTE_NO_EXITS]
    rest = len(others)
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append("⚠ ")
    if rest > 0:
        text.append(f"+{rest} note{'s' if rest > 1 else ''} (F1)", style="bold")
        text.append(GAP)
    text.append(lead)
    return text


class SparkText(Widget):
    """A one-line sparkline as block characters, as wide as the widget (newest right)."""

    DEFAULT_CSS = "SparkText { height: 1; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.values: list[float] = []

    def set_values(self, values: list[float]) -> None:
        self.values = values
        self.refresh()

    def render(self) -> Content:
        """Scaled between the window's min and max, which are printed after it."""
        return app_content(self, self.spark_text())

    def spark_text(self) -> Text:
        values = self.values
        text = Text(no_wrap=True)
        if not values:
            return text
        lo, hi = min(values), max(values)
        span = f"{fmt.rate(lo)}–{fmt.rate(hi)}/s"
        width = max(1, self.size.width - len(span) - 1)
        bars = fmt.spark(values, width)
        blocks = bars.lstrip(" ")
        text.append(" " * (len(bars) - len(blocks)))  # padding unstyled (see ``_kv``)
        text.append(blocks, style="green")
        text.append(" ")
        text.append(span, style="dim")
        return text


class Line(Static):
    """A one-line Static that re-lays out only when its width may change."""

    cells: int | None = None  # the width of the text shown

    def set_text(self, text: Text) -> None:
        previous, self.cells = self.cells, text.cell_len
        self.update(app_content(self, text), layout=previous != self.cells)


class Meters(Vertical):
    """Header meters; watches the app's ``header`` var."""

    def compose(self) -> ComposeResult:
        with Horizontal(id="meter-top"):
            yield Line(id="meter-rate")
            yield SparkText(id="meter-spark")
            yield Line(id="meter-lat")
        yield Static(id="meter-line2")
        yield Static(id="meter-line3")
        yield Static(id="meter-notice")

    _behind = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._shown: dict[str, tuple] = {}  # what each line shows
        self._lines: dict[str, Widget] = {}  # each line's widget, by selector

    def _line(self, selector: str) -> Widget:
        line = self._lines.get(selector)
        if line is None:
            line = self._lines[selector] = self.query_one(selector)
        return line

    def on_mount(self) -> None:
        for line in self.walk_children(Widget):
            # no links in the header: its lines are not searched for them, segment by segment,
            # every second (Textual's auto_links)
            line.auto_links = False
        self.watch(self.app, "header", self.show, init=True)

    def catch_up(self) -> None:
        """Show the latest header if it changed while the screen was under another (its
        screen calls this when it is back on top)."""
        if self._behind:
            self.show(self.app.header)  # type: ignore[attr-defined]

    def show(self, state: HeaderState | None) -> None:
        if state is None:
            return
        if self.screen is not self.app.screen:  # another screen is on top: catch up when this one is back
            self._behind = True
            return
        self._behind = False
        rate, values = rate_text(state.snapshot)
        keep = max(1, int(SPARK_SECONDS / max(state.interval_s, 0.1)))
        self._put("#meter-rate", rate)
        spark = self._line("#meter-spark")
        assert isinstance(spark, SparkText)
        spark.set_values(values[-keep:])
        right, line2, line3, notice = summary_lines(state)
        self._put("#meter-lat", right)
        self._put("#meter-line2", line2)
        self._put("#meter-line3", line3)
        box = self._line("#meter-notice")
        box.display = notice is not None
        if notice is not None:
            self._put("#meter-notice", notice)

    def _put(self, selector: str, text: Text) -> None:
        """Show ``text`` in a line, which is drawn again only if it changed (most seconds, a
        header line shows what it showed)."""
        look = (text.plain, tuple(text.spans), text.style)
        if self._shown.get(selector) == look:
            return
        self._shown[selector] = look
        line = self._line(selector)
        if isinstance(line, Line):
            line.set_text(text)
        elif isinstance(line, Static):
            line.update(app_content(self, text), layout=False)
