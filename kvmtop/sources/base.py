"""The Source interface every kind of data implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from ..model import Interval


@runtime_checkable
class Source(Protocol):
    """Yields one ``Interval`` per call.

    ``paced`` sources (live, demo) measure the present: the caller waits ``interval_s``
    between calls and ``next_interval`` returns what happened since the last call.
    Unpaced sources (recordings, imported traces) know their intervals ahead; they
    expose them as the Sequence ``intervals`` so a replay can seek.
    """

    name: str
    paced: bool

    def open(self) -> None:
        """Start measuring (compile and attach BPF, open files). May raise SourceError."""

    def next_interval(self) -> Interval | None:
        """The next interval, or None when a recorded stream has ended."""

    def reset(self) -> None:
        """Forget counts so far (the `r` key)."""

    def close(self) -> None:
        """Detach and release everything; safe to call twice."""


class RecordedSource:
    """Base of unpaced sources whose intervals are known ahead (recordings, trace imports):
    ``intervals`` is a Sequence (a list for a trace import; a recording reads its file on
    demand). A Feed replays ``intervals`` itself (pause, step, seek, speed); ``next_interval`` just
    walks them in order for callers that do not seek.
    """

    name = "recorded"
    paced = False
    intervals: Sequence[Interval] = ()
    _pos = 0

    def open(self) -> None:
        self._pos = 0

    def next_interval(self) -> Interval | None:
        if self._pos >= len(self.intervals):
            return None
        self._pos += 1
        return self.intervals[self._pos - 1]

    def reset(self) -> None:
        self._pos = 0

    def close(self) -> None:
        pass
