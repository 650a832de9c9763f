"""``kvmtop doctor``: prerequisite checks, and what each missing piece means for the display.

The checks themselves live in ``kvmtop.bpf.checks``; this front end prints one line per
check and sets the exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..bpf.checks import Check, failed, run_checks


def format_check(c: Check) -> str:
    mark = "SKIP" if c.skipped else "OK  " if c.ok else "FAIL" if c.essential else "WARN"
    line = f"{mark} {c.name}: {c.detail}"
    return f"{line} -> {c.consequence}" if c.consequence and not c.ok else line


def main(argv: Sequence[str] | None = None) -> int:
    """Print one line per check; 0 when every essential check passed."""
    parser = argparse.ArgumentParser(prog="kvmtop doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--probe-seconds", type=float, default=1.0, metavar="S",
                        help="how long to watch the tracepoints fire (0: skip the probe)")
    try:
        args = parser.parse_args(list(argv) if argv is not None else sys.argv[1:])
        checks = run_checks(args.probe_seconds)
    except SystemExit as e:  # argparse: usage already printed
        return e.code if isinstance(e.code, int) else 2
    except KeyboardInterrupt:
        print("FAIL doctor: interrupted")
        return 130
    except Exception as e:
        print(f"FAIL doctor: {type(e).__name__}: {e}")
        return 2
    for c in checks:
        print(format_check(c))
    bad = failed(checks)
    if bad:
        print(f"{len(bad)} essential check(s) failed: live mode will not start")
        return 1
    print("all essential checks passed")
    return 0


def run(args) -> int:
    return main([])
