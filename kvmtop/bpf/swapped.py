"""A BPF hash map swapped for an empty one each poll instead of drained (kvmtop.bpf.c's `stats`).

The BPF program writes ``outer[epoch]``, one of two hash maps in an array of maps; the other
slot holds an empty map. Each poll user space flips the epoch (``Program.flip_epoch``), lets
the programs still running finish, reads the map the programs wrote until then with one batch
lookup, and ``release``s it: a thread puts a new empty map in its slot, ready for the next
flip, and closes the read map, which the kernel then frees whole. Nothing is deleted key by
key, and neither making a map nor replacing it (the kernel waits for an RCU grace period
there) is on the poll's path.
"""

from __future__ import annotations

import contextlib
import ctypes as ct
import os
import threading
import time

BPF_MAP_TYPE_HASH = 1
BPF_F_NO_PREALLOC = 1
SLOTS = 2


def _lib():
    from bcc.libbcc import lib  # bcc only where maps are made

    fn = lib.bcc_create_map
    fn.restype = ct.c_int
    fn.argtypes = [ct.c_int, ct.c_char_p, ct.c_int, ct.c_int, ct.c_int, ct.c_int]
    return lib


class SwappedHash:
    """The inner maps of one array of two hash maps: ``fds[slot]`` is the map in that slot
    (this object owns them)."""

    def __init__(self, outer_fd: int, key_size: int, value_size: int, max_entries: int,
                 flags: int = BPF_F_NO_PREALLOC, name: str = "stats"):
        self.outer_fd = outer_fd
        self.key_size, self.value_size, self.max_entries, self.flags = key_size, value_size, max_entries, flags
        self.name = name.encode()[:15]
        self.fds: list[int] = []
        self._renewing: threading.Thread | None = None
        self._stale: int | None = None  # a released slot whose new map is not in yet
        self.renew_s = 0.0  # what the last renewal took (off the poll's path)
        try:
            for slot in range(SLOTS):
                self.fds.append(self._put(slot, self._create()))
        except BaseException:
            self.close()
            raise

    def _create(self) -> int:
        fd = _lib().bcc_create_map(BPF_MAP_TYPE_HASH, self.name, self.key_size, self.value_size,
                                   self.max_entries, self.flags)
        if fd < 0:
            err = ct.get_errno() or -fd
            raise OSError(err, f"creating a BPF map ({self.max_entries} entries): {os.strerror(err)}")
        return fd

    def _put(self, slot: int, fd: int) -> int:
        key, value = ct.c_uint32(slot), ct.c_uint32(fd)
        if _lib().bpf_update_elem(self.outer_fd, ct.byref(key), ct.byref(value), 0) != 0:
            err = ct.get_errno()
            os.close(fd)
            raise OSError(err, f"putting a map in slot {slot} of an array of maps: {os.strerror(err)}")
        return fd

    def _renew(self, slot: int) -> None:
        t0 = time.perf_counter()
        old, self.fds[slot] = self.fds[slot], self._put(slot, self._create())
        os.close(old)  # no fd and no slot holds it now: the kernel frees it
        self._stale = None
        self.renew_s = time.perf_counter() - t0

    def release(self, slot: int) -> None:
        """The map in ``slot`` has been read: a thread replaces it with a new empty one."""
        self.ready()
        self._stale = slot
        self._renewing = threading.Thread(target=self._renew_quietly, args=(slot,), name="kvmtop-stats-renew",
                                          daemon=True)
        self._renewing.start()

    def _renew_quietly(self, slot: int) -> None:
        with contextlib.suppress(OSError):  # ready() tries again, and says why
            self._renew(slot)

    def ready(self) -> None:
        """Wait for a released slot's new map (made here if the thread could not: OSError
        if that fails too; the slot stays released, not to be written)."""
        thread, self._renewing = self._renewing, None
        if thread is not None:
            thread.join()
        if self._stale is not None:
            self._renew(self._stale)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.ready()
        fds, self.fds = self.fds, []
        for fd in fds:
            with contextlib.suppress(OSError):
                os.close(fd)
