"""Whole records to stdout or to a log file that is reopened on SIGHUP (for logrotate).

Each record (one interval: a JSON line, CSV rows or a text table) goes out in one
``write`` on an ``O_APPEND`` descriptor, so a rotation never splits one, and after a
SIGHUP the next record goes to a fresh file at the same path, as ``kvm_stat -L`` does.
A new or empty file starts with ``header`` (the CSV column line).
"""

from __future__ import annotations

import os
import signal
import sys


class RecordLog:
    def __init__(self, path: str | None, header: str = ""):
        self.path = path
        self.header = header
        self._fd: int | None = None
        self._reopen = False
        self.opened = 0  # how many times the file was (re)opened
        if path is None:
            if header:
                self._stdout(header)
        else:
            self._open()

    def install_sighup(self) -> None:
        """SIGHUP: reopen the file before the next record (main thread only)."""
        if self.path is not None:
            signal.signal(signal.SIGHUP, lambda *_: self.request_reopen())

    def request_reopen(self) -> None:
        self._reopen = True  # async-signal safe: acted on at the next write

    def write(self, record: str) -> None:
        if self.path is None:
            self._stdout(record)
            return
        if self._reopen:
            self._reopen = False
            self.close()
            self._open()
        assert self._fd is not None, "opened in __init__"
        _write_all(self._fd, record.encode("utf-8"))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> None:
        assert self.path is not None, "stdout needs no opening"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        self.opened += 1
        if self.header and os.fstat(self._fd).st_size == 0:
            _write_all(self._fd, self.header.encode("utf-8"))

    @staticmethod
    def _stdout(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
