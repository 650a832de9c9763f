"""Every recorded interval is checked before it is used: types and bounds, as the writer makes them.

A recording is a file anyone can edit: a count that is a string, a pid that is a list or a
count of 10**40 would otherwise reach the snapshot builder and the screens. ``interval_problem``
says what is wrong with one decoded record (None: nothing), so the reader can skip it and
count it instead.
"""

from __future__ import annotations

import math
from typing import Any

from .. import histogram
from ..io_stats import MMIO, PIO

U32 = 2**32 - 1
U64 = 2**64 - 1
MAX_TEXT = 1 << 16  # characters of a name, comm or note
MAX_DT = 366 * 86400.0


_LIST, _TWO, _INT = {list}, {2}, {int}
IO_SPACES = (PIO, MMIO)


class Bad(ValueError):
    """One record is not what a recorder writes; the message says where."""


def _int(v: Any, where: str, hi: int = U64, lo: int = 0) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise Bad(f"{where}: {_show(v)} is not a whole number in {lo}..{hi}")
    return v


def _num(v: Any, where: str, lo: float = 0.0, hi: float = math.inf) -> None:
    if type(v) not in (int, float) or not math.isfinite(v) or not lo <= v <= hi:
        raise Bad(f"{where}: {_show(v)} is not a number in {lo:g}..{hi:g}")


def _text(v: Any, where: str) -> None:
    if type(v) is not str or len(v) > MAX_TEXT:
        raise Bad(f"{where}: not a text of at most {MAX_TEXT} characters")


def _list(v: Any, where: str, length: int | None = None) -> list:
    if type(v) is not list or (length is not None and len(v) != length):
        raise Bad(f"{where}: not a list" + (f" of {length}" if length is not None else ""))
    return v


def _dict(v: Any, where: str, keys: tuple[str, ...]) -> dict:
    if type(v) is not dict:
        raise Bad(f"{where}: not an object")
    missing = [k for k in keys if k not in v]
    if missing:
        raise Bad(f"{where}: no {missing[0]!r}")
    return v


def _show(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 24 else text[:21] + "..."


def _latency(v: Any, where: str) -> None:
    """[count, sum, min, max, [[bucket, count]...]] or 0. The hot loop of the checker: plain
    comparisons, a message built only when something is wrong."""
    if type(v) is int and v == 0:
        return
    if type(v) is not list or len(v) != 5:
        raise Bad(f"{where}: not a latency")
    count, total, lo, hi, buckets = v
    for x in (count, total, lo, hi):
        if type(x) is not int or not 0 <= x <= U64:
            raise Bad(f"{where}: {_show(x)} is not a whole number in 0..{U64}")
    if count and lo > hi:
        raise Bad(f"{where}: min {lo} above max {hi}")
    if type(buckets) is not list:
        raise Bad(f"{where}: buckets are not a list")
    if not buckets:
        if count:
            raise Bad(f"{where}: buckets hold 0, count says {count}")
        return
    # C-speed passes over the buckets (they are most of a record)
    if set(map(type, buckets)) != _LIST or set(map(len, buckets)) != _TWO:
        raise Bad(f"{where}: a bucket is not [index, count]")
    idx, cnt = zip(*buckets)
    if set(map(type, idx)) != _INT or set(map(type, cnt)) != _INT:
        raise Bad(f"{where}: a bucket holds something else than whole numbers")
    if min(idx) < 0 or max(idx) >= histogram.NBUCKETS or min(cnt) < 0 or max(cnt) > U64:
        raise Bad(f"{where}: a bucket index or count is out of bounds")
    if sum(cnt) != count:
        raise Bad(f"{where}: buckets hold {sum(cnt)}, count says {count}")


def _stats(rows: Any, where: str, keys: int, key_bounds: tuple[int, ...]) -> None:
    if type(rows) is not list:
        raise Bad(f"{where}: not a list")
    width = keys + 2  # + lost, when the row lost events to a full map
    for row in rows:
        if type(row) is not list or not width <= len(row) <= width + 1:
            raise Bad(f"{where}: a row is not a list of {width} or {width + 1}")
        for k, hi in zip(row, key_bounds):
            if type(k) is not int or not 0 <= k <= hi:
                raise Bad(f"{where}: key {_show(k)} is not a whole number in 0..{hi}")
        c = row[keys]
        if type(c) is not int or not 0 <= c <= U64:
            raise Bad(f"{where}: count {_show(c)} is not a whole number in 0..{U64}")
        _latency(row[keys + 1], where)
        if len(row) > width and (type(row[width]) is not int or not 0 <= row[width] <= U64):
            raise Bad(f"{where}: lost {_show(row[width])} is not a whole number in 0..{U64}")


def _thread(t: Any, where: str) -> None:
    _dict(t, where, ("pid", "tid", "vcpu_id", "r", "u", "h", "q"))
    _int(t["pid"], where + " pid", U32)
    _int(t["tid"], where + " tid", U32)
    if t["vcpu_id"] is not None:
        _int(t["vcpu_id"], where + " vcpu_id", U32)
    _stats(t["r"], where + " reasons", 2, (255, U32))
    _stats(t["u"], where + " userspace exits", 1, (U32,))
    _stats(t["h"], where + " hypercalls", 1, (U64,))
    for key in ("q", "ql"):  # request bits, and those a full map lost
        for q in _list(t.get(key, []), where + " requests"):
            bit, n = _list(q, where + " request", 2)
            _int(bit, where + " request bit", 63)
            _int(n, where + " request count")
    if t.get("iu") is not None:  # a userspace exit still in flight: [code, ns]
        code, ns = _list(t["iu"], where + " in_userspace", 2)
        _int(code, where + " in_userspace code", U32)
        _int(ns, where + " in_userspace ns")


def _vm(entry: Any, where: str) -> None:
    key, v = _list(entry, where, 2)
    _int(key, where + " key", U32)
    _dict(v, where, ("pid", "name", "start_time", "vcpu_index", "comms"))
    _int(v["pid"], where + " pid", U32)
    _text(v["name"], where + " name")
    _int(v["start_time"], where + " start_time")
    for pair in _list(v["vcpu_index"], where + " vcpu_index"):
        tid, idx = _list(pair, where + " vcpu_index", 2)
        _int(tid, where + " tid", U32)
        _int(idx, where + " vCPU index", U32)
    for pair in _list(v["comms"], where + " comms"):
        tid, comm = _list(pair, where + " comms", 2)
        _int(tid, where + " tid", U32)
        _text(comm, where + " comm")
    if type(v.get("exited", False)) is not bool:
        raise Bad(f"{where}: exited is not true or false")


def _status(s: Any) -> None:
    keys = ("drops", "unmatched_exits", "unmatched_entries", "poll_ms", "drops_by_map", "features", "notes")
    _dict(s, "status", keys)
    for k in ("drops", "unmatched_exits", "unmatched_entries"):
        _int(s[k], f"status {k}")
    _num(s["poll_ms"], "status poll_ms")
    for key in ("drops_by_map", "drops_by_kind"):
        for pair in _list(s.get(key, []), f"status {key}"):
            name, n = _list(pair, f"status {key}", 2)
            _text(name, f"status {key}")
            _int(n, f"status {key}")
    for pair in _list(s["features"], "status features"):
        name, on = _list(pair, "status features", 2)
        _text(name, "status features")
        if type(on) is not bool:
            raise Bad("status features: not true or false")
    for note in _list(s["notes"], "status notes"):
        _text(note, "status notes")


def _io(io: Any) -> None:
    """The record's PIO/MMIO sample: {"a": [[pid, tid, space, write, address, count]...], "drops"}."""
    _dict(io, "io", ("a",))
    for row in _list(io["a"], "io accesses"):
        pid, tid, space, write, addr, n = _list(row, "io access", 6)
        _int(pid, "io pid", U32)
        _int(tid, "io tid", U32)
        if space not in IO_SPACES:
            raise Bad(f"io: space {_show(space)} is not one of {', '.join(IO_SPACES)}")
        _int(write, "io write", 1)
        _int(addr, "io address")
        _int(n, "io count")
    _int(io.get("drops", 0), "io drops")


def interval_problem(obj: Any) -> str | None:
    """What makes ``obj`` (one decoded interval record) unusable, or None when it is sound."""
    try:
        _dict(obj, "record", ("t", "dt", "threads", "vms", "status"))
        _num(obj["t"], "t", -math.inf)
        _num(obj["dt"], "dt", 0.0, MAX_DT)
        if obj["dt"] <= 0:
            raise Bad("dt: not above 0")
        for i, t in enumerate(_list(obj["threads"], "threads")):
            _thread(t, f"thread {i + 1}")
        for i, v in enumerate(_list(obj["vms"], "vms")):
            _vm(v, f"vm {i + 1}")
        _status(obj["status"])
        if obj.get("kernel") is not None:
            _text(obj["kernel"], "kernel")
        if obj.get("io") is not None:
            _io(obj["io"])
    except Bad as exc:
        return str(exc)
    except (TypeError, ValueError) as exc:  # unpacking a wrong shape
        return f"malformed ({exc})"
    return None
