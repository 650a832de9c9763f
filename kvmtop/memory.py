"""Give the memory freed by big snapshots back to the operating system (glibc).

Each snapshot of a big host allocates and frees tens of MB of numpy arrays and small
objects; glibc keeps much of what is freed inside the process (its heap only shrinks from
the top). ``Trimmer.tick`` calls ``malloc_trim`` every few snapshots (about 2 ms), which
keeps the dashboard's resident memory flat. Without glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util


def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


class Trimmer:
    def __init__(self, every: int = 10):
        self.every = every
        self._n = 0
        self._trim = _malloc_trim()

    def tick(self) -> None:
        """Call once per snapshot (on the thread that built it)."""
        self._n += 1
        if self._trim is not None and self._n % self.every == 0:
            self._trim(0)
