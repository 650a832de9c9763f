"""A text capture summed up like ``perf kvm stat report`` (``kvmtop report FILE [--json]``).

The capture is imported by ``trace_import``; this module renders the import as text or as
the ``kvmtop.report/1`` JSON object. ``--json`` prints ``kvmtop.report/1``::

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

from collections.abc import Sequence
from typing import Any

from .. import decode
from ..safe_text import printable
from .pairing import Aggregates, acc_latency, merge_accs
from .trace_import import TraceImport
from .trace_lines import ANON_TID, EXIT

SCHEMA = "kvmtop.report/1"


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
           extra: Sequence[tuple[str, ...]] | None = None) -> list[str]:
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
