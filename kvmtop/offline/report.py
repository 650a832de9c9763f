"""``kvmtop report FILE [--json]``: a text capture summed up like ``perf kvm stat report``.

The import streams the file (one line at a time, memory independent of its length) through
``trace_lines.TraceParser`` and ``pairing.Pairing``; see those modules for the accepted
layouts and the pairing rules. Files are read as bytes decoded with errors="replace", so
any content imports; a gzip-compressed capture is read through gzip.

``--json`` prints ``kvmtop.report/1``::

    {"schema": "kvmtop.report/1", "events": int, "skipped_lines": int,
     "bad_lines": [{"line": int, "text": str}...], "unmatched": {"exits": int, "entries": int},
     "reasons": [{"isa", "code", "name", "count", "latency_ns"}],
     "userspace_exits": [{"code", "name", "count", "latency_ns"}],
     "hypercalls": [{"nr", "name", "count", "latency_ns"}],
     "requests": [{"bit", "name", "count", "share"}],
     "threads": [{"tid", "comm", "vcpu", "exits"}]}

``name`` of a reason is its first spelling in the capture (``EPT_VIOLATION``, ``EXIT_NPF``,
``npf``); ``latency_ns`` is ``Latency.to_json()`` (count, min, max and sum exact). ``share``
is the fraction of the exits that carried a ``requests`` field. ``vcpu`` is the index of a
``CPU N/KVM`` comm, else the ``vcpu N`` of kvm_exit/kvm_entry, else null. Extensions (added,
never renamed): ``lines``, ``joined_lines``, ``bad_line_count`` (``bad_lines`` keeps the
first 100), ``lost_events``, ``read_error`` (a gzip stream cut short, else null),
``unmatched_userspace_exits``, ``pio``, ``mmio``; per reason
``spellings`` when the capture spells one reason several ways; per thread ``pid`` (tgid,
when the capture shows it), ``vcpu_id`` and ``latency_ns``.
"""

from __future__ import annotations

import gzip
import io
import json
import sys
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from .. import decode
from ..safe_text import printable
from .pairing import Aggregates, Pairing, acc_latency, merge_accs
from .trace_lines import ANON_TID, EXIT, TraceParser

SCHEMA = "kvmtop.report/1"
RECORDING_PREFIX = '{"schema": "kvmtop.recording/'
GZIP_MAGIC = b"\x1f\x8b"
MAX_LINE = 1 << 16  # characters of a line kept; no trace line comes near


class NotATrace(OSError):
    """The file is something else kvmtop knows (a recording)."""


@dataclass
class TraceImport:
    """What one capture holds: the parser's summary and the aggregates."""

    parser: TraceParser
    agg: Aggregates  # the whole capture (the last window when windowed)
    windows: list[tuple[int, Aggregates]] = field(default_factory=list)  # (index, agg), in file order
    tids: set[int] = field(default_factory=set)  # threads that had at least one event
    source: str = ""
    read_error: str | None = None  # why reading stopped before the end of the file


class _TolerantGzip(io.RawIOBase):
    """A gzip stream that ends, instead of raising, where the compressed data is damaged
    or cut short; ``problem`` then says why."""

    def __init__(self, raw: IO[bytes], owns_raw: bool = True):
        super().__init__()
        self._raw = raw if owns_raw else None
        self._gz = gzip.GzipFile(fileobj=raw)
        self.problem: str | None = None

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._gz.close()
            if self._raw is not None:
                self._raw.close()
        super().close()

    def readinto(self, b) -> int:
        if self.problem is not None:
            return 0
        try:
            data = self._gz.read1(len(b))
        except (EOFError, OSError, zlib.error) as exc:
            self.problem = f"the compressed data stops early: {exc or type(exc).__name__}"
            return 0
        n = len(data)
        b[:n] = data
        return n


def open_text(path: str) -> tuple[IO[str], _TolerantGzip | None]:
    """A capture as text lines (bytes decoded as UTF-8 with errors="replace"; gzip undone,
    as far as it goes), and the gzip reader when there is one (its ``problem``).

    Raises OSError when unreadable, NotATrace for a kvmtop recording. A file that starts
    like gzip but is not is read as it is.
    """
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller
    try:
        head = bytearray(64)
        gz: _TolerantGzip | None = None
        if raw.read(2) == GZIP_MAGIC:
            raw.seek(0)
            probe = _TolerantGzip(raw, owns_raw=False)
            n = probe.readinto(head)
            if n or probe.problem is None:
                gz = probe  # replaced by a fresh reader below
        else:
            raw.seek(0)
            n = raw.readinto(head)
        if bytes(head[:n]).startswith(RECORDING_PREFIX.encode()):
            raise NotATrace(f"{path} is a kvmtop recording (open it with kvmtop replay)")
        raw.seek(0)
        if gz is not None:
            gz = _TolerantGzip(raw)
        stream = io.BufferedReader(gz) if gz is not None else raw
        return io.TextIOWrapper(stream, encoding="utf-8", errors="replace"), gz  # type: ignore[arg-type]
    except BaseException:
        raw.close()
        raise


def bounded_lines(f: IO[str], limit: int = MAX_LINE) -> Iterator[str]:
    """The lines of ``f``, each cut to ``limit`` characters (the rest of an overlong line is
    read and dropped), so that memory stays bounded whatever the file holds."""
    readline = f.readline
    while True:
        line = readline(limit)
        if not line:
            return
        if len(line) == limit and line[-1] != "\n":
            while True:
                rest = readline(limit)
                if not rest or rest[-1] == "\n":
                    break
        yield line


def import_lines(lines: Iterable[str], window_s: float | None = None, source: str = "") -> TraceImport:
    """Import a capture given as lines. With ``window_s``, aggregates are cut into windows
    of that much trace time (see ``Pairing.run``)."""
    parser = TraceParser()
    pairing = Pairing()
    windows: list[tuple[int, Aggregates]] = []
    if window_s is None:
        pairing.run(parser.parse(lines))
    else:
        window_ns = max(1, int(round(window_s * 1e9)))
        pairing.run(parser.parse(lines), window_ns, lambda i, agg: windows.append((i, agg)))
    tids = set(pairing.states)
    agg = pairing.finish()
    return TraceImport(parser, agg, windows, tids, source)


def import_file(path: str, window_s: float | None = None) -> TraceImport:
    """Import a capture file, streaming. Raises OSError (NotATrace) when it cannot be
    opened; damage inside (bad lines, a cut gzip stream) is reported, never raised."""
    text, gz = open_text(path)
    with text:
        imp = import_lines(bounded_lines(text), window_s, source=path)
    if gz is not None:
        imp.read_error = gz.problem
    return imp


# --------------------------------------------------------------------------- JSON


def _merged(imp: TraceImport) -> Aggregates:
    """The whole capture in one aggregate (merging windows when there are any)."""
    if not imp.windows:
        return imp.agg
    total = Aggregates()
    for _i, agg in imp.windows:
        for name in ("reasons", "userspace", "hypercalls", "pio", "mmio"):
            table = getattr(total, name)
            for k, acc in getattr(agg, name).items():
                table[k] = merge_accs([table[k], acc]) if k in table else acc
        for k, n in agg.requests.items():
            total.requests[k] = total.requests.get(k, 0) + n
        for k, n in agg.request_exits.items():
            total.request_exits[k] = total.request_exits.get(k, 0) + n
        total.unmatched_exits += agg.unmatched_exits
        total.unmatched_entries += agg.unmatched_entries
        total.unmatched_userspace += agg.unmatched_userspace
    return total


def _order(items: dict) -> list:
    return sorted(items.items(), key=lambda kv: (-kv[1][0], kv[0]))


def report_to_dict(imp: TraceImport) -> dict[str, Any]:
    p = imp.parser
    agg = _merged(imp)
    reasons = []
    for key, acc in _order(Aggregates.by_key(agg.reasons)):
        row: dict[str, Any] = {"isa": key[0], "code": key[1],
                               "name": p.reason_names.get(key) or decode.exit_reason_name(*key),
                               "count": acc[0], "latency_ns": acc_latency(acc).to_json()}
        spellings = p.reason_spellings.get(key, [])
        if len(spellings) > 1:
            row["spellings"] = list(spellings)
        reasons.append(row)
    userspace = [
        {"code": code, "name": p.userspace_names.get(code) or decode.userspace_exit_name(code),
         "count": acc[0], "latency_ns": acc_latency(acc).to_json()}
        for code, acc in _order(Aggregates.by_key(agg.userspace))
    ]
    hypercalls = [
        {"nr": nr, "name": decode.hypercall_name(nr), "count": acc[0], "latency_ns": acc_latency(acc).to_json()}
        for nr, acc in _order(Aggregates.by_key(agg.hypercalls))
    ]
    request_exits = sum(agg.request_exits.values())
    bits: dict[int, int] = {}
    for (_tid, bit), n in agg.requests.items():
        bits[bit] = bits.get(bit, 0) + n
    requests = [
        {"bit": bit, "name": decode.request_bit_name(bit), "count": n,
         "share": round(n / request_exits, 6) if request_exits else 0.0}
        for bit, n in sorted(bits.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    per_thread = Aggregates.by_tid(agg.reasons)
    threads = []
    for tid in sorted(imp.tids):
        meta = p.threads.get(tid)
        acc = per_thread.get(tid)
        threads.append({
            "tid": tid, "comm": meta.comm if meta else "",
            "vcpu": meta.vcpu_index if meta else None,
            "exits": acc[0] if acc else 0,
            "pid": meta.tgid if meta else None,
            "vcpu_id": meta.vcpu_id if meta else None,
            "latency_ns": acc_latency(acc).to_json() if acc else acc_latency([0, 0, 0, 0, 0, {}]).to_json(),
        })
    return {
        "schema": SCHEMA,
        "events": p.events,
        "skipped_lines": p.skipped,
        "bad_lines": [{"line": n, "text": t} for n, t in p.bad],
        "unmatched": {"exits": agg.unmatched_exits, "entries": agg.unmatched_entries},
        "reasons": reasons,
        "userspace_exits": userspace,
        "hypercalls": hypercalls,
        "requests": requests,
        "threads": threads,
        # extensions
        "lines": p.lines,
        "joined_lines": p.joined,
        "bad_line_count": p.bad_count,
        "lost_events": p.lost_events,
        "read_error": imp.read_error,
        "unmatched_userspace_exits": agg.unmatched_userspace,
        "pio": [{"port": port, "dir": d, "name": f"{port:#x}:P{d}", "count": acc[0],
                 "latency_ns": acc_latency(acc).to_json()}
                for (d, port), acc in _order(Aggregates.by_key(agg.pio))],
        "mmio": [{"gpa": gpa, "dir": d, "name": f"{gpa:#x}:{d}", "count": acc[0],
                  "latency_ns": acc_latency(acc).to_json()}
                 for (d, gpa), acc in _order(Aggregates.by_key(agg.mmio))],
    }


# --------------------------------------------------------------------------- text


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}us"


_LAT_HEAD = ("Samples", "Samples%", "Time%", "Min Time", "Max Time", "Avg time", "p50", "p90", "p99", "p99.9")


def _table(title: str, rows: list[tuple[str, int, dict]], extra_head: tuple[str, ...] = (),
           extra: list[tuple[str, ...]] | None = None) -> list[str]:
    """perf kvm stat style: name, Samples, Samples%, Time%, Min, Max, Avg, percentiles."""
    total = sum(r[1] for r in rows)
    total_time = sum(r[2]["sum"] for r in rows)
    cells = []
    for i, (name, count, lat) in enumerate(rows):
        has = lat["count"] > 0
        cells.append((
            printable(name), *(extra[i] if extra else ()), str(count),
            f"{100 * count / total:.2f}%" if total else "0.00%",
            f"{100 * lat['sum'] / total_time:.2f}%" if total_time else "0.00%",
            *((_us(lat["min"]), _us(lat["max"]), _us(lat["sum"] / lat["count"]),
               _us(lat["p50"]), _us(lat["p90"]), _us(lat["p99"]), _us(lat["p999"]))
              if has else ("-",) * 7),
        ))
    head = (title, *extra_head, *_LAT_HEAD)
    widths = [max(len(head[c]), *(len(r[c]) for r in cells)) if cells else len(head[c]) for c in range(len(head))]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)), ""]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    lines += ["", f"Total Samples:{total}, Total events handled time:{_us(total_time)}."]
    return lines


def format_report(imp: TraceImport, data: dict[str, Any] | None = None) -> str:
    d = data if data is not None else report_to_dict(imp)
    out: list[str] = []
    src = f" of {printable(imp.source)}" if imp.source else ""
    out.append(f"kvmtop report{src}: {d['events']} events in {d['lines']} lines")
    out.append("")
    if d["reasons"]:
        out.append("Analyze events for all VMs, all VCPUs:")
        out.append("")
        out += _table("VM-EXIT", [(r["name"], r["count"], r["latency_ns"]) for r in d["reasons"]])
        out.append("")
    if d["threads"]:
        out.append("Per thread (exit latency over all reasons):")
        out.append("")
        threads = sorted(d["threads"], key=lambda t: (-t["exits"], t["tid"]))
        rows = [(f"{t['comm']}-{t['tid']}" if t["comm"] or t["tid"] != ANON_TID else "(no task column)",
                 t["exits"], t["latency_ns"]) for t in threads]
        extra = [("-" if t["vcpu"] is None else str(t["vcpu"]),) for t in threads]
        out += _table("THREAD", rows, ("vCPU",), extra)
        out.append("")
    if d["userspace_exits"]:
        out.append("Userspace exits (kvm_userspace_exit -> next kvm_entry / KVM_RUN):")
        out.append("")
        out += _table("KVM_EXIT", [(u["name"], u["count"], u["latency_ns"]) for u in d["userspace_exits"]])
        out.append("")
    if d["hypercalls"]:
        out.append("Hypercalls (latency of the exit they belong to):")
        out.append("")
        out += _table("HYPERCALL", [(f"{h['name']} ({h['nr']})", h["count"], h["latency_ns"]) for h in d["hypercalls"]])
        out.append("")
    for key, title, label in (("pio", "IO Port Access", "kvm_pio"), ("mmio", "MMIO Access", "kvm_mmio")):
        if d[key]:
            out.append(f"{label} -> next kvm_entry:")
            out.append("")
            out += _table(title, [(r["name"], r["count"], r["latency_ns"]) for r in d[key]])
            out.append("")
    if d["requests"]:
        out.append("vcpu->requests bits pending at exit:")
        out.append("")
        width = max(len(r["name"]) for r in d["requests"])
        out.append(f"{'BIT':>4}  {'REQUEST':<{width}}  {'Exits':>10}  {'Share':>8}")
        for r in d["requests"]:
            out.append(f"{r['bit']:>4}  {r['name']:<{width}}  {r['count']:>10}  {100 * r['share']:>7.2f}%")
        out.append("")
    if not imp.parser.has(EXIT):
        out.append("No kvm_exit events in this capture.")
        out.append("")
    out.append(f"Unmatched: {d['unmatched']['exits']} exits, {d['unmatched']['entries']} entries, "
               f"{d['unmatched_userspace_exits']} userspace exits.")
    summary = (f"Lines: {d['lines']} read, {d['events']} events, {d['skipped_lines']} skipped "
               f"(not KVM trace events), {d['joined_lines']} joined (wrapped events), "
               f"{d['bad_line_count']} bad.")
    out.append(summary)
    if d["read_error"]:
        out.append(f"Reading stopped early: {printable(d['read_error'])}.")
    if d["lost_events"]:
        out.append(f"The capture says {d['lost_events']} events were lost.")
    if d["bad_lines"]:
        shown = d["bad_lines"][:20]
        out.append(f"Bad lines (truncated or garbled; first {len(shown)} of {d['bad_line_count']}):")
        for b in shown:
            text = b["text"] if len(b["text"]) <= 120 else b["text"][:119] + "…"
            out.append(f"  line {b['line']}: {printable(text)}")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- CLI


def report_main(path: str, as_json: bool = False, out: IO[str] | None = None) -> int:
    """``kvmtop report FILE [--json]``: 0, or 1 with one line on stderr when unreadable."""
    out = out if out is not None else sys.stdout
    try:
        imp = import_file(path)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        msg = reason if isinstance(exc, NotATrace) else f"cannot read {path}: {reason}"
        print(f"kvmtop report: {printable(msg)}", file=sys.stderr)
        return 1
    if as_json:
        out.write(json.dumps(report_to_dict(imp), ensure_ascii=False) + "\n")
    else:
        out.write(format_report(imp))
    return 0
