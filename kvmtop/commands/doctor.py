"""``kvmtop doctor``: prerequisite checks, and what each missing piece means for the display.

The checks themselves live in ``kvmtop.bpf.checks``; this front end prints one line per
check and sets the exit status.
"""

from __future__ import annotations

from ..bpf.checks import Check, failed, run_checks


def format_check(c: Check) -> str:
    mark = "SKIP" if c.skipped else "OK  " if c.ok else "FAIL" if c.essential else "WARN"
    line = f"{mark} {c.name}: {c.detail}"
    return f"{line} -> {c.consequence}" if c.consequence and not c.ok else line


def run(args) -> int:
    """Print one line per check (``--probe-seconds``: how long the live probe watches, 0 skips
    it); 0 when every essential check passed."""
    try:
        checks = run_checks(args.probe_seconds)
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
