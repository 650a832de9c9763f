"""The request-bit deltas of many threads at once give what one thread at a time gave: per
thread, each bit's count since the previous read (u32 counts that wrap), threads in row
order and bits ascending, forgotten with their thread and re-based by reset."""

from __future__ import annotations

import numpy as np
from fake_maps import FakeReader
from test_collector_live import _drained

from kvmtop.bpf import maps
from kvmtop.bpf.program import KIND_REQUEST
from kvmtop.model import InFlight
from kvmtop.sources.collector import columns_from_drained
from kvmtop.sources.pairing_state import PairingState, Requests


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
    ps = PairingState(FakeReader(slots), FakeReader(pending, keyed_by_tid=True))
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


def test_columns_are_the_same_from_request_rows_as_from_dicts():
    """The poll hands the request bits to columns_from_drained as rows (Requests), not dicts:
    the same columns, in the same order, with and without request bits a full map lost."""
    sk, sv, lk, lv, _ = _drained()
    requests = {(2, 21): {3: 5, 9: 2}, (3, 31): {40: 1}, (1, 11): {0: 4, 63: 2**32 - 1}}
    rows = Requests.of(requests)
    assert rows.as_dict() == requests and list(rows.as_dict()) == list(requests)
    flying = {(1, 11): InFlight(6, 2 * 10**9), (5, 51): InFlight(2, 10**9)}
    for lost in (slice(None), slice(0, 2)):  # with lost request bits (of 2:21 and of 3:31), without
        by_dict = columns_from_drained(sk, sv, lk[lost], lv[lost], requests, flying)
        by_rows = columns_from_drained(sk, sv, lk[lost], lv[lost], rows, flying)
        assert by_dict.equals(by_rows)
        threads = list(zip(by_rows.tpid.tolist(), by_rows.ttid.tolist()))
        got = [(*threads[t], b, n, m) for t, b, n, m in zip(by_rows.qthread.tolist(), by_rows.qbit.tolist(),
                                                              by_rows.qcount.tolist(), by_rows.qlost.tolist())]
        assert got == one_thread_at_a_time(requests, lk[lost], lv[lost])


def one_thread_at_a_time(requests, lost_keys, lost_counts) -> list[tuple[int, int, int, int, int]]:
    """The request rows as columns_from_drained built them from dicts: (pid, tid, bit, count, lost)."""
    req_lost: dict = {}
    for p, t, k, c, n in zip(lost_keys["pid"].tolist(), lost_keys["tid"].tolist(), lost_keys["kind"].tolist(),
                             lost_keys["code"].tolist(), lost_counts.tolist()):
        if k == KIND_REQUEST:
            req_lost.setdefault((p, t), {})[c] = req_lost.get((p, t), {}).get(c, 0) + n
    q = []
    for (p, t) in dict.fromkeys([*requests, *req_lost]):
        bits, lost = requests.get((p, t), {}), req_lost.get((p, t), {})
        q += [(p, t, bit, bits.get(bit, 0), lost.get(bit, 0)) for bit in {**dict.fromkeys(lost, 0), **bits}]
    return q
