"""``kvmtop report FILE``: a capture (text, gzip, perf.data, trace.dat) or a recording summed
up, as text or ``kvmtop.report/1`` JSON; ``--pid``/``--tid``/``-g`` narrow it, ``--slowest N``
lists the N slowest exits and userspace round trips."""

from __future__ import annotations

import sys
from typing import IO

from ..errors import SourceError
from ..offline.recording import is_recording
from ..offline.recording_reader import RecordingReader
from ..offline.report import format_report, report_to_dict
from ..offline.report_model import ReportData, Selection, from_recording, from_trace, resolve_name
from ..offline.trace_import import import_file, no_events
from ..safe_text import json_dumps, printable

SLOWEST_IN_RECORDINGS = ("--slowest needs a trace capture: a recording keeps latency histograms, "
                         "not single exits")


class ReportError(Exception):
    """One line for the user: the report cannot be made."""


def load(path: str, selection: Selection | None = None, slowest: int = 0) -> ReportData:
    """The report's data for a capture or a recording, narrowed by ``selection``."""
    selection = selection or Selection()
    try:
        if is_recording(path):
            return _recording(path, selection, slowest)
        return _capture(path, selection, slowest)
    except SourceError as exc:
        raise ReportError(str(exc)) from exc
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror}" if exc.strerror else str(exc)) from exc


def _capture(path: str, selection: Selection, slowest: int) -> ReportData:
    imp = import_file(path, slowest=slowest)
    empty = no_events(imp, path)
    if empty:  # nothing to report on: an error, not a report of zeros
        raise ReportError(empty)
    data = from_trace(imp)
    vms = {(vm.pid, vm.name) for vm in data.vms.values()}
    selection = resolve_name(selection, (name for _pid, name in vms))
    if selection.is_empty():
        return data
    narrowed = data.narrowed(selection)
    if not narrowed.threads:
        raise ReportError(_no_match(path, selection, vms))
    return narrowed


def _recording(path: str, selection: Selection, slowest: int) -> ReportData:
    with RecordingReader(path) as reader:  # read on demand: memory does not grow with the file
        if selection.name is not None:  # a first pass for the names
            selection = resolve_name(selection, (name for _pid, name in _vms_of(reader)))
        data = from_recording(path, reader.meta, reader, selection, reader.warning, reader.io)
        if not selection.is_empty() and not data.threads:
            raise ReportError(_no_match(path, selection, _vms_of(reader)))
    if slowest:
        data.notes.append(SLOWEST_IN_RECORDINGS)
    return data


def _vms_of(intervals) -> set[tuple[int, str]]:
    return {(vm.pid, vm.name) for iv in intervals for vm in iv.vms.values()}


def _no_match(path: str, selection: Selection, vms: set[tuple[int, str]]) -> str:
    listed = ", ".join(f"{name} (pid {pid})" for pid, name in sorted(vms)[:10]) + (", ..." if len(vms) > 10 else "")
    return f"no thread of {path} matches {selection.describe()}" + (f"; its VMs: {listed}" if vms else "")


def report_main(path: str, as_json: bool = False, out: IO[str] | None = None,
                selection: Selection | None = None, slowest: int = 0) -> int:
    """0, or 1 with one line on stderr when the file cannot be read or nothing matches."""
    out = out if out is not None else sys.stdout
    try:
        data = load(path, selection, slowest)
    except ReportError as exc:
        print(f"kvmtop report: {printable(str(exc))}", file=sys.stderr)
        return 1
    if as_json:
        out.write(json_dumps(report_to_dict(data)) + "\n")
    else:
        out.write(format_report(data))
    return 0


def run(args) -> int:
    selection = Selection(pid=args.pid, tid=args.tid, name=args.guest)
    return report_main(args.file, args.json, sys.stdout, selection, args.slowest or 0)
