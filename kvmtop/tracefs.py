"""Find tracefs and read tracepoint formats (field layouts come from here, never from versions)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
MOUNTS = "/proc/self/mounts"


class TracefsError(Exception):
    """tracefs is missing or an event is unknown; the message is one line for the user."""


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    offset: int
    size: int
    signed: bool


def find(mount: bool = False) -> str | None:
    """The tracefs directory, mounting it at /sys/kernel/tracing first if asked and allowed."""
    for path in CANDIDATES:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    if mount and os.geteuid() == 0 and os.path.isdir(CANDIDATES[0]):
        subprocess.run(["mount", "-t", "tracefs", "nodev", CANDIDATES[0]],
                       capture_output=True, check=False)
        if os.path.isdir(os.path.join(CANDIDATES[0], "events")):
            return CANDIDATES[0]
    return None


def mount_points(mounts: str = MOUNTS) -> list[str]:
    """Where tracefs is mounted, readable by this user or not (from the mount table)."""
    try:
        with open(mounts, encoding="utf-8", errors="replace") as f:
            rows = [line.split() for line in f]
    except OSError:
        return []
    return [r[1].replace("\\040", " ") for r in rows if len(r) > 2 and r[2] == "tracefs"]


def missing(mounts: str = MOUNTS) -> str:
    """Why ``find()`` found no tracefs: mounted but unreadable by this user, or not mounted."""
    points = mount_points(mounts)
    if points:
        return f"tracefs is mounted at {points[0]} but not readable by this user (run as root)"
    return "tracefs is not mounted (mount -t tracefs nodev /sys/kernel/tracing)"


def require(mount: bool = True) -> str:
    path = find(mount=mount)
    if path is None:
        raise TracefsError(missing())
    return path


def event_exists(category: str, event: str, root: str | None = None) -> bool:
    root = root or find()
    return root is not None and os.path.isdir(os.path.join(root, "events", category, event))


def parse_format(text: str) -> dict[str, Field]:
    """Fields of a tracepoint ``format`` file, common_* ones included."""
    fields: dict[str, Field] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("field:"):
            continue
        parts = dict(p.strip().split(":", 1) for p in line.rstrip(";").split(";") if ":" in p)
        decl = parts.get("field", "").strip()
        name = decl.split()[-1].split("[")[0] if decl else ""
        if not name:
            continue
        fields[name] = Field(
            name=name,
            type=decl.rsplit(None, 1)[0] if " " in decl else decl,
            offset=int(parts.get("offset", "0")),
            size=int(parts.get("size", "0")),
            signed=parts.get("signed", "0").strip() == "1",
        )
    return fields


def fields(category: str, event: str, root: str | None = None) -> dict[str, Field]:
    """Fields of ``category:event``; raises TracefsError when tracefs or the event is missing."""
    root = root or require()
    path = os.path.join(root, "events", category, event, "format")
    try:
        with open(path, encoding="utf-8") as f:
            return parse_format(f.read())
    except FileNotFoundError:
        raise TracefsError(f"tracepoint {category}:{event} does not exist on this kernel") from None
    except PermissionError:
        raise TracefsError(f"cannot read {path}: run as root") from None
