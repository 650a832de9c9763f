"""Which checkout this kvmtop runs from (``kvmtop --version``): a launcher such as
/usr/local/bin/kvmtop may run another checkout than the one you are in."""

from __future__ import annotations

import subprocess
from pathlib import Path

from . import __version__


def checkout() -> Path:
    """The folder the kvmtop package was imported from belongs to (the repository)."""
    return Path(__file__).resolve().parent.parent


def git_describe(folder: Path) -> str | None:
    """``git describe --always --dirty`` and the branch of ``folder``, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "-C", str(folder), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=5)
        branch = subprocess.run(["git", "-C", str(folder), "rev-parse", "--abbrev-ref", "HEAD"],
                                capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    desc = out.stdout.strip()
    name = branch.stdout.strip() if branch.returncode == 0 else ""
    return f"{desc} on {name}" if name and name != "HEAD" else desc


def version_line() -> str:
    """``kvmtop 0.1.0 from /path/to/checkout (git 1a2b3c4 on main)``."""
    folder = checkout()
    git = git_describe(folder)
    return f"kvmtop {__version__} from {folder}" + (f" (git {git})" if git else "")
