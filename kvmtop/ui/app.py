"""The kvmtop App: global keys, the feed worker, filter and pause state.

One long-lived thread worker pulls snapshots from the Feed, applies the reason filter,
pre-computes the VM table's cells (off the UI thread) and posts a coalescing
``SnapshotReady``. The app keeps the newest snapshot in the ``snapshot`` var; screens
watch it. Nothing here touches the source directly: the Feed is the only door.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from rich.text import Text
from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

from ..feed import Feed
from ..filtering import ReasonFilter
from ..model import Snapshot
from ..errors import SourceError
from .gc_policy import GcPolicy
from .messages import FeedEnded, FeedFailed, SnapshotReady
from .prepare import prepare
from .screens.filter import FilterScreen
from .screens.help import HelpScreen
from .screens.main import MainScreen
from .widgets.diff_table import Cells
from .widgets.meters import HeaderState, Replay

INTERVALS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
INTERVAL = Binding.Group("Interval", compact=True)
STEP = Binding.Group("Step", compact=True)
SEEK = Binding.Group("Seek", compact=True)
SPEED = Binding.Group("Speed", compact=True)
SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 64.0)


class KvmtopApp(App[int]):
    CSS_PATH = "app.tcss"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark,f1", "help", "Help", key_display="?"),
        Binding("space", "pause", "Pause"),
        Binding("f", "filter", "Filter"),
        Binding("c", "clear_filter", "Clear"),
        Binding("r", "reset", "Reset"),
        Binding("plus", "interval(1)", "Longer interval", key_display="+", group=INTERVAL),
        Binding("minus", "interval(-1)", "Shorter interval", key_display="-", group=INTERVAL),
        # Replay (seekable feeds only; hidden otherwise).
        Binding("comma", "step_back", "Step back", key_display=",", group=STEP),
        Binding("full_stop", "step", "Step", key_display=".", group=STEP),
        Binding("left_square_bracket", "seek(-10)", "Back 10", key_display="[", group=SEEK),
        Binding("right_square_bracket", "seek(10)", "Forward 10", key_display="]", group=SEEK),
        # Tables hand Home/End to these while replaying (DiffTable.action_scroll_home/end).
        Binding("home", "seek_to(0)", "Start", show=False),
        Binding("end", "seek_to(-1)", "End", show=False),
        Binding("left_curly_bracket", "speed(-1)", "Slower replay", key_display="{", group=SPEED),
        Binding("right_curly_bracket", "speed(1)", "Faster replay", key_display="}", group=SPEED),
    ]
    REPLAY_ACTIONS = frozenset({"step", "step_back", "seek", "seek_to", "speed"})

    snapshot: var[Snapshot | None] = var(None, always_update=True)
    header: var[HeaderState | None] = var(None, always_update=True)
    reason_filter: var[ReasonFilter | None] = var(None, always_update=True)
    display_paused: var[bool] = var(False)
    sort_label: var[str] = var("")

    def __init__(self, feed: Feed, reason_filter: ReasonFilter | None = None, title: str = "kvmtop") -> None:
        super().__init__()
        self.feed = feed
        self.title = title
        self.raw: Snapshot | None = None  # newest unfiltered snapshot (kept while paused)
        self.vm_cells: dict[str, Cells] = {}  # VM table cells of ``snapshot``
        self.reasons_seen: set[str] = set()
        self.error: str | None = None
        # Snapshots the UI let go of. A snapshot of 1,000 VMs is ~10^6 objects: freeing it
        # on the UI thread would stall a frame, so the feed thread drops them (drain_retired).
        self._retired: deque[object] = deque()
        self.gc_policy = GcPolicy()
        self.set_reactive(KvmtopApp.reason_filter, reason_filter)

    # ------------------------------------------------------------------ lifecycle
    def get_default_screen(self) -> Screen:
        return MainScreen()

    def on_mount(self) -> None:
        self._update_header()
        self.run_feed()

    def exit(self, result=None, return_code: int = 0, message=None) -> None:  # type: ignore[override]
        self.feed.stop()  # wakes the worker so the process can end promptly
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
                self.drain_retired()
                raw = feed.next_snapshot()
                if raw is None:
                    if not feed.stopped:
                        self.post_message(FeedEnded())
                    break
                flt = self.reason_filter
                shown, cells = prepare(raw, flt)
                self.post_message(SnapshotReady(raw, shown, flt, cells))
                self.gc_policy.after_snapshot(raw)
                del raw, shown, cells  # hold nothing while waiting for the next one
        except SourceError as exc:
            self.post_message(FeedFailed(str(exc) or type(exc).__name__))
        except Exception as exc:  # noqa: BLE001 - one line, never a traceback
            self.post_message(FeedFailed(f"{type(exc).__name__}: {exc}".splitlines()[0]))
        finally:
            self.gc_policy.close()

    # ------------------------------------------------------------------ feed messages
    def drain_retired(self) -> None:
        """Free snapshots the UI no longer shows (called on the feed thread)."""
        retired = self._retired
        while retired:
            retired.popleft()

    @on(SnapshotReady)
    def _on_snapshot(self, message: SnapshotReady) -> None:
        self._retired.append(self.raw)
        self.raw = message.raw
        self.reasons_seen.update(message.raw.reasons_seen())
        if self.display_paused:
            self._update_header()
            return
        if message.reason_filter is self.reason_filter:
            self._show(message.shown, message.cells)
        else:  # the filter changed while the worker was preparing
            self._show(*prepare(message.raw, self.reason_filter))

    @on(FeedFailed)
    def _on_failed(self, message: FeedFailed) -> None:
        self.error = message.line
        self.exit(return_code=1, message=Text(f"kvmtop: {message.line}"))

    @on(FeedEnded)
    def _on_ended(self) -> None:
        self.notify("The source has no more intervals.", title="End of data")

    def _show(self, shown: Snapshot, cells: dict[str, Cells]) -> None:
        self._retired.append((self.snapshot, self.vm_cells))
        self.vm_cells = cells
        self.snapshot = shown
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
        )

    def watch_reason_filter(self) -> None:
        if self.raw is not None:
            self._show(*prepare(self.raw, self.reason_filter))
        else:
            self._update_header()

    def watch_display_paused(self) -> None:
        if not self.display_paused and self.raw is not None:
            self._show(*prepare(self.raw, self.reason_filter))
        else:
            self._update_header()

    def watch_sort_label(self) -> None:
        self._update_header()

    # ------------------------------------------------------------------ actions
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.REPLAY_ACTIONS:
            return self.feed.seekable
        if action == "clear_filter":
            return self.reason_filter is not None or None
        return True

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def action_pause(self) -> None:
        """Live: freeze the display (collection continues). Replay: stop advancing."""
        if self.feed.seekable:
            self.feed.set_paused(not self.feed.paused)
            self._update_header()
        else:
            self.display_paused = not self.display_paused

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
            if result is not False:  # False: cancelled
                self.reason_filter = result  # type: ignore[assignment]

        self.push_screen(FilterScreen(sorted(self.reasons_seen), self.reason_filter), done)

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

    # ------------------------------------------------------------------ command palette
    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        commands = [
            ("Pause / resume", "Freeze the display (collection continues); replay: stop advancing",
             self.action_pause),
            ("Filter by exit reason", "Pick exit reasons to include or exclude", self.action_filter),
            ("Clear filter", "Show every exit reason again", self.action_clear_filter),
            ("Reset counters", "Forget counts and history so far", self.action_reset),
            ("Longer interval", "Update less often", lambda: self.action_interval(1)),
            ("Shorter interval", "Update more often", lambda: self.action_interval(-1)),
            ("Keys", "Show every key", self.action_help),
        ]
        if self.feed.seekable:
            commands += [
                ("Replay: step", "Advance one interval", self.action_step),
                ("Replay: step back", "Go back one interval", self.action_step_back),
                ("Replay: back 10", "Seek 10 intervals back", lambda: self.action_seek(-10)),
                ("Replay: forward 10", "Seek 10 intervals forward", lambda: self.action_seek(10)),
                ("Replay: start", "Seek to the first interval", lambda: self.action_seek_to(0)),
                ("Replay: end", "Seek to the last interval", lambda: self.action_seek_to(-1)),
                ("Replay: faster", "Double the replay speed", lambda: self.action_speed(1)),
                ("Replay: slower", "Halve the replay speed", lambda: self.action_speed(-1)),
            ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
        main = next((s for s in self.screen_stack if isinstance(s, MainScreen)), None)
        if main is not None and screen is main:
            yield from main.commands()


def make_app(feed: Feed, reason_filter: ReasonFilter | None = None, title: str = "kvmtop") -> KvmtopApp:
    """The app, not running (tests, screenshots and ``run_dashboard``)."""
    return KvmtopApp(feed, reason_filter=reason_filter, title=title)


def run_dashboard(feed: Feed, *, reason_filter: ReasonFilter | None = None, title: str = "kvmtop") -> int:
    """Run the dashboard until the user quits; returns the exit status.

    The caller opens the feed before and closes it after; the app only pulls snapshots
    (on one worker thread) and stops the feed when it quits. A source error ends the app
    with its one line on stderr and status 1.
    """
    app = make_app(feed, reason_filter=reason_filter, title=title)
    try:
        app.run()
    finally:
        feed.stop()
    return app.return_code or 0
