"""The BPF program's per-thread pairing state, read once per interval.

Each vCPU thread's state (in the `slots` array, or in the `pending` hash when its slot is
taken) holds what it has in flight and its request-bit counts since its first event
(cumulative u32, so they may wrap). One read gives what every thread has in flight at the
end of the interval and, as differences from the previous read, the request bits of the
interval. A thread that exited is marked gone by the BPF program: its last counts are read
on two polls (the second sees everything the thread did before it went), then its state is
freed here: a slot is zeroed (free for the next thread), a hash entry deleted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..bpf import maps
from ..model import InFlight

Key = tuple[int, int]  # (pid, tid)


@dataclass(frozen=True)
class Requests:
    """The request bits of an interval, one row per (thread, bit) that counted exits: a thread's
    rows together, threads in the order the pairing state holds them, bits ascending."""

    pid: np.ndarray
    tid: np.ndarray
    bit: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, requests: dict[Key, dict[int, int]]) -> Requests:
        """From per-thread dicts (in their order)."""
        rows = [(p, t, b, n) for (p, t), bits in requests.items() for b, n in bits.items()]
        a = np.array(rows, np.uint64).reshape(-1, 4)
        return cls(a[:, 0], a[:, 1], a[:, 2], a[:, 3])

    def as_dict(self) -> dict[Key, dict[int, int]]:
        out: dict[Key, dict[int, int]] = {}
        for p, t, b, n in zip(self.pid.tolist(), self.tid.tolist(), self.bit.tolist(), self.count.tolist()):
            bits = out.get((p, t))
            if bits is None:
                bits = out[(p, t)] = {}
            bits[b] = n
        return out


class PairingState:
    def __init__(self, slots, pending: maps.HashReader):
        """``slots``: a maps.ArrayView of the `slots` array (or any reader with ``read()`` and
        ``update(keys, values, last)``); ``pending``: a maps.HashReader."""
        self.slots, self.pending = slots, pending
        self._seen = _Counts()                  # each tid's request counts at its last read
        self._gone: set[int] = set()            # tids seen gone at the previous read

    def poll(self, now_ns: int) -> tuple[dict[Key, InFlight], dict[Key, dict[int, int]]]:
        """``poll_columns`` with the request bits as dicts, per thread."""
        in_flight, requests = self.poll_columns(now_ns)
        return in_flight, requests.as_dict()

    def poll_columns(self, now_ns: int) -> tuple[dict[Key, InFlight], Requests]:
        """(what each thread has in flight at ``now_ns``, request bits per thread since the last poll).
        ``now_ns`` is CLOCK_MONOTONIC, as the BPF program's timestamps."""
        idx, slot_rows = self.slots.read()
        tids, hash_rows = self.pending.read()
        owned = slot_rows["tid"] != 0
        rows = np.concatenate((slot_rows[owned], hash_rows))
        flying = rows[(rows["us_ns"] != 0) & (rows["gone"] == 0)]
        in_flight = {(pid, tid): InFlight(code, max(0, now_ns - t0))
                     for pid, tid, code, t0 in zip(flying["pid"].tolist(), flying["tid"].tolist(),
                                                   flying["us_code"].tolist(), flying["us_ns"].tolist())}
        requests = self._request_deltas(rows)
        gone = set(rows["tid"][rows["gone"] != 0].tolist())
        self._free(gone & self._gone, idx[owned], slot_rows[owned])
        self._gone = gone - self._gone
        return in_flight, requests

    def _request_deltas(self, rows: np.ndarray) -> Requests:
        counts = rows["req"]
        active = np.flatnonzero(counts.any(axis=1))
        tids, now = rows["tid"][active].astype(np.uint64), counts[active]
        delta = now - self._seen.get(tids)  # u32: differences wrap as the counts do
        self._seen.put(tids, now)
        row, bit = np.nonzero(delta)  # by row, then bit
        return Requests(rows["pid"][active][row].astype(np.uint64), tids[row], bit.astype(np.uint64),
                        delta[row, bit].astype(np.uint64))

    def _free(self, tids: set[int], slot_idx: np.ndarray, slot_rows: np.ndarray) -> None:
        """Free the state of threads gone on two reads in a row."""
        if not tids:
            return
        arr = np.array(sorted(tids), np.uint64)
        in_slot = np.isin(slot_rows["tid"], arr) & (slot_rows["gone"] != 0)
        if in_slot.any():  # tid last: the BPF program claims a slot whose tid is 0
            self.slots.update(slot_idx[in_slot], np.zeros(int(in_slot.sum()), maps.PENDING_VAL), last="tid")
        self.pending.delete(arr.astype(maps.TID))  # those in a slot are not there: ignored
        self._seen.drop(arr)

    def forget(self, tids) -> None:
        """Free the state of these threads now (they are gone and were never marked: e.g. they
        exited while the probes were detached)."""
        arr = np.unique(np.array(list(tids), np.uint64))
        if not len(arr):
            return
        idx, rows = self.slots.read()
        mine = np.isin(rows["tid"], arr) & (rows["tid"] != 0)
        if mine.any():
            self.slots.update(idx[mine], np.zeros(int(mine.sum()), maps.PENDING_VAL), last="tid")
        self.pending.delete(arr.astype(maps.TID))
        self._seen.drop(arr)
        self._gone.difference_update(arr.tolist())

    def reset(self) -> None:
        """Counting starts again from the next poll (the state itself stays: it is in flight)."""
        _, slot_rows = self.slots.read()
        _, hash_rows = self.pending.read()
        rows = np.concatenate((slot_rows[slot_rows["tid"] != 0], hash_rows))
        self._seen = _Counts()
        self._seen.put(rows["tid"].astype(np.uint64), rows["req"])


class _Counts:
    """Request counts per tid (tids sorted, one row of 64 counts each): looked up, stored and
    dropped for many tids at once."""

    def __init__(self):
        self.tids = np.zeros(0, np.uint64)
        self.req = np.zeros((0, 64), np.uint32)

    def _find(self, tids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        at = np.searchsorted(self.tids, tids)
        found = at < len(self.tids)
        found[found] = self.tids[at[found]] == tids[found]
        return at, found

    def get(self, tids: np.ndarray) -> np.ndarray:
        """The counts of ``tids`` (0 for a tid never stored)."""
        out = np.zeros((len(tids), 64), np.uint32)
        at, found = self._find(tids)
        out[found] = self.req[at[found]]
        return out

    def put(self, tids: np.ndarray, req: np.ndarray) -> None:
        keep = ~np.isin(self.tids, tids)
        all_tids = np.concatenate((self.tids[keep], tids))
        order = np.argsort(all_tids, kind="stable")
        self.tids, self.req = all_tids[order], np.concatenate((self.req[keep], req))[order]

    def drop(self, tids: np.ndarray) -> None:
        keep = ~np.isin(self.tids, np.asarray(tids, np.uint64))
        self.tids, self.req = self.tids[keep], self.req[keep]
