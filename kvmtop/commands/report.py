"""``kvmtop report FILE [--json]``: a text capture summed up, as text or ``kvmtop.report/1`` JSON."""

from __future__ import annotations

import json
import sys
from typing import IO

from ..offline.report import format_report, report_to_dict
from ..offline.trace_import import NotATrace, import_file
from ..safe_text import printable


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


def run(args) -> int:
    return report_main(args.file, args.json, sys.stdout)
