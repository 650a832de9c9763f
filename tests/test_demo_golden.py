"""The demo's numbers never change by accident: screenshots and golden files depend on them.

Each case runs a DemoSource for a few hundred intervals and hashes everything an interval
carries (time, status, guest identities, every StatColumns array with its dtype, the key
table, the histogram pool). tests/data/demo_intervals.json holds the digests made by the
demo before its speed-ups; a running digest is kept at a few checkpoints, so a failure says
where the intervals first differ. Rewrite the file only for a change of the demo's numbers
that is meant, with ``python tests/test_demo_golden.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from unittest import mock

import pytest

from kvmtop.columns import StatColumns
from kvmtop.model import Interval
from kvmtop.sources import demo_columns
from kvmtop.sources.demo import DemoSource

DATA = Path(__file__).parent / "data" / "demo_intervals.json"
CHECKPOINTS = (1, 2, 10, 50, 100, 200, 300)

# name -> (DemoSource arguments, intervals, MAX_BLOCKS of the template store or None)
CASES: dict[str, tuple[dict, int, int | None]] = {
    "50x4": ({"vms": 50, "vcpus": 4}, 300, None),
    "default6": ({}, 300, None),
    "churn": ({"seed": 7, "vms": 12, "churn": 5}, 300, None),
    "no_exits": ({"seed": 2, "vms": 9, "max_vcpus": 4, "exits": False, "churn": 3}, 200, None),
    "scaled_2s": ({"seed": 5, "vms": 7, "interval_s": 2.0, "scale": 3.0, "vcpus": 3}, 100, None),
    "restarts": ({"seed": 1, "vms": 10, "churn": 4}, 100, 80),  # a fresh template store every few intervals
    "no_guests": ({"vms": 0}, 3, None),
    "one_vcpu": ({"seed": 9, "vms": 1, "vcpus": 1, "churn": 7}, 50, None),
}


POOL = ("hoff", "bidx", "bcnt")  # the histogram pool: append-only until the demo starts a fresh one


def _hash_array(h, name: str, a) -> None:
    h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
    h.update(a.tobytes())


class _Digest:
    """A running sha256 of intervals: everything an interval carries (arrays with dtype and shape).

    The pool arrays grow by thousands of entries and hold the earlier intervals' too: each
    interval adds what is new since the one before (all of it after a fresh start), and each
    checkpoint the whole pool.
    """

    def __init__(self):
        self.h = hashlib.sha256()
        self.pool_len = dict.fromkeys(POOL, 0)
        self.last: StatColumns | None = None

    def add(self, iv: Interval) -> None:
        h = self.h
        h.update(repr((iv.time, iv.interval_s, iv.kernel, iv.status, list(iv.vms.items()))).encode())
        cols = iv.columns
        h.update(repr(cols.keys.tuples()).encode())
        for name in cols.__slots__:
            a = getattr(cols, name)
            if name in POOL:
                start = self.pool_len[name] if len(a) >= self.pool_len[name] else 0
                _hash_array(h, name, a[start:])
                self.pool_len[name] = len(a)
            elif name != "keys":
                _hash_array(h, name, a)
        self.last = cols

    def checkpoint(self) -> str:
        assert self.last is not None
        for name in POOL:
            _hash_array(self.h, name, getattr(self.last, name))
        return self.h.hexdigest()


def digests(args: dict, n: int, max_blocks: int | None) -> dict[str, str]:
    """The running digest of the first k intervals, at each checkpoint k <= n."""
    limit = max_blocks if max_blocks is not None else demo_columns.MAX_BLOCKS
    out = {}
    d = _Digest()
    with mock.patch.object(demo_columns, "MAX_BLOCKS", limit):
        src = DemoSource(**args)
        for k in range(1, n + 1):
            d.add(src.next_interval())
            if k in CHECKPOINTS or k == n:
                out[str(k)] = d.checkpoint()
    return out


@pytest.mark.parametrize("case", sorted(CASES))
def test_demo_intervals_match_the_recorded_digests(case):
    expected = json.loads(DATA.read_text())[case]
    got = digests(*CASES[case])
    first_bad = next((k for k in expected if got.get(k) != expected[k]), None)
    assert first_bad is None, f"{case}: the intervals differ from the recording by interval {first_bad}"


def test_the_digest_sees_a_changed_number():
    args, n, max_blocks = CASES["default6"]
    iv = DemoSource(**args).next_interval()
    seen = set()
    for name in ("count", "bcnt"):  # a row's and a pool entry's
        d = _Digest()
        d.add(iv)
        seen.add(d.checkpoint())
        cols = iv.columns
        a = getattr(cols, name).copy()
        a[-1] += 1
        setattr(cols, name, a)
    d = _Digest()
    d.add(iv)
    seen.add(d.checkpoint())
    assert len(seen) == 3


def test_the_restarts_case_does_restart():
    """The lowered limit really makes fresh template stores (the digests cover that path)."""
    args, n, max_blocks = CASES["restarts"]
    fresh, pool = 0, 0
    with mock.patch.object(demo_columns, "MAX_BLOCKS", max_blocks):
        src = DemoSource(**args)
        for _ in range(n):
            size = len(src.next_interval().columns.hoff)  # the histogram pool only grows within a store
            fresh += size < pool
            pool = size
    assert fresh >= 2


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    DATA.write_text(json.dumps({case: digests(*spec) for case, spec in sorted(CASES.items())}, indent=1) + "\n")
    print(f"wrote {DATA}")
