"""A capture or a recording summed up like ``perf kvm stat report`` (``kvmtop report FILE``).

The data come from ``report_model`` (a ``ReportData``: per-thread totals grouped into VMs);
this module renders them as text or as the ``kvmtop.report/1`` JSON object::

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
``CPU N/KVM`` comm, else the ``vcpu N`` of kvm_exit/kvm_entry, else null.

Extensions (added, never renamed): ``lines``, ``joined_lines``, ``bad_line_count``
(``bad_lines`` keeps the first 100), ``lost_events``, ``read_error`` (a gzip stream cut
short, a converter that failed, a recording cut short; else null),
``unmatched_userspace_exits``, ``pio``, ``mmio``; per reason ``spellings`` when the capture
spells one reason several ways; per thread ``pid`` (tgid, when the capture shows it),
``vcpu_id``, ``latency_ns`` (its exits), ``vm_pid`` (the VM it was grouped into),
``unmatched``, ``unmatched_userspace_exits``, its own ``reasons``, ``userspace_exits``,
``hypercalls``, ``requests``, ``pio``, ``mmio``, and the roll-ups ``userspace_exit_count``,
``userspace_latency_ns`` (round trips over every KVM_EXIT_*), ``hypercall_count``;
``vms``: one object per VM with ``pid``, ``name``, ``start_time``, the roll-ups, and the
same fields as the totals (``unmatched``, ``reasons``, ``userspace_exits``, ``hypercalls``,
``requests``, ``threads``, ``unmatched_userspace_exits``, ``pio``, ``mmio``);
``source`` (``kind``: trace or recording, ``path``, ``first_ts_ns``, ``last_ts_ns``,
``duration_s``, and a recording's header as ``meta``); ``selection`` (``pid``, ``tid``,
``name`` of ``--pid/--tid/-g``, or null); ``slowest`` (with ``--slowest N``: ``n``,
``exits`` and ``userspace_exits``, each ``{"latency_ns", "ts_ns", "time", "tid", "comm",
"vcpu", "vcpu_id", "vm_pid", "vm", "name", ...}`` slowest first; exits add ``isa`` and
``code``, round trips ``code`` and ``ended_by``); ``missing`` (figures the source cannot
give: ``figure``, ``events``, ``why``, ``recordable``) and ``how_to_record`` (ftrace and
perf command lines, or null when nothing is missing that a recording could add);
``notes``; ``intervals`` (recordings: ``time``, ``interval_s``, ``vms``, ``exits``,
``exits_per_s``, ``latency_ns``, ``userspace_exits``, ``userspace_exits_per_s``,
``userspace_latency_ns``, ``hypercalls``, ``hypercalls_per_s``). Unknown values are null
(a recording counts unmatched events per host, not per thread).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import decode, units
from ..safe_text import printable
from .capture_advice import HOW_TO_RECORD, needs_recording
from .report_model import ReportData, Slow, ThreadTotals, from_trace, sum_counts, sum_stats, total_latency
from .trace_import import TraceImport
from .trace_lines import ANON_TID

SCHEMA = "kvmtop.report/1"


def _data(source: TraceImport | ReportData) -> ReportData:
    return source if isinstance(source, ReportData) else from_trace(source)


# --------------------------------------------------------------------------- JSON


def _order(items: dict) -> list:
    return sorted(items.items(), key=lambda kv: (-kv[1].count, kv[0]))


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 3) if seconds > 0 else 0.0


def _section(data: ReportData, threads: list[ThreadTotals]) -> dict[str, Any]:
    """The tables of a set of threads (the totals, a VM, one thread): every kind, merged."""
    reasons = []
    for key, s in _order(sum_stats(t.reasons for t in threads)):
        row: dict[str, Any] = {"isa": key[0], "code": key[1], "name": data.reason_name(key),
                               "count": s.count, "latency_ns": s.latency.to_json()}
        spellings = data.reason_spellings.get(key, [])
        if len(spellings) > 1:
            row["spellings"] = list(spellings)
        reasons.append(row)
    userspace = [{"code": code, "name": data.userspace_name(code), "count": s.count,
                  "latency_ns": s.latency.to_json()}
                 for code, s in _order(sum_stats(t.userspace for t in threads))]
    hypercalls = [{"nr": nr, "name": decode.hypercall_name(nr), "count": s.count, "latency_ns": s.latency.to_json()}
                  for nr, s in _order(sum_stats(t.hypercalls for t in threads))]
    request_exits = sum(t.request_exits for t in threads)
    requests = [{"bit": bit, "name": data.request_name(bit), "count": n,
                 "share": round(n / request_exits, 6) if request_exits else 0.0}
                for bit, n in sorted(sum_counts(t.requests for t in threads).items(), key=lambda kv: (-kv[1], kv[0]))]
    known = [t.unmatched for t in threads if t.unmatched is not None]
    unknown = len(known) < len(threads)
    unmatched = [None if unknown else sum(u[i] for u in known) for i in range(3)]
    return {
        "unmatched": {"exits": unmatched[0], "entries": unmatched[1]},
        "reasons": reasons,
        "userspace_exits": userspace,
        "hypercalls": hypercalls,
        "requests": requests,
        "unmatched_userspace_exits": unmatched[2],
        "pio": [{"port": port, "dir": d, "name": f"{port:#x}:P{d}", "count": s.count, "latency_ns": s.latency.to_json()}
                for (d, port), s in _order(sum_stats(t.pio for t in threads))],
        "mmio": [{"gpa": gpa, "dir": d, "name": f"{gpa:#x}:{d}", "count": s.count, "latency_ns": s.latency.to_json()}
                 for (d, gpa), s in _order(sum_stats(t.mmio for t in threads))],
    }


def _rollups(threads: list[ThreadTotals]) -> dict[str, Any]:
    exits = [s for t in threads for s in t.reasons.values()]
    userspace = [s for t in threads for s in t.userspace.values()]
    return {
        "exits": sum(s.count for s in exits),
        "latency_ns": total_latency(exits).to_json(),
        "userspace_exit_count": sum(s.count for s in userspace),
        "userspace_latency_ns": total_latency(userspace).to_json(),
        "hypercall_count": sum(s.count for t in threads for s in t.hypercalls.values()),
    }


def thread_to_dict(data: ReportData, t: ThreadTotals) -> dict[str, Any]:
    roll = _rollups([t])
    section = _section(data, [t])
    return {
        "tid": t.tid, "comm": t.comm, "vcpu": t.vcpu, "exits": roll.pop("exits"),
        "pid": t.tgid, "vcpu_id": t.vcpu_id, "latency_ns": roll.pop("latency_ns"),
        "vm_pid": t.vm[0], **roll, **section,
    }


def vm_to_dict(data: ReportData, key, threads: list[ThreadTotals]) -> dict[str, Any]:
    """One VM: its roll-ups, then the same fields as the totals, of ``threads`` (its own)."""
    vm = data.vms[key]
    section = _section(data, threads)
    return {"pid": vm.pid, "name": vm.name, "start_time": vm.start_time, **_rollups(threads),
            "unmatched": section.pop("unmatched"), "reasons": section.pop("reasons"),
            "userspace_exits": section.pop("userspace_exits"), "hypercalls": section.pop("hypercalls"),
            "requests": section.pop("requests"), "threads": [thread_to_dict(data, t) for t in threads], **section}


def _slow_to_dict(data: ReportData, s: Slow, exit_: bool, by_tid: dict[int, ThreadTotals]) -> dict[str, Any]:
    t = by_tid.get(s.tid)
    vm = data.vm_of(t) if t else None
    row: dict[str, Any] = {
        "latency_ns": s.latency_ns, "ts_ns": s.ts_ns, "time": _seconds(s.ts_ns), "tid": s.tid,
        "comm": t.comm if t else "", "vcpu": t.vcpu if t else None, "vcpu_id": t.vcpu_id if t else None,
        "vm_pid": vm.pid if vm else None, "vm": vm.name if vm else None,
    }
    if exit_:
        row.update({"name": data.reason_name(s.what), "isa": s.what[0], "code": s.what[1]})
    else:
        row.update({"name": data.userspace_name(s.what), "code": s.what, "ended_by": s.ended_by})
    return row


def _seconds(ns: int) -> str:
    """Exact ns as a seconds string (``1404.389366000``): the capture's own clock."""
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def _interval_rows(data: ReportData) -> list[dict[str, Any]]:
    return [{"time": r.time, "interval_s": r.interval_s, "vms": r.vms,
             "exits": r.exits.count, "exits_per_s": _rate(r.exits.count, r.interval_s),
             "latency_ns": r.exits.latency.to_json(),
             "userspace_exits": r.userspace.count, "userspace_exits_per_s": _rate(r.userspace.count, r.interval_s),
             "userspace_latency_ns": r.userspace.latency.to_json(),
             "hypercalls": r.hypercalls, "hypercalls_per_s": _rate(r.hypercalls, r.interval_s)}
            for r in data.intervals]


def report_to_dict(source: TraceImport | ReportData) -> dict[str, Any]:
    data = _data(source)
    p = data.parser
    section = _section(data, data.threads)
    if data.unmatched_total is not None:  # a recording: the host's counts
        section["unmatched"] = {"exits": data.unmatched_total[0], "entries": data.unmatched_total[1]}
    roll = _rollups(data.threads)
    events = p.events if p is not None else roll["exits"] + roll["userspace_exit_count"] + roll["hypercall_count"]
    threads = sorted(data.threads, key=lambda t: (t.tid, t.vm))
    of_vm: dict = {key: [] for key in data.vms}
    for t in threads:
        of_vm.setdefault(t.vm, []).append(t)
    out: dict[str, Any] = {
        "schema": SCHEMA,
        "events": events,
        "skipped_lines": p.skipped if p is not None else 0,
        "bad_lines": [{"line": n, "text": t} for n, t in p.bad] if p is not None else [],
        "unmatched": section.pop("unmatched"),
        "reasons": section.pop("reasons"),
        "userspace_exits": section.pop("userspace_exits"),
        "hypercalls": section.pop("hypercalls"),
        "requests": section.pop("requests"),
        "threads": [thread_to_dict(data, t) for t in threads],
        # extensions
        "lines": p.lines if p is not None else 0,
        "joined_lines": p.joined if p is not None else 0,
        "bad_line_count": p.bad_count if p is not None else 0,
        "lost_events": p.lost_events if p is not None else 0,
        "read_error": data.read_error,
        **section,
        "source": _source(data),
        "selection": None if data.selection is None or data.selection.is_empty() else
        {"pid": data.selection.pid, "tid": data.selection.tid, "name": data.selection.name},
        "vms": [vm_to_dict(data, key, of_vm[key]) for key in sorted(data.vms)],
        "missing": [m.to_json() for m in data.missing],
        "how_to_record": HOW_TO_RECORD if needs_recording(data.missing) else None,
        "notes": list(data.notes),
    }
    if data.slowest:
        by_tid = {t.tid: t for t in data.threads}
        out["slowest"] = {"n": data.slowest,
                          "exits": [_slow_to_dict(data, s, True, by_tid) for s in data.slowest_exits()],
                          "userspace_exits": [_slow_to_dict(data, s, False, by_tid) for s in data.slowest_userspace()]}
    if data.kind == "recording":
        out["intervals"] = _interval_rows(data)
    return out


def _source(data: ReportData) -> dict[str, Any]:
    span = (data.last_ts - data.first_ts) if data.first_ts is not None and data.last_ts is not None else None
    out: dict[str, Any] = {"kind": data.kind, "path": data.source, "first_ts_ns": data.first_ts,
                           "last_ts_ns": data.last_ts, "duration_s": None if span is None else span / 1e9}
    if data.kind == "recording":
        out["meta"] = data.meta
    return out


# --------------------------------------------------------------------------- text


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}us"


_LAT_HEAD = ("Samples", "Samples%", "Time%", "Min Time", "Max Time", "Avg time", "p50", "p90", "p99", "p99.9")


def _columns(head: tuple[str, ...], cells: list[tuple[str, ...]], left: int = 0) -> list[str]:
    """Right-aligned columns (the first ``left`` ones left-aligned) under a header and a blank line."""
    widths = [max([len(head[c])] + [len(r[c]) for r in cells]) for c in range(len(head))]

    def line(row) -> str:
        return "  ".join(v.ljust(w) if c < left else v.rjust(w) for c, (v, w) in enumerate(zip(row, widths))).rstrip()

    return [line(head), "", *(line(r) for r in cells)]


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
    lines = _columns((title, *extra_head, *_LAT_HEAD), cells)
    lines += ["", f"Total Samples:{total}, Total events handled time:{_us(total_time)}."]
    return lines


def _thread_label(t: dict) -> str:
    if t["comm"] or t["tid"] != ANON_TID:
        return f"{t['comm']}-{t['tid']}"
    return "(no task column)"


def _vcpu(t: dict) -> str:
    return "-" if t["vcpu"] is None else str(t["vcpu"])


def _kind_tables(d: dict, scope: str) -> list[str]:
    """The reason, userspace, hypercall, pio/mmio and request tables of a section."""
    out: list[str] = []
    if d["reasons"]:
        out += [f"Analyze events for {scope}:", ""]
        out += _table("VM-EXIT", [(r["name"], r["count"], r["latency_ns"]) for r in d["reasons"]])
        out.append("")
    if d["userspace_exits"]:
        out += [f"Userspace exits of {scope} (kvm_userspace_exit -> next kvm_entry / KVM_RUN):", ""]
        out += _table("KVM_EXIT", [(u["name"], u["count"], u["latency_ns"]) for u in d["userspace_exits"]])
        out.append("")
    if d["hypercalls"]:
        out += [f"Hypercalls of {scope} (latency of the exit they belong to):", ""]
        out += _table("HYPERCALL", [(f"{h['name']} ({h['nr']})", h["count"], h["latency_ns"]) for h in d["hypercalls"]])
        out.append("")
    for key, title, label in (("pio", "IO Port Access", "kvm_pio"), ("mmio", "MMIO Access", "kvm_mmio")):
        if d[key]:
            timed = any(r["latency_ns"]["count"] for r in d[key])  # a recording's are counts only
            out += [f"{label} -> next kvm_entry, {scope}:" if timed else f"{label} accesses, {scope}:", ""]
            out += _table(title, [(r["name"], r["count"], r["latency_ns"]) for r in d[key]])
            out.append("")
    if d["requests"]:
        out += [f"vcpu->requests bits pending at exit, {scope}:", ""]
        out += _columns(("BIT", "REQUEST", "Exits", "Share"),
                        [(str(r["bit"]), printable(r["name"]), str(r["count"]), f"{100 * r['share']:.2f}%")
                         for r in d["requests"]])
        out.append("")
    return out


def _lat_cells(lat: dict) -> tuple[str, ...]:
    return tuple(_us(lat[k]) for k in ("p50", "p99", "max")) if lat["count"] else ("-", "-", "-")


def _vm_table(vms: list[dict]) -> list[str]:
    cells = [(printable(v["name"]), str(v["pid"]), str(len(v["threads"])), str(v["exits"]),
              *_lat_cells(v["latency_ns"]), str(v["userspace_exit_count"]), *_lat_cells(v["userspace_latency_ns"]),
              str(v["hypercall_count"]), str(sum(r["count"] for r in v["requests"])))
             for v in vms]
    head = ("VM", "PID", "Threads", "Exits", "p50", "p99", "Max", "Userspace", "RT p50", "RT p99", "RT max",
            "Hypercalls", "Request bits")
    return ["Per VM (exit latency; RT: userspace round trip):", "", *_columns(head, cells, left=1), ""]


def _per_thread_tables(threads: list[dict]) -> list[str]:
    out: list[str] = []
    if any(t["exits"] for t in threads):
        rows = sorted(threads, key=lambda t: (-t["exits"], t["tid"]))
        out += ["Per thread: exits (latency over all reasons):", ""]
        out += _table("THREAD", [(_thread_label(t), t["exits"], t["latency_ns"]) for t in rows], ("vCPU",),
                      [(_vcpu(t),) for t in rows])
        out.append("")
    rows = sorted((t for t in threads if t["userspace_exit_count"]),
                  key=lambda t: (-t["userspace_exit_count"], t["tid"]))
    if rows:
        out += ["Per thread: userspace exits (round trip over all KVM_EXIT_*):", ""]
        out += _table("THREAD", [(_thread_label(t), t["userspace_exit_count"], t["userspace_latency_ns"])
                                 for t in rows],
                      ("vCPU", "Top KVM_EXIT"), [(_vcpu(t), t["userspace_exits"][0]["name"]) for t in rows])
        out.append("")
    cells = [(_thread_label(t), _vcpu(t), printable(f"{h['name']} ({h['nr']})"), str(h["count"]),
              *_lat_cells(h["latency_ns"]))
             for t in sorted(threads, key=lambda t: t["tid"]) for h in t["hypercalls"]]
    if cells:
        out += ["Per thread: hypercalls:", "", *_columns(("THREAD", "vCPU", "HYPERCALL", "Count", "p50", "p99", "Max"),
                                                         cells, left=1), ""]
    cells = [(_thread_label(t), _vcpu(t), str(r["bit"]), printable(r["name"]), str(r["count"]),
              f"{100 * r['share']:.2f}%")
             for t in sorted(threads, key=lambda t: t["tid"]) for r in t["requests"]]
    if cells:
        out += ["Per thread: vcpu->requests bits pending at exit:", "",
                *_columns(("THREAD", "vCPU", "BIT", "REQUEST", "Exits", "Share"), cells, left=1), ""]
    return out


def _slow_tables(d: dict) -> list[str]:
    s = d["slowest"]
    out: list[str] = []
    for key, title, what in (("exits", f"Slowest {s['n']} exits (kvm_exit -> kvm_entry):", "REASON"),
                             ("userspace_exits", f"Slowest {s['n']} userspace round trips:", "KVM_EXIT")):
        out += [title, ""]
        if not s[key]:
            out += ["  none (no pairs in this capture; see Missing figures)", ""]
            continue
        cells = [(_us(r["latency_ns"]), r["time"], _thread_label(r), _vcpu(r),
                  printable(f"{r['vm']} ({r['vm_pid']})") if r["vm"] is not None else "-", printable(r["name"]),
                  *((r["ended_by"],) if key == "userspace_exits" else ()))
                 for r in s[key]]
        head = ("Latency", "Time", "Thread", "vCPU", "VM", what, *(("Ended by",) if key == "userspace_exits" else ()))
        out += [*_columns(head, cells), ""]
    return out


def _missing_lines(d: dict) -> list[str]:
    if not d["missing"]:
        return []
    out = ["Missing figures:"]
    for m in d["missing"]:
        needs = f" Needs {', '.join(m['events'])}." if m["events"] else ""
        out.append(f"  {m['figure']}: {m['why']}.{needs}")
    how = d["how_to_record"]
    if how:
        out.append("To record them with ftrace (as root):")
        out += [f"    {c}" for c in how["ftrace"]]
        out.append("or with perf, per VM:")
        out += [f"    {c}" for c in how["perf"]]
        out.append(f"  ({how['note']}.)")
    out.append("")
    return out


def _interval_table(rows: list[dict]) -> list[str]:
    cells = [(units.timestamp(r["time"]), units.duration(r["interval_s"] * 1e9), str(r["vms"]),
              str(r["exits"]), f"{r['exits_per_s']:.1f}", *_lat_cells(r["latency_ns"])[:2],
              str(r["userspace_exits"]), f"{r['userspace_exits_per_s']:.1f}",
              *_lat_cells(r["userspace_latency_ns"])[:2],
              str(r["hypercalls"]), f"{r['hypercalls_per_s']:.1f}")
             for r in rows]
    head = ("End", "Length", "VMs", "Exits", "Exits/s", "p50", "p99", "Userspace", "/s", "RT p50", "RT p99",
            "Hypercalls", "/s")
    return ["Per interval:", "", *_columns(head, cells, left=1), ""]


def _header(data: ReportData, d: dict) -> list[str]:
    src = f" of {printable(data.source)}" if data.source else ""
    sel = ""
    if data.selection is not None and not data.selection.is_empty():
        sel = f" (narrowed to {printable(data.selection.describe())})"
    if data.kind == "recording":
        meta = data.meta
        out = [f"kvmtop report{src}{sel}: a recording of {len(data.intervals)} intervals"
               + (f" from host {printable(str(meta['host']))}" if meta.get("host") else "")
               + (f", kernel {printable(str(meta['kernel']))}" if meta.get("kernel") else "")]
        if data.intervals:
            first, last = data.intervals[0], data.intervals[-1]
            recorded = sum(r.interval_s for r in data.intervals)
            out.append(f"From {units.timestamp(first.time - first.interval_s)} to {units.timestamp(last.time)}"
                       f" ({units.duration(recorded * 1e9)} recorded)")
        return out
    out = [f"kvmtop report{src}{sel}: {d['events']} events in {d['lines']} lines"]
    s = d["source"]
    if s["first_ts_ns"] is not None:
        span = s["duration_s"]
        length = f"{span * 1e6:.0f} us" if span < 1 else f"{span:.3f} s"
        out.append(f"Trace time {_seconds(s['first_ts_ns'])} to {_seconds(s['last_ts_ns'])} s ({length})")
    return out


def format_report(source: TraceImport | ReportData, data: dict[str, Any] | None = None) -> str:
    rd = _data(source)
    d = data if data is not None else report_to_dict(rd)
    out: list[str] = _header(rd, d)
    out.append("")
    if rd.kind == "recording" and d["intervals"]:
        out += _interval_table(d["intervals"])
    scope = "all VMs, all VCPUs"
    if len(d["vms"]) == 1:
        scope = f"VM {printable(d['vms'][0]['name'])} (pid {d['vms'][0]['pid']})"
    out += _kind_tables(d, scope)
    if d["vms"]:
        out += _vm_table(d["vms"])
    if len(d["vms"]) > 1:
        for vm in d["vms"]:
            out += _kind_tables(vm, f"VM {printable(vm['name'])} (pid {vm['pid']})")
    out += _per_thread_tables(d["threads"])
    if "slowest" in d:
        out += _slow_tables(d)
    if not d["reasons"] and rd.kind == "trace":
        out += ["No kvm_exit events in this capture.", ""]
    out += _missing_lines(d)
    out += [f"note: {printable(n)}" for n in d["notes"]]
    u = d["unmatched"]
    if u["exits"] is not None:
        userspace = d["unmatched_userspace_exits"]
        tail = f", {userspace} userspace exits." if userspace is not None else "."
        out.append(f"Unmatched: {u['exits']} exits, {u['entries']} entries{tail}")
    if rd.kind == "trace":
        out.append(f"Lines: {d['lines']} read, {d['events']} events, {d['skipped_lines']} skipped "
                   f"(not KVM trace events), {d['joined_lines']} joined (wrapped events), "
                   f"{d['bad_line_count']} bad.")
    if d["read_error"]:
        out.append(f"The capture is damaged: {printable(d['read_error'])}.")
    if d["lost_events"]:
        out.append(f"The capture says {d['lost_events']} events were lost.")
    if d["bad_lines"]:
        shown = d["bad_lines"][:20]
        out.append(f"Bad lines (truncated or garbled; first {len(shown)} of {d['bad_line_count']}):")
        for b in shown:
            text = b["text"] if len(b["text"]) <= 120 else b["text"][:119] + "…"
            out.append(f"  line {b['line']}: {printable(text)}")
    return "\n".join(out) + "\n"


__all__ = ["SCHEMA", "report_to_dict", "format_report", "thread_to_dict", "vm_to_dict"]
