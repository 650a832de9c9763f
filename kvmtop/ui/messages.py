"""Messages the feed worker posts to the app (thread-safe via post_message)."""

from __future__ import annotations

from textual.message import Message

from ..filtering import ReasonFilter
from ..io_stats import IoSample
from ..model import Snapshot


class SnapshotReady(Message):
    """A new snapshot; a newer one replaces an older one still in the queue."""

    def __init__(self, raw: Snapshot, shown: Snapshot, reason_filter: ReasonFilter | None,
                 cells: dict, trends_shared: bool = True, io: IoSample | None = None) -> None:
        super().__init__()
        self.io = io  # the source's PIO/MMIO accesses of the same interval, while counted
        self.raw = raw
        self.shown = shown  # ``raw`` with ``reason_filter`` applied (and its figures warmed)
        self.reason_filter = reason_filter
        self.cells = cells  # the VM table's cells of ``shown``, keyed by row
        self.trends_shared = trends_shared  # the trend scale ``cells`` were drawn on

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotReady)


class IoWanted(Message):
    """A screen that shows PIO/MMIO accesses opened (True) or closed (False): the probes
    that count them are attached only while one is open (or with --io)."""

    def __init__(self, on: bool) -> None:
        super().__init__()
        self.on = on


class FeedFailed(Message):
    """The source failed: the app ends with this one line."""

    def __init__(self, line: str) -> None:
        super().__init__()
        self.line = line


class SortChanged(Message):
    """The table in use sorts by another column (or direction), or got the focus; ``label``
    ("EXITS/s ▼") is shown in the header."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label


class FeedEnded(Message):
    """The source has no more intervals (a stream ended); the last snapshot stays."""
