"""Columnar snapshots show what the object builder showed, byte for byte.

``tests/data/snapshots`` holds recordings of varied intervals and what the builder before
the columnar one (commit 9ebefa8) made of each: ``kvmtop.snapshot/1`` JSON (plain and
filtered), text, CSV, the history series a screen draws and the figures tables read
(make_golden.py wrote them). The recordings are replayed through today's builder, and
what it shows must be the same.
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import pytest

from kvmtop.offline.recording_reader import read_recording

DATA = Path(__file__).resolve().parent / "data" / "snapshots"
_spec = importlib.util.spec_from_file_location("make_golden", DATA / "make_golden.py")
assert _spec is not None and _spec.loader is not None
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)


@pytest.mark.parametrize("name", ["random0", "random1", "random2", "demo", "demo_no_exits"])
def test_snapshots_show_what_they_showed(name):
    _, intervals, warning = read_recording(str(DATA / f"{name}.kvmrec"))
    assert warning is None and intervals
    with gzip.open(DATA / f"{name}.expected.gz", "rt", encoding="utf-8") as f:
        expected = f.read().splitlines()
    got = golden.shown(intervals)
    assert len(got) == len(expected)
    for i, (a, b) in enumerate(zip(got, expected)):
        assert a == b, f"{name}, line {i + 1} differs"


def test_the_recordings_are_what_the_generator_makes():
    """The demo source still makes the intervals it made (columns, same numbers)."""
    cases = golden.cases()
    for name in ("demo", "demo_no_exits"):
        _, recorded, _ = read_recording(str(DATA / f"{name}.kvmrec"))
        assert recorded == cases[name], name
