"""Replay sources: RecordingSource (a ``kvmtop record`` file) and the opener for ``kvmtop replay``.

``open_replay_source(path)`` looks at the file: a recording (gzip or plain JSON lines
whose first line is a ``kvmtop.recording/`` header) opens as a RecordingSource, anything
else as a text capture (TraceSource, which also reads a gzip-compressed capture). Both
are unpaced and expose their intervals as the Sequence ``intervals`` (read from the file
on demand for a recording) so the Feed can pause, step, seek and change speed. An
unreadable file raises SourceError with a one-line message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import SourceError
from ..io_stats import IoSample
from ..model import Interval
from ..offline.recording import is_recording
from ..offline.recording_reader import RecordingReader
from .base import RecordedSource, Source


class RecordingSource(RecordedSource):
    """A recording, read from the file as it is replayed; ``warning`` says when it was cut short or
    damaged, and is shown with every interval."""

    def __init__(self, path: str):
        self.path = path
        self.name = f"recording {os.path.basename(path)}"
        self.reader = RecordingReader(path, note_warning=True)
        self.meta: dict = self.reader.meta
        self.warning: str | None = self.reader.warning
        self.intervals: Sequence[Interval] = self.reader
        self.io_supported = bool(self.meta.get("io"))  # recorded with --io: the I/O panel has them

    def io_at(self, index: int) -> IoSample | None:
        """The PIO/MMIO sample recorded beside interval ``index``, if any."""
        return self.reader.io(index)

    def close(self) -> None:
        self.reader.close()


def open_replay_source(path: str, window_s: float = 1.0) -> Source:
    """A RecordingSource or a TraceSource (text capture cut into ``window_s`` windows)."""
    try:
        if os.path.isdir(path):
            raise SourceError(f"cannot replay {path}: it is a directory")
        recording = is_recording(path)
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if recording:
        source = RecordingSource(path)
        if not source.intervals:
            source.close()
            raise SourceError(f"recording {path} holds no intervals" +
                              (f" ({source.warning})" if source.warning else ""))
        return source
    from .trace import TraceSource

    return TraceSource(path, window_s)
