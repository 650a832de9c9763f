"""Fast readers of kvmtop's BPF hash maps.

Each poll reads the maps with BPF_MAP_LOOKUP_BATCH (and, where entries must go, deletes them
in batches) straight into numpy buffers (structured dtypes laid out like the C structs), so
no Python object is made per key. `stats` is not deleted from at all: it is swapped for an
empty map each poll (swapped.py). If the kernel refuses batch operations, the reader falls
back to get_next_key + lookup + delete per key (slow, but correct).

The dtypes below are the one Python description of the C structs in kvmtop.bpf.c.
"""

from __future__ import annotations

import ctypes as ct
import errno
import mmap

import numpy as np

STAT_KEY = np.dtype([("pid", "<u4"), ("tid", "<u4"), ("code", "<u4"), ("nr", "<u4"), ("kind", "u1"),
                     ("bucket", "u1"), ("flags", "u1"), ("pad", "u1")])
STAT_VAL = np.dtype([("count", "<u8"), ("sum_ns", "<u8"), ("min_ns", "<u8"), ("max_ns", "<u8")])
LOST_KEY = np.dtype([("pid", "<u4"), ("tid", "<u4"), ("code", "<u4"), ("kind", "u1"), ("epoch", "u1"),
                     ("pad", "u1", (2,))])
COUNT = np.dtype("<u8")
IO_KEY = np.dtype([("pid", "<u4"), ("tid", "<u4"), ("addr", "<u8"), ("space", "u1"), ("write", "u1"),
                   ("pad", "u1", (6,))])
TID = np.dtype("<u4")
INDEX = np.dtype("<u4")
INFO_VAL = np.dtype([("pid", "<u4"), ("vcpu_id", "<u4"), ("comm", "S16")])
PENDING_VAL = np.dtype([("exit_ns", "<u8"), ("us_ns", "<u8"), ("exit_code", "<u4"), ("us_code", "<u4"),
                        ("hc_nr", "<u4"), ("vcpu_id", "<u4"), ("pid", "<u4"), ("exit_kind", "u1"), ("has_hc", "u1"),
                        ("gone", "u1"), ("pad", "u1"), ("tid", "<u8"), ("req", "<u4", (64,))])

_BATCH_REFUSED = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.ENOSYS, 524}  # ENOTSUPP


def _lib():
    from bcc.libbcc import lib  # bcc only where maps are read

    return lib


def _err(res: int) -> int:
    return -res if res < 0 else ct.get_errno()


class HashReader:
    """Read (and optionally clear) one BPF hash map into numpy arrays.

    ``drain()`` returns (keys, values) of every entry and deletes them; ``read()`` leaves
    them. The kernel writes straight into the arrays returned: fresh ones each read, as big
    as the map can hold (memory that is never written is never used) and grown if the map
    holds more than ``max_entries``.
    """

    def __init__(self, fd: int, key_dtype: np.dtype, value_dtype: np.dtype, max_entries: int):
        self.fd = fd
        self.key_dtype, self.value_dtype = np.dtype(key_dtype), np.dtype(value_dtype)
        self.max_entries = max_entries
        self.batch_ok: bool | None = None  # None: not tried yet

    # ------------------------------------------------------------------ reading

    def drain(self) -> tuple[np.ndarray, np.ndarray]:
        return self._read(delete=True)

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        return self._read(delete=False)

    def _read(self, delete: bool) -> tuple[np.ndarray, np.ndarray]:
        if self.batch_ok is not False:
            got = self._read_batch(delete)
            if got is not None:
                self.batch_ok = True
                return got
            self.batch_ok = False
        return self._read_slow(delete)

    def _read_batch(self, delete: bool) -> tuple[np.ndarray, np.ndarray] | None:
        lib = _lib()
        op = lib.bpf_lookup_and_delete_batch if delete else lib.bpf_lookup_batch
        token = ct.c_uint32(0)
        keys = np.empty(max(64, self.max_entries), self.key_dtype)
        values = np.empty(len(keys), self.value_dtype)
        total = 0
        first = True
        while True:
            if total == len(keys):  # more entries than max_entries said
                keys, values = self._grown(keys, values)
            count = ct.c_uint32(len(keys) - total)
            res = op(self.fd, None if first else ct.byref(token), ct.byref(token),
                     ct.c_void_p(keys[total:].ctypes.data), ct.c_void_p(values[total:].ctypes.data),
                     ct.byref(count))
            err = _err(res) if res != 0 else 0
            n = count.value
            total += n
            if err == errno.ENOENT:  # no more entries
                break
            if err == errno.ENOSPC and n == 0:  # a hash bucket holds more than the space left
                keys, values = self._grown(keys, values)
                continue
            if err:
                if first and err in _BATCH_REFUSED:
                    return None
                raise OSError(err, f"BPF map batch {'lookup_and_delete' if delete else 'lookup'}: "
                                   f"{errno.errorcode.get(err, err)}")
            first = False
            if not delete and n == 0:
                break
        return keys[:total], values[:total]

    @staticmethod
    def _grown(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return (np.concatenate((keys, np.empty(len(keys), keys.dtype))),
                np.concatenate((values, np.empty(len(values), values.dtype))))

    def _read_slow(self, delete: bool) -> tuple[np.ndarray, np.ndarray]:
        """get_next_key + lookup (+ delete) per key: the fallback when batches are refused."""
        lib = _lib()
        keys = self.keys()
        values = np.zeros(len(keys), self.value_dtype)
        vbuf = np.zeros(1, self.value_dtype)
        kept = np.ones(len(keys), bool)
        for i in range(len(keys)):
            kp = ct.c_void_p(keys[i:i + 1].ctypes.data)
            if lib.bpf_lookup_elem(self.fd, kp, ct.c_void_p(vbuf.ctypes.data)) != 0:
                kept[i] = False  # deleted meanwhile
                continue
            values[i] = vbuf[0]
            if delete:
                lib.bpf_delete_elem(self.fd, kp)
        return keys[kept], values[kept]

    def keys(self) -> np.ndarray:
        """Every key (get_next_key walk)."""
        lib = _lib()
        out: list[np.ndarray] = []
        cur = np.zeros(1, self.key_dtype)
        nxt = np.zeros(1, self.key_dtype)
        prev = None
        while len(out) <= self.max_entries:
            res = lib.bpf_get_next_key(self.fd, prev, ct.c_void_p(nxt.ctypes.data))
            if res != 0:
                break
            out.append(nxt[0].copy())
            cur[0] = nxt[0]
            prev = ct.c_void_p(cur.ctypes.data)
        return np.array(out, self.key_dtype) if out else np.zeros(0, self.key_dtype)

    # ------------------------------------------------------------------ writing

    def delete(self, keys: np.ndarray) -> None:
        """Delete these keys, in batches (missing ones are ignored: the batch stops at one, and
        the rest goes one by one)."""
        lib = _lib()
        keys = np.ascontiguousarray(keys, self.key_dtype)
        done = 0
        if len(keys) > 1:
            count = ct.c_uint32(len(keys))
            if lib.bpf_delete_batch(self.fd, ct.c_void_p(keys.ctypes.data), ct.byref(count)) == 0:
                return
            done = count.value
        for i in range(done, len(keys)):
            lib.bpf_delete_elem(self.fd, ct.c_void_p(keys[i:i + 1].ctypes.data))

    def drain_epoch(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """``drain()`` of the entries whose key's ``epoch`` is ``epoch`` (the half of the map the
        BPF program no longer writes: see kvmtop.bpf.c); the other half stays."""
        keys, values = self.read()
        mine = keys["epoch"] == epoch
        keys, values = keys[mine], values[mine]
        self.delete(keys)
        return keys, values

    def update(self, keys: np.ndarray, values: np.ndarray) -> int:
        """Insert or overwrite entries in one batch (fallback: one by one); returns how many."""
        lib = _lib()
        keys = np.ascontiguousarray(keys, self.key_dtype)
        values = np.ascontiguousarray(values, self.value_dtype)
        if not len(keys):
            return 0
        count = ct.c_uint32(len(keys))
        res = lib.bpf_update_batch(self.fd, ct.c_void_p(keys.ctypes.data),
                                   ct.c_void_p(values.ctypes.data), ct.byref(count))
        if res == 0:
            return count.value
        done = count.value
        for i in range(done, len(keys)):
            if lib.bpf_update_elem(self.fd, ct.c_void_p(keys[i:i + 1].ctypes.data),
                                   ct.c_void_p(values[i:i + 1].ctypes.data), 0) != 0:
                break
            done += 1
        return done

    def clear(self) -> None:
        self.drain()


class ArrayView:
    """A BPF_F_MMAPABLE array map, read and written through shared memory: ``read()`` gives
    a live numpy view of every entry (no system call, no copy; each aligned field reads
    whole, but a row may mix two updates), ``update()`` writes entries in place."""

    def __init__(self, fd: int, key_dtype: np.dtype, value_dtype: np.dtype, max_entries: int):
        self.value_dtype = np.dtype(value_dtype)
        size = -(-max_entries * self.value_dtype.itemsize // mmap.PAGESIZE) * mmap.PAGESIZE
        self._mm: mmap.mmap | None = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.rows = np.frombuffer(self._mm, self.value_dtype, count=max_entries)
        self.index = np.arange(max_entries, dtype=np.dtype(key_dtype))

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        return self.index, self.rows

    def update(self, keys: np.ndarray, values: np.ndarray, last: str | None = None) -> int:
        """Write ``values`` at ``keys``, field by field, the field ``last`` last (a BPF
        program that claims an entry when that field is 0 then sees the rest written)."""
        names = [n for n in self.value_dtype.names or () if n != last] + ([last] if last else [])
        for name in names:
            self.rows[name][keys] = values[name]
        return len(keys)

    def close(self) -> None:
        mm, self._mm = self._mm, None
        self.rows = np.zeros(0, self.value_dtype)
        if mm is not None:
            mm.close()


LAYOUT = {
    "stats": (STAT_KEY, STAT_VAL),
    "lost": (LOST_KEY, COUNT),
    "slots": (INDEX, PENDING_VAL),
    "pending": (TID, PENDING_VAL),
    "info": (TID, INFO_VAL),
}


def check_io_layout(program) -> None:
    """ValueError unless IO_KEY matches the compiled struct io_key (HAVE_IO builds)."""
    table = program.table("io")
    got = (ct.sizeof(table.Key), ct.sizeof(table.Leaf))
    if got != (IO_KEY.itemsize, COUNT.itemsize):
        raise ValueError(f"BPF map io: key/value sizes {got} do not match the reader's "
                         f"({IO_KEY.itemsize}, {COUNT.itemsize})")


def check_layout(program) -> None:
    """ValueError unless the dtypes above match the compiled structs (sizes, as BCC sees them)."""
    for name, (key, value) in LAYOUT.items():
        table = program.table("stats_template" if name == "stats" and program.stats is not None else name)
        got = (ct.sizeof(table.Key), ct.sizeof(table.Leaf))
        if got != (key.itemsize, value.itemsize):
            raise ValueError(f"BPF map {name}: key/value sizes {got} do not match the reader's "
                             f"({key.itemsize}, {value.itemsize})")
