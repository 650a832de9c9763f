"""The request-bit deltas of many threads at once give what one thread at a time gave: per
thread, each bit's count since the previous read (u32 counts that wrap), threads in row
order and bits ascending, forgotten with their thread and re-based by reset."""

from __future__ import annotations

import numpy as np

from kvmtop.bpf import maps
from kvmtop.sources.pairing_state import PairingState


class Rows:
    """A `slots` array or `pending` hash stand-in over a numpy array."""

    def __init__(self, rows: np.ndarray, keyed_by_tid: bool = False):
        self.rows, self.keyed = rows, keyed_by_tid

    def read(self):
        keys = self.rows["tid"].astype(maps.TID) if self.keyed else np.arange(len(self.rows), dtype=maps.INDEX)
        return keys, self.rows.copy()

    def update(self, keys, values, last=None):
        self.rows[keys] = values
        return len(keys)

    def delete(self, keys):
        self.rows = self.rows[~np.isin(self.rows["tid"], keys.astype(np.uint64))]


class OneByOne:
    """The deltas as they were computed before: a dict of each tid's last counts, one thread at a time."""

    def __init__(self):
        self.seen: dict[int, np.ndarray] = {}

    def deltas(self, rows: np.ndarray) -> dict:
        out = {}
        for row in rows:
            now = row["req"]
            if not now.any():
                continue
            tid = int(row["tid"])
            before = self.seen.get(tid)
            delta = now - before if before is not None else now
            self.seen[tid] = now.copy()
            bits = np.flatnonzero(delta)
            if len(bits):
                out[(int(row["pid"]), tid)] = dict(zip(bits.tolist(), delta[bits].tolist()))
        return out


def test_many_threads_deltas_match_one_thread_at_a_time_across_wraps_forgets_and_resets():
    rng = np.random.default_rng(7)
    slots = np.zeros(64, maps.PENDING_VAL)
    slots["tid"][:40] = rng.permutation(np.arange(1000, 1040))  # slot order is not tid order
    slots["pid"][:40] = 1 + slots["tid"][:40] % 3
    pending = np.zeros(20, maps.PENDING_VAL)
    pending["tid"], pending["pid"] = np.arange(5000, 5020), 9
    ps = PairingState(Rows(slots), Rows(pending, keyed_by_tid=True))
    ref = OneByOne()
    wrapped = False
    for step in range(40):
        for r in (ps.slots, ps.pending):
            owned = np.flatnonzero(r.rows["tid"] != 0)
            hit = rng.choice(owned, size=len(owned) // 2, replace=False)
            bits = rng.integers(0, 64, size=len(hit))
            before = r.rows["req"][hit, bits]
            r.rows["req"][hit, bits] += rng.integers(1, 2**31, size=len(hit)).astype(np.uint32)
            wrapped |= bool((r.rows["req"][hit, bits] < before).any())
        if step == 10:  # threads forgotten by user space (gone while detached): counted from zero again
            ps.forget([1003, 5007])
            for tid in (1003, 5007):
                ref.seen.pop(tid, None)
        rows = np.concatenate([r.read()[1] for r in (ps.slots, ps.pending)])
        rows = rows[rows["tid"] != 0]
        if step == 25:  # reset: counting starts again from what the maps hold now
            ps.reset()
            ref.seen = {int(t): r.copy() for t, r in zip(rows["tid"].tolist(), rows["req"])}
            continue
        got = ps.poll(0)[1]
        want = ref.deltas(rows)
        assert got == want, step
        assert list(got) == list(want) and all(list(got[k]) == list(want[k]) for k in got)  # same order
        assert got or step == 0
    assert wrapped  # counts wrapped on the way
