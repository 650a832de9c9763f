"""How big kvmtop's BPF maps are, what that costs in kernel memory, and what is too big.

``--max-keys N`` is the number of (VM, vCPU, reason) keys one interval can hold; the maps
that hold per-key rows grow with it, the per-thread ones are bounded by any host's thread
count. Hash maps are made with BPF_F_NO_PREALLOC: the kernel allocates their bucket array
when the program loads and an element per entry as entries appear, so a size costs one
amount at once and more as the maps fill. A size whose maps would not fit comfortably in
MemAvailable when full is refused before anything is loaded (a bigger map only gets
"could not open bpf map" from the kernel after pushing other processes out of memory).

`stats` is two hash maps in an array of maps (swapped.py) and a one-entry template that only
gives their shape: two bucket arrays when loaded. Full: the map being written, the empty one in the other
slot, and, from each poll's read until the kernel has freed it, the map the poll read.

The estimates follow the kernel's own layout (struct htab_elem, its bucket array and the
bpf_mem_alloc size classes), the same arithmetic the kernel reports as a map's
``memlock`` in /proc/PID/fdinfo.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SourceError

DEFAULT_MAX_KEYS = 16384
HIST_FACTOR = 8            # `stats` rows per key: one per latency bucket a key's events fall in
MIN_THREAD_KEYS = 1024     # per-thread maps (pairing state, thread info, cut rows): at least ...
MAX_THREAD_KEYS = 65536    # ... and at most this many threads, whatever --max-keys says
MEMORY_SHARE = 0.5         # a size must fit in this share of MemAvailable, all maps full

# key and value bytes of each map (kvmtop.bpf.c; maps.py checks them against the compiled program)
STAT_KEY, STAT_VAL = 20, 32
LOST_KEY = 16
IO_KEY = 24
PENDING_VAL = 304
INFO_VAL = 24
COUNT, TID = 8, 4

_HTAB_ELEM = 48            # struct htab_elem before its key (lru_node included)
_BUCKET = 16               # struct bucket: hlist_nulls_head + raw_spinlock_t
_SIZE_CLASSES = (8, 16, 32, 64, 96, 128, 192, 256, 512, 1024, 2048, 4096)  # bpf_mem_alloc caches


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p *= 2
    return p


def _r8(n: int) -> int:
    return (n + 7) // 8 * 8


def _alloc(n: int) -> int:
    """Bytes the kernel's allocator really takes for an object of n bytes."""
    return next((c for c in _SIZE_CLASSES if c >= n), _pow2(n))


def _elem(key: int, value: int) -> int:
    return _HTAB_ELEM + _r8(key) + _r8(value)


def hash_bytes(entries: int, key: int, value: int, full: bool) -> int:
    """A BPF_F_NO_PREALLOC hash: its bucket array, plus every element when ``full``."""
    return _pow2(entries) * _BUCKET + (entries * _alloc(_elem(key, value)) if full else 0)


def prealloc_bytes(entries: int, key: int, value: int) -> int:
    """A preallocated hash (an LRU hash): bucket array and every element, from the start."""
    return _pow2(entries) * _BUCKET + entries * _elem(key, value)


@dataclass(frozen=True)
class MapSizes:
    """Entries of each BPF map (kvmtop.bpf.c's cflags)."""

    max_keys: int       # MAX_KEYS: what --max-keys said
    hist_keys: int      # HIST_KEYS: `stats` rows (key x latency bucket)
    pending_keys: int   # PENDING_KEYS: `pending` and `info` (threads)
    lost_keys: int      # LOST_KEYS: `lost` (rows that lost events)
    slots: int          # SLOTS: the `slots` array of pairing state (a power of two)
    io_keys: int = 0    # IO_KEYS: `io` (the I/O panel's thread x port/address rows); 0: max_keys

    @classmethod
    def for_max_keys(cls, max_keys: int = DEFAULT_MAX_KEYS, hist_keys: int | None = None,
                     pending_keys: int | None = None, lost_keys: int | None = None) -> MapSizes:
        """The sizes for ``--max-keys``; tests may set single maps smaller."""
        if max_keys < 1:
            raise SourceError(f"--max-keys must be at least 1 (got {max_keys})")
        threads = min(max(max_keys, MIN_THREAD_KEYS), MAX_THREAD_KEYS)
        pending = pending_keys or threads
        return cls(max_keys=max_keys, hist_keys=hist_keys or max_keys * HIST_FACTOR, pending_keys=pending,
                   lost_keys=lost_keys or threads, slots=_pow2(min(max(pending, MIN_THREAD_KEYS), MAX_THREAD_KEYS)),
                   io_keys=max_keys)

    def cflags(self) -> list[str]:
        return [f"-DMAX_KEYS={self.max_keys}", f"-DHIST_KEYS={self.hist_keys}", f"-DPENDING_KEYS={self.pending_keys}",
                f"-DLOST_KEYS={self.lost_keys}", f"-DSLOTS={self.slots}", f"-DIO_KEYS={self.io_keys or self.max_keys}"]

    def kernel_bytes(self, full: bool, io: bool = True) -> int:
        """Kernel memory of all the maps: when loaded (``full`` False) or with every map full
        (``io``: with the I/O panel's map, which hosts with kvm_pio and kvm_mmio have)."""
        empty = hash_bytes(self.hist_keys, STAT_KEY, STAT_VAL, False)  # a slot's map when loaded
        template = hash_bytes(1, STAT_KEY, STAT_VAL, False)
        stats = template + (empty + 2 * hash_bytes(self.hist_keys, STAT_KEY, STAT_VAL, True) if full else 2 * empty)
        return ((hash_bytes(self.io_keys or self.max_keys, IO_KEY, COUNT, full) if io else 0)
                + stats
                + hash_bytes(self.lost_keys, LOST_KEY, COUNT, full)
                + hash_bytes(self.pending_keys, TID, PENDING_VAL, full)
                + prealloc_bytes(self.pending_keys, TID, INFO_VAL)
                + self.slots * PENDING_VAL)


def mem_available(path: str = "/proc/meminfo") -> int | None:
    """MemAvailable in bytes (None where the kernel does not say)."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # not reached


def cost_line(sizes: MapSizes) -> str:
    """One line: what this size costs in kernel memory."""
    return (f"--max-keys {sizes.max_keys}: the BPF maps take {human(sizes.kernel_bytes(False))} of kernel memory "
            f"when loaded, up to {human(sizes.kernel_bytes(True))} when full")


def check(sizes: MapSizes, available: int | None = None) -> None:
    """SourceError (one line) unless the maps, full, fit in MEMORY_SHARE of MemAvailable."""
    available = mem_available() if available is None else available
    if available is None:
        return
    need = sizes.kernel_bytes(True)
    if need > available * MEMORY_SHARE:
        fits = largest_max_keys(available)
        raise SourceError(f"{cost_line(sizes)}, more than {MEMORY_SHARE:.0%} of MemAvailable "
                          f"({human(available)}): use --max-keys {fits} or less")


def largest_max_keys(available: int) -> int:
    """The largest --max-keys whose maps, full, fit in MEMORY_SHARE of ``available``."""
    lo, hi = 1, 1 << 40
    if MapSizes.for_max_keys(lo).kernel_bytes(True) > available * MEMORY_SHARE:
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if MapSizes.for_max_keys(mid).kernel_bytes(True) <= available * MEMORY_SHARE:
            lo = mid
        else:
            hi = mid - 1
    return lo
