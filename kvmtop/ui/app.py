"""The kvmtop App: global keys, the feed worker, filter and pause state.

One long-lived thread worker pulls snapshots from the Feed, applies the reason filter,
pre-computes the VM table's cells (off the UI thread) and posts a coalescing
``SnapshotReady``. The app keeps what the screens show in the ``view`` var; screens
watch it and tell the app about their own state with messages (``SortChanged``). Nothing
here touches the source directly: the Feed is the only door.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from rich.text import Text
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.filter import LineFilter
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

from ..errors import SourceError
from ..feed import Feed
from ..filtering import ReasonFilter, exit_reason_names, userspace_names
from ..gc_policy import GcPolicy
from ..host_isa import host_isa
from ..io_stats import IoSample
from ..memory import Trimmer
from ..model import Snapshot
from ..pacing import MAX_INTERVAL, MIN_INTERVAL
from ..selection import NamePattern
from .messages import FeedEnded, FeedFailed, IoWanted, SnapshotReady, SortChanged
from .no_color import readable_filters
from .palette import BindingCommands, Command
from .prepare import VmView, prepare
from .screens.filter import FilterScreen
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .screens.sort import SortScreen
from .terminal_guard import TerminalGuard
from .view import View
from .widgets.diff_table import Cells
from .widgets.meters import HeaderState, Replay
from .widgets.sortable import SortableTable

HANDOVER_WAIT_S = 0.25  # how long the feed thread waits for the UI to take a snapshot before it goes on
INTERVALS = (MIN_INTERVAL, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, MAX_INTERVAL)  # the +/- ladder
INTERVAL = Binding.Group("Interval", compact=True)
STEP = Binding.Group("Step", compact=True)
SEEK = Binding.Group("Seek", compact=True)
SPEED = Binding.Group("Speed", compact=True)
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


class KvmtopApp(App[int]):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {BindingCommands}

    # Commands are also the command palette's entries (title, help).
    BINDINGS = [
        # htop's keys: the footer shows the function keys (and the few without one).
        Command("f10,q", "quit", "Quit", title="Quit", help="Leave kvmtop (Ctrl+C too)"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
        Command("f1,question_mark", "help", "Help", title="Keys", help="Show every key"),
        Command("space", "pause", "Pause", show=False, title="Pause / resume",
                help="Freeze the display (collection continues); replay: stop advancing"),
        Command("f", "filter", "Reasons", title="Filter by exit reason",
                help="Pick exit reasons or KVM_EXIT_* reasons to include or exclude"),
        Command("c", "clear_filter", "Clear", show=False, title="Clear filter", help="Show every exit reason again"),
        Command("r", "reset", "Reset", show=False, title="Reset counters", help="Forget counts and history so far"),
        Command("s", "trend_scale", "Trend scale", show=False, title="Trend scale: shared / per row",
                help="Draw the tables' sparklines on one scale (a steady guest stays low) or each on its own"),
        # Live only: a replay's intervals are fixed by the recording (check_action hides them there).
        Command("plus", "interval(1)", "Longer interval", key_display="+", group=INTERVAL, show=False,
                title="Longer interval", help="Update less often"),
        Command("minus", "interval(-1)", "Shorter interval", key_display="-", group=INTERVAL, show=False,
                title="Shorter interval", help="Update more often"),
        # Replay (seekable feeds only; hidden otherwise).
        Command("comma", "step_back", "Step back", key_display=",", group=STEP,
                title="Replay: step back", help="Go back one interval"),
        Command("full_stop", "step", "Step", key_display=".", group=STEP,
                title="Replay: step", help="Advance one interval"),
        Command("left_square_bracket", "seek(-10)", "Back 10", key_display="[", group=SEEK,
                title="Replay: back 10", help="Seek 10 intervals back"),
        Command("right_square_bracket", "seek(10)", "Forward 10", key_display="]", group=SEEK,
                title="Replay: forward 10", help="Seek 10 intervals forward"),
        # Tables hand Home/End to these while replaying (View.replaying, DiffTable.edges_to_owner).
        Command("home", "seek_to(0)", "Start", show=False, title="Replay: start", help="Seek to the first interval"),
        Command("end", "seek_to(-1)", "End", show=False, title="Replay: end", help="Seek to the last interval"),
        Command("left_curly_bracket", "speed(-1)", "Slower replay", key_display="{", group=SPEED,
                title="Replay: slower", help="Halve the replay speed"),
        Command("right_curly_bracket", "speed(1)", "Faster replay", key_display="}", group=SPEED,
                title="Replay: faster", help="Double the replay speed"),
    ]
    REPLAY_ACTIONS = frozenset({"step", "step_back", "seek", "seek_to", "speed"})

    view: var[View | None] = var(None, always_update=True)
    header: var[HeaderState | None] = var(None, always_update=True)
    reason_filter: var[ReasonFilter | None] = var(None, always_update=True)
    display_paused: var[bool] = var(False)
    trends_shared: var[bool] = var(True)  # sparklines on one scale per table (`s`: each row its own)
    sort_label: var[str] = var("")

    def __init__(self, feed: Feed, reason_filter: ReasonFilter | None = None, title: str = "kvmtop",
                 selection: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__()
        self.feed = feed
        self.title = title
        self.selection = tuple(selection)  # what the source was narrowed to: ("PID", "4242")…
        self.row_filter: NamePattern | None = None  # the main screen's F4 filter
        self.raw: Snapshot | None = None  # newest unfiltered snapshot (kept while paused)
        self.reasons_seen: set[str] = set()
        self.error: str | None = None
        # Snapshots the UI lets go of are freed on the feed thread, and the heap is frozen after
        # every snapshot whatever the host's size; hosts under 512 vCPUs collect fully every 600
        # snapshots, bigger ones every 120 (see kvmtop.gc_policy).
        self.gc_policy = GcPolicy(min_vcpus=0, young=5000, small_host=512, small_every=600)
        # The filter the feed thread prepares snapshots with: a plain attribute the UI
        # thread sets, so the worker never reads a reactive.
        self._feed_filter = reason_filter
        self._feed_trends_shared = True
        self.io: IoSample | None = None  # the PIO/MMIO accesses of the newest interval, while counted
        self._io_screens = 0  # screens open that show them
        self.vm_view = VmView()  # the main table's sort and rows in view: the rows the worker makes cells of
        self.trimmer = Trimmer()  # hands memory freed by old snapshots back to the system
        self.set_reactive(KvmtopApp.reason_filter, reason_filter)

    @property
    def snapshot(self) -> Snapshot | None:
        """The snapshot on screen (after the filter)."""
        return self.view.snapshot if self.view is not None else None

    # ------------------------------------------------------------------ lifecycle
    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_mount(self) -> None:
        self._update_header()
        self.run_feed()

    def exit(self, result=None, return_code: int = 0, message=None) -> None:
        self.feed.stop()  # wakes the worker so the process can end promptly
        self.gc_policy.handed_over()  # (and if it waits for the UI to take a snapshot)
        super().exit(result, return_code, message)

    def on_unmount(self) -> None:
        self.feed.stop()

    @work(thread=True, exclusive=True, group="feed", name="feed", exit_on_error=False)
    def run_feed(self) -> None:
        worker = get_current_worker()
        feed = self.feed
        feed.hold_at_end = True  # a finished replay stays open so it can be sought back
        try:
            while not worker.is_cancelled and not feed.stopped:
                self.gc_policy.drain()
                raw = feed.next_snapshot()
                if raw is None:
                    if not feed.stopped:
                        self.post_message(FeedEnded())
                    break
                flt, shared = self._feed_filter, self._feed_trends_shared
                shown, cells = prepare(raw, flt, shared, self.vm_view)
                vcpus = raw.host.vcpu_count
                self.gc_policy.posting()
                self.post_message(SnapshotReady(raw, shown, flt, cells, shared, feed.io_sample()))
                del raw, shown, cells  # hold nothing while waiting for the next one
                self.gc_policy.drain_when_taken(min(HANDOVER_WAIT_S, feed.interval_s / 2))
                self.gc_policy.after_snapshot(vcpus)
                self.trimmer.tick()
        except SourceError as exc:
            self.post_message(FeedFailed(str(exc) or type(exc).__name__))
        except Exception as exc:
            self.post_message(FeedFailed(f"{type(exc).__name__}: {exc}".splitlines()[0]))
        finally:
            self.gc_policy.close()

    # ------------------------------------------------------------------ feed messages
    @on(SnapshotReady)
    def _on_snapshot(self, message: SnapshotReady) -> None:
        try:
            self._take(message)
        finally:
            self.gc_policy.handed_over()  # the feed thread frees the snapshot this one replaced

    def _take(self, message: SnapshotReady) -> None:
        self.gc_policy.retire(self.raw)
        self.raw = message.raw
        self.io = message.io
        self.reasons_seen.update(message.raw.reasons_seen())
        if self.display_paused:
            self._update_header()
            return
        if message.reason_filter is self.reason_filter and message.trends_shared == self.trends_shared:
            self._show(message.shown, message.cells)
        else:  # the filter or the trend scale changed while the worker was preparing
            self._reprepare()

    @on(FeedFailed)
    def _on_failed(self, message: FeedFailed) -> None:
        self.error = message.line
        self.exit(return_code=1, message=Text(f"kvmtop: {message.line}"))

    @on(FeedEnded)
    def _on_ended(self) -> None:
        self.notify("The source has no more intervals.", title="End of data")

    def _show(self, shown: Snapshot, cells: Mapping[str, Cells]) -> None:
        self.gc_policy.retire(self.view)
        self.view = View(shown, cells, replaying=self.feed.seekable, trends_shared=self.trends_shared,
                         io=self.io, io_supported=self.feed.io_supported)
        self._update_header()

    def _reprepare(self) -> None:
        """Show the newest snapshot again as the filter and trend scale now say (UI thread)."""
        if self.raw is not None:
            self._show(*prepare(self.raw, self.reason_filter, self.trends_shared, self.vm_view))
        else:
            self._update_header()

    @on(SortChanged)
    def _on_sort_changed(self, message: SortChanged) -> None:
        self.sort_label = message.label

    @on(IoWanted)
    def _io_wanted(self, message: IoWanted) -> None:
        """Count PIO/MMIO accesses while at least one screen shows them."""
        self._io_screens = max(0, self._io_screens + (1 if message.on else -1))
        self.feed.want_io(self._io_screens > 0)

    @on(SortableTable.PickSort)
    def _pick_sort(self, message: SortableTable.PickSort) -> None:
        table = message.table

        def done(column: str | None) -> None:
            if column:
                table.sort_by(column)

        self.push_screen(SortScreen(message.columns, message.current), done)

    @on(MainScreen.RowFilterChanged)
    def _row_filter_changed(self, message: MainScreen.RowFilterChanged) -> None:
        self.row_filter = message.pattern
        self._update_header()

    def _update_header(self) -> None:
        feed = self.feed
        replay = None
        if feed.seekable:
            replay = Replay(feed.position, feed.length, feed.speed, feed.paused)
        self.header = HeaderState(
            snapshot=self.snapshot,
            filter_text=self.reason_filter.describe() if self.reason_filter else "",
            paused=self.display_paused,
            interval_s=feed.interval_s,
            source=getattr(feed.source, "name", ""),
            replay=replay,
            sort_label=self.sort_label,
            selection=self.selection + ((("Rows", str(self.row_filter)),) if self.row_filter else ()),
        )

    def watch_reason_filter(self) -> None:
        self._feed_filter = self.reason_filter
        self._reprepare()

    def watch_trends_shared(self) -> None:
        self._feed_trends_shared = self.trends_shared
        self._reprepare()

    def watch_display_paused(self) -> None:
        if not self.display_paused:
            self._reprepare()
        else:
            self._update_header()

    def watch_sort_label(self) -> None:
        self._update_header()

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.REPLAY_ACTIONS:
            return self.feed.seekable
        if action == "interval":
            return not self.feed.seekable
        if action == "clear_filter":
            return self.reason_filter is not None or None
        return True

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.raw.collector.notes if self.raw is not None else ()))

    def action_pause(self) -> None:
        """Live: freeze the display (collection continues). Replay: stop advancing."""
        if self.feed.seekable:
            self.feed.set_paused(not self.feed.paused)
            self._update_header()
        else:
            self.display_paused = not self.display_paused

    def action_trend_scale(self) -> None:
        self.trends_shared = not self.trends_shared
        self.notify("Trends: one scale for all rows." if self.trends_shared else "Trends: each row on its own scale.",
                    timeout=2)

    def action_reset(self) -> None:
        self.feed.reset()
        self.notify("Counters and history reset.", timeout=2)

    def action_interval(self, direction: int) -> None:
        current = self.feed.interval_s
        if direction > 0:
            new = next((i for i in INTERVALS if i > current + 1e-9), INTERVALS[-1])
        else:
            new = next((i for i in reversed(INTERVALS) if i < current - 1e-9), INTERVALS[0])
        self.feed.interval_s = new
        self._update_header()

    def action_filter(self) -> None:
        if isinstance(self.screen, FilterScreen):
            return

        def done(result: ReasonFilter | None | bool) -> None:
            if not isinstance(result, bool):  # False: cancelled
                self.reason_filter = result

        self.push_screen(FilterScreen(sorted(self.reasons_seen), self.reason_choices(), self.reason_filter), done)

    def reason_choices(self) -> list[str]:
        """Every reason the host's ISA can produce (both ISAs when unknown), then every KVM_EXIT_*."""
        isas = {r.isa for r in self.raw.host.reasons} if self.raw is not None else set()
        isa = isas.pop() if len(isas) == 1 else host_isa()
        return [*exit_reason_names(isa), *userspace_names()]

    def action_clear_filter(self) -> None:
        self.reason_filter = None

    def action_step(self) -> None:
        self.feed.set_paused(True)
        self.feed.step(1)
        self._update_header()

    def action_step_back(self) -> None:
        self.feed.set_paused(True)
        self.feed.seek(self.feed.position - 1)
        self._update_header()

    def action_seek(self, delta: int) -> None:
        self.feed.seek(self.feed.position + delta)

    def action_seek_to(self, position: int) -> None:
        self.feed.seek(self.feed.length if position < 0 else position)

    def action_speed(self, direction: int) -> None:
        current = self.feed.speed
        if direction > 0:
            new = next((s for s in SPEEDS if s > current + 1e-9), SPEEDS[-1])
        else:
            new = next((s for s in reversed(SPEEDS) if s < current - 1e-9), SPEEDS[0])
        self.feed.speed = new
        self._update_header()

    def get_line_filters(self) -> Sequence[LineFilter]:
        """NO_COLOR / --color none: greys in which every figure stays legible (ui.no_color)."""
        return readable_filters(super().get_line_filters())

    def get_key_display(self, binding: Binding) -> str:
        """Function keys as htop writes them: F1, F10."""
        display = super().get_key_display(binding)
        return display.upper() if re.fullmatch(r"f\d+", display) else display

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own, less its "Keys" panel: ours ("Keys", the help screen) is a Command."""
        yield from (c for c in super().get_system_commands(screen) if c.title != "Keys")


def make_app(feed: Feed, reason_filter: ReasonFilter | None = None, title: str = "kvmtop",
             selection: Sequence[tuple[str, str]] = ()) -> KvmtopApp:
    """The app, not running (tests, screenshots and ``run_dashboard``).

    ``selection``: how the source was narrowed, for the header (("PID", "4242"), ("Guests", "web*")).
    """
    return KvmtopApp(feed, reason_filter=reason_filter, title=title, selection=selection)


def run_dashboard(feed: Feed, *, reason_filter: ReasonFilter | None = None, title: str = "kvmtop",
                  selection: Sequence[tuple[str, str]] = ()) -> int:
    """Run the dashboard until the user quits; returns the exit status.

    The caller opens the feed before and closes it after; the app only pulls snapshots
    (on one worker thread) and stops the feed when it quits. A source error ends the app
    with its one line on stderr and status 1; a signal (SIGTERM, SIGHUP, SIGQUIT, SIGINT)
    ends it in order with status 128 + its number. The terminal is restored on every path.
    """
    app = make_app(feed, reason_filter=reason_filter, title=title, selection=selection)
    guard = TerminalGuard(app)
    try:
        with guard:
            app.run()
    finally:
        feed.stop()
    return guard.exit_status or app.return_code or 0
