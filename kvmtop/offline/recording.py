"""Recordings: the Interval stream of a session, written as it happens and read back for replay.

File format ``kvmtop.recording/1``: one gzip stream of JSON lines, flushed with
``Z_SYNC_FLUSH`` after every line, so a recorder that is killed leaves a file whose every
complete line can be read back (the gzip trailer is written only by ``close``). Lines:

1. the header: ``{"schema": "kvmtop.recording/1", ...meta}`` (meta: source, interval_s,
   started, host, kernel, kvmtop version — whatever the writer was given);
2. one record per Interval (``interval_to_json``): ``{"t": time, "dt": interval_s,
   "threads": [...], "vms": [...], "status": {...}, "kernel": ...}``;
3. on a clean close, ``{"end": N}`` with the number of intervals.

What is recorded is the Interval stream, not rendered snapshots: replay passes it through
a SnapshotBuilder again, which rebuilds identical snapshots, history included. Intervals
round-trip exactly (Stat, Latency with its buckets, VmIdentity with vcpu_index and comms,
CollectorStatus with features and notes, kernel). Readers skip record types they do not
know, so later versions can add some; a different schema major is refused.
"""

from __future__ import annotations

import json
import os
import threading
import zlib
from collections.abc import Mapping
from typing import IO, Any

from ..model import (
    EMPTY_LATENCY,
    CollectorStatus,
    Interval,
    Latency,
    Stat,
    ThreadInterval,
    VmIdentity,
)
from ..errors import SourceError

SCHEMA = "kvmtop.recording/1"
SCHEMA_FAMILY = "kvmtop.recording/"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 16


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
    return [s.count, _lat(s.latency)]


def _unstat(obj) -> Stat:
    return Stat(obj[0], _unlat(obj[1]))


def interval_to_json(iv: Interval) -> dict[str, Any]:
    """One Interval as a JSON-able dict (lists keep every mapping's order)."""
    threads = []
    for t in iv.threads:
        threads.append({
            "pid": t.pid, "tid": t.tid, "vcpu_id": t.vcpu_id,
            "r": [[k[0], k[1], *_stat(s)] for k, s in t.reasons.items()],
            "u": [[code, *_stat(s)] for code, s in t.userspace.items()],
            "h": [[nr, *_stat(s)] for nr, s in t.hypercalls.items()],
            "q": [[bit, n] for bit, n in t.requests.items()],
        })
    vms = [
        [key, {"pid": v.pid, "name": v.name, "start_time": v.start_time,
               "vcpu_index": [[tid, idx] for tid, idx in v.vcpu_index.items()],
               "comms": [[tid, comm] for tid, comm in v.comms.items()]}]
        for key, v in iv.vms.items()
    ]
    st = iv.status
    status = {
        "drops": st.drops, "unmatched_exits": st.unmatched_exits, "unmatched_entries": st.unmatched_entries,
        "poll_ms": st.poll_ms, "drops_by_map": [[k, n] for k, n in st.drops_by_map.items()],
        "features": [[k, v] for k, v in st.features.items()], "notes": list(st.notes),
    }
    return {"t": iv.time, "dt": iv.interval_s, "threads": threads, "vms": vms, "status": status,
            "kernel": iv.kernel}


def interval_from_json(obj: Mapping[str, Any]) -> Interval:
    threads = tuple(
        ThreadInterval(
            pid=t["pid"], tid=t["tid"], vcpu_id=t["vcpu_id"],
            reasons={(r[0], r[1]): _unstat(r[2:]) for r in t["r"]},
            userspace={u[0]: _unstat(u[1:]) for u in t["u"]},
            hypercalls={h[0]: _unstat(h[1:]) for h in t["h"]},
            requests={q[0]: q[1] for q in t["q"]},
        )
        for t in obj["threads"]
    )
    vms = {
        key: VmIdentity(pid=v["pid"], name=v["name"], start_time=v["start_time"],
                        vcpu_index={tid: idx for tid, idx in v["vcpu_index"]},
                        comms={tid: comm for tid, comm in v["comms"]})
        for key, v in obj["vms"]
    }
    s = obj["status"]
    status = CollectorStatus(
        drops=s["drops"], unmatched_exits=s["unmatched_exits"], unmatched_entries=s["unmatched_entries"],
        poll_ms=s["poll_ms"], drops_by_map={k: n for k, n in s["drops_by_map"]},
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
        self._z = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: a gzip wrapper
        header = {"schema": SCHEMA}
        header.update({k: v for k, v in (meta or {}).items() if k != "schema"})
        self._emit(header)

    def write(self, interval: Interval) -> None:
        with self._lock:
            if self._f is None:
                raise ValueError("recording is closed")
            self._emit(interval_to_json(interval))
            self.count += 1

    def close(self) -> None:
        with self._lock:
            if self._f is None:
                return
            try:
                self._emit({"end": self.count})
                self._f.write(self._z.flush(zlib.Z_FINISH))
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
        self._f.write(self._z.compress(line.encode("utf-8")) + self._z.flush(zlib.Z_SYNC_FLUSH))
        self._f.flush()


# --------------------------------------------------------------------------- reader


def _lines(f: IO[bytes], gz: bool):
    """Complete lines of the (decompressed) stream, then a final (None, problem) where
    problem says why the stream stopped early (None for a clean end)."""
    d = zlib.decompressobj(31) if gz else None
    buf = b""
    problem = None
    while True:
        chunk = f.read(_CHUNK)
        if not chunk:
            break
        if d is not None:
            try:
                data = d.decompress(chunk)
            except zlib.error:
                problem = "the compressed data is damaged"
                break
            if d.eof:
                buf += data
                if d.unused_data.strip(b"\0"):
                    problem = "data after the end of the compressed stream was ignored"
                break
        else:
            data = chunk
        buf += data
        *complete, buf = buf.split(b"\n")
        for line in complete:
            yield line, None
    if d is not None and problem is None and not d.eof:
        problem = "the file ends early (the recorder did not finish)"
    *complete, buf = buf.split(b"\n")
    for line in complete:
        yield line, None
    if buf.strip():
        problem = (problem + "; " if problem else "") + "an incomplete record at the end was dropped"
    yield None, problem


def read_recording(path: str) -> tuple[dict[str, Any], list[Interval], str | None]:
    """(meta, intervals, warning). A truncated file yields its complete prefix and a
    warning; a file that is not a recording raises SourceError (one line)."""
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as exc:
        raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with f:
        try:
            head = f.read(2)
            f.seek(0)
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
        meta: dict[str, Any] | None = None
        intervals: list[Interval] = []
        ended = None
        problem = None
        try:
            for raw, trouble in _lines(f, head == GZIP_MAGIC):
                if raw is None:
                    problem = trouble
                    break
                if meta is None:
                    meta = _header(path, raw)
                    continue
                if not raw.strip():
                    continue
                try:
                    obj = json.loads(raw)
                    if "t" in obj:
                        intervals.append(interval_from_json(obj))
                    elif "end" in obj:
                        ended = obj["end"]
                except (ValueError, KeyError, TypeError, IndexError) as exc:
                    problem = f"record {len(intervals) + 1} is damaged ({type(exc).__name__})"
                    break
        except OSError as exc:
            raise SourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if meta is None:
        raise SourceError(f"{path} is not a kvmtop recording (no complete header line)")
    warning = None
    if problem or ended is None:
        why = problem or "it has no end record (the recorder did not finish)"
        warning = f"recording {os.path.basename(path)} is truncated: {why}; read {len(intervals)} complete intervals"
    elif ended != len(intervals):
        warning = f"recording {os.path.basename(path)} says {ended} intervals but holds {len(intervals)}"
    return meta, intervals, warning


def _header(path: str, raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        obj = None
    if not isinstance(obj, dict) or not str(obj.get("schema", "")).startswith(SCHEMA_FAMILY):
        raise SourceError(f"{path} is not a kvmtop recording")
    if obj["schema"] != SCHEMA:
        raise SourceError(f"{path} is a recording of an unsupported schema {obj['schema']!r} (this kvmtop reads {SCHEMA})")
    return {k: v for k, v in obj.items() if k != "schema"}


def is_recording(path: str) -> bool:
    """Whether the file starts like a recording (gzip magic or a recording header)."""
    prefix = b'{"schema": "' + SCHEMA_FAMILY.encode()
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:2] == GZIP_MAGIC:
        try:
            head = zlib.decompressobj(31).decompress(head)  # a prefix of the text is enough
        except zlib.error:
            return False
    return head.startswith(prefix)
