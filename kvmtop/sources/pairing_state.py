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

import numpy as np

from ..bpf import maps
from ..model import InFlight

Key = tuple[int, int]  # (pid, tid)


class PairingState:
    def __init__(self, slots, pending: maps.HashReader):
        """``slots``: a maps.ArrayView of the `slots` array (or any reader with ``read()`` and
        ``update(keys, values, last)``); ``pending``: a maps.HashReader."""
        self.slots, self.pending = slots, pending
        self._seen: dict[int, np.ndarray] = {}  # tid -> the request counts at the previous read
        self._gone: set[int] = set()            # tids seen gone at the previous read

    def poll(self, now_ns: int) -> tuple[dict[Key, InFlight], dict[Key, dict[int, int]]]:
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

    def _request_deltas(self, rows: np.ndarray) -> dict[Key, dict[int, int]]:
        out: dict[Key, dict[int, int]] = {}
        seen = self._seen
        counts = rows["req"]
        active = np.flatnonzero(counts.any(axis=1))
        for i in active.tolist():
            tid = int(rows["tid"][i])
            now = counts[i]
            before = seen.get(tid)
            delta = now - before if before is not None else now  # u32: differences wrap as the counts do
            seen[tid] = now.copy()
            bits = np.flatnonzero(delta)
            if len(bits):
                out[(int(rows["pid"][i]), tid)] = dict(zip(bits.tolist(), delta[bits].tolist()))
        return out

    def _free(self, tids: set[int], slot_idx: np.ndarray, slot_rows: np.ndarray) -> None:
        """Free the state of threads gone on two reads in a row."""
        if not tids:
            return
        arr = np.array(sorted(tids), np.uint64)
        in_slot = np.isin(slot_rows["tid"], arr) & (slot_rows["gone"] != 0)
        if in_slot.any():  # tid last: the BPF program claims a slot whose tid is 0
            self.slots.update(slot_idx[in_slot], np.zeros(int(in_slot.sum()), maps.PENDING_VAL), last="tid")
        self.pending.delete(arr.astype(maps.TID))  # those in a slot are not there: ignored
        for tid in tids:
            self._seen.pop(tid, None)

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
        for tid in arr.tolist():
            self._seen.pop(tid, None)
            self._gone.discard(tid)

    def reset(self) -> None:
        """Counting starts again from the next poll (the state itself stays: it is in flight)."""
        _, slot_rows = self.slots.read()
        _, hash_rows = self.pending.read()
        rows = np.concatenate((slot_rows[slot_rows["tid"] != 0], hash_rows))
        self._seen = {int(t): r.copy() for t, r in zip(rows["tid"].tolist(), rows["req"])}
