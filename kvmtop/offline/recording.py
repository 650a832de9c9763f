"""Recordings: the Interval stream of a session, written as it happens and read back for replay.

File format ``kvmtop.recording/1``: gzip-compressed JSON lines, each line (record) in a
gzip member of its own, written and flushed as it happens. The file is still one gzip
stream to ``zcat``; to kvmtop each member is a frame with its own CRC, so a recorder that
is killed leaves every finished record readable, and damage in the middle costs only the
records it touches (the reader skips to the next member). Files of earlier versions, one
member flushed with ``Z_SYNC_FLUSH`` after every line, read the same way. Lines:

1. the header: ``{"schema": "kvmtop.recording/1", ...meta}`` (meta: source, interval_s,
   started, host, kernel, kvmtop version — whatever the writer was given);
2. one record per Interval (``interval_to_json``): ``{"t": time, "dt": interval_s,
   "threads": [...], "vms": [...], "status": {...}, "kernel": ...}``;
   and, where the PIO/MMIO accesses were counted (``record --io``), ``"io": {"a": [[pid, tid,
   space, write, address, count]...], "drops": N}`` (``io_to_json``): readers that predate it
   ignore it, and a record without it replays as not counted;
3. on a clean close, ``{"end": N}`` with the number of intervals.

What is recorded is the Interval stream, not rendered snapshots: replay passes it through
a SnapshotBuilder again, which rebuilds identical snapshots, history included. Intervals
round-trip exactly (Stat, Latency with its buckets, VmIdentity with vcpu_index and comms,
CollectorStatus with features and notes, kernel). Readers skip record types they do not
know, so later versions can add some; a different schema major is refused.
"""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Mapping
from typing import IO, Any

from ..io_stats import IoAccess, IoSample
from ..model import (
    EMPTY_LATENCY,
    CollectorStatus,
    InFlight,
    Interval,
    Latency,
    Stat,
    ThreadInterval,
    VmIdentity,
)
from .datafile import open_data

SCHEMA = "kvmtop.recording/1"
SCHEMA_FAMILY = "kvmtop.recording/"
HEADER_PREFIX = b'{"schema": "' + SCHEMA_FAMILY.encode()
INTERVAL_PREFIX = b'{"t": '  # how the writer starts an interval record
SNIFF_HOLD = 1 << 20


# --------------------------------------------------------------------------- encoding


def _lat(lat: Latency):
    if lat == EMPTY_LATENCY:
        return 0
    return [lat.count, lat.sum, lat.min, lat.max, [list(b) for b in lat.buckets]]


def _unlat(obj) -> Latency:
    if not obj:
        return EMPTY_LATENCY
    count, total, lo, hi, buckets = obj
    return Latency(count, total, lo, hi, tuple((int(i), int(n)) for i, n in buckets))


def _stat(s: Stat) -> list:
    return [s.count, _lat(s.latency), s.lost] if s.lost else [s.count, _lat(s.latency)]


def _unstat(obj) -> Stat:
    return Stat(obj[0], _unlat(obj[1]), obj[2] if len(obj) > 2 else 0)


def interval_to_json(iv: Interval) -> dict[str, Any]:
    """One Interval as a JSON-able dict (lists keep every mapping's order)."""
    threads = []
    for t in iv.threads:
        thread: dict[str, Any] = {
            "pid": t.pid, "tid": t.tid, "vcpu_id": t.vcpu_id,
            "r": [[k[0], k[1], *_stat(s)] for k, s in t.reasons.items()],
            "u": [[code, *_stat(s)] for code, s in t.userspace.items()],
            "h": [[nr, *_stat(s)] for nr, s in t.hypercalls.items()],
            "q": [[bit, n] for bit, n in t.requests.items()],
        }
        if t.requests_lost:
            thread["ql"] = [[bit, n] for bit, n in t.requests_lost.items()]
        if t.in_userspace is not None:
            thread["iu"] = [t.in_userspace.code, t.in_userspace.ns]
        threads.append(thread)
    vms = [
        [key, {"pid": v.pid, "name": v.name, "start_time": v.start_time,
               "vcpu_index": [[tid, idx] for tid, idx in v.vcpu_index.items()],
               "comms": [[tid, comm] for tid, comm in v.comms.items()], **({"exited": True} if v.exited else {})}]
        for key, v in iv.vms.items()
    ]
    st = iv.status
    status = {
        "drops": st.drops, "unmatched_exits": st.unmatched_exits, "unmatched_entries": st.unmatched_entries,
        "poll_ms": st.poll_ms, "drops_by_map": [[k, n] for k, n in st.drops_by_map.items()],
        "drops_by_kind": [[k, n] for k, n in st.drops_by_kind.items()],
        "features": [[k, v] for k, v in st.features.items()], "notes": list(st.notes),
    }
    return {"t": iv.time, "dt": iv.interval_s, "threads": threads, "vms": vms, "status": status,
            "kernel": iv.kernel}


def io_to_json(io: IoSample) -> dict[str, Any]:
    """The interval's PIO/MMIO sample (the record's ``io``): ``a`` = [pid, tid, space, write
    (0/1), address, count] per thread, port or address and direction; ``drops``."""
    return {"a": [[a.pid, a.tid, a.space, int(a.write), a.addr, a.count] for a in io.accesses], "drops": io.drops}


def io_from_json(obj: Mapping[str, Any]) -> IoSample | None:
    """The PIO/MMIO sample of an interval record; None in a record without one (not counted,
    or written before recordings carried them)."""
    io = obj.get("io")
    if io is None:
        return None
    return IoSample(obj["dt"], tuple(IoAccess(pid, tid, space, bool(write), addr, n)
                                     for pid, tid, space, write, addr, n in io["a"]), io.get("drops", 0))


def interval_from_json(obj: Mapping[str, Any]) -> Interval:
    threads = tuple(
        ThreadInterval(
            pid=t["pid"], tid=t["tid"], vcpu_id=t["vcpu_id"],
            reasons={(r[0], r[1]): _unstat(r[2:]) for r in t["r"]},
            userspace={u[0]: _unstat(u[1:]) for u in t["u"]},
            hypercalls={h[0]: _unstat(h[1:]) for h in t["h"]},
            requests={q[0]: q[1] for q in t["q"]},
            requests_lost={q[0]: q[1] for q in t.get("ql", ())},
            in_userspace=InFlight(*t["iu"]) if t.get("iu") else None,
        )
        for t in obj["threads"]
    )
    vms = {
        key: VmIdentity(pid=v["pid"], name=v["name"], start_time=v["start_time"],
                        vcpu_index={tid: idx for tid, idx in v["vcpu_index"]},
                        comms={tid: comm for tid, comm in v["comms"]}, exited=bool(v.get("exited", False)))
        for key, v in obj["vms"]
    }
    s = obj["status"]
    status = CollectorStatus(
        drops=s["drops"], unmatched_exits=s["unmatched_exits"], unmatched_entries=s["unmatched_entries"],
        poll_ms=s["poll_ms"], drops_by_map={k: n for k, n in s["drops_by_map"]},
        drops_by_kind={k: n for k, n in s.get("drops_by_kind", ())},
        features={k: v for k, v in s["features"]}, notes=tuple(s["notes"]),
    )
    return Interval(time=obj["t"], interval_s=obj["dt"], threads=threads, vms=vms, status=status,
                    kernel=obj.get("kernel"))


# --------------------------------------------------------------------------- writer


class RecordingWriter:
    """Writes a recording; ``write`` fits ``Feed(tap=writer.write)``. Thread-safe."""

    def __init__(self, path: str, meta: Mapping[str, Any] | None = None):
        self.path = path
        self.count = 0
        self._lock = threading.Lock()
        self._f: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 - closed by close()
        header = {"schema": SCHEMA}
        header.update({k: v for k, v in (meta or {}).items() if k != "schema"})
        self._emit(header)

    def write(self, interval: Interval, io: IoSample | None = None) -> None:
        """One interval record, with the PIO/MMIO sample counted beside it (``io``) if any."""
        with self._lock:
            if self._f is None:
                raise ValueError("recording is closed")
            record = interval_to_json(interval)
            if io is not None:
                record["io"] = io_to_json(io)
            self._emit(record)
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._f is None:
                return
            try:
                self._emit({"end": self.count})
            finally:
                self._f.close()
                self._f = None

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _emit(self, obj: Mapping[str, Any]) -> None:
        assert self._f is not None
        line = json.dumps(obj, ensure_ascii=False) + "\n"
        member = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip member, with its CRC
        self._f.write(member.compress(line.encode("utf-8")) + member.flush())
        self._f.flush()


# --------------------------------------------------------------------------- sniffing


def is_recording(path: str) -> bool:
    """Whether the content of the file (gzip undone) starts with a recording header, or (its
    first gzip member damaged, so skipped whole) with an interval record. Raises OSError."""
    with open_data(path, SNIFF_HOLD) as f:
        start = f.read_chunk()[: len(HEADER_PREFIX)]
        return start == HEADER_PREFIX or bool(f.skip_count) and start.startswith(INTERVAL_PREFIX)
