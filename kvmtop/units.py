"""Human-readable numbers shared by the text tables and the dashboard (no Textual here)."""

from __future__ import annotations

import time

_Y2001 = 978_307_200  # no trace clock (seconds since boot) gets this far


def rate(value: float) -> str:
    """Events per second, 5 characters or so: ``0``, ``12.5``, ``950``, ``12.3k``, ``4.56M``."""
    if value <= 0:
        return "0"
    if value < 10:
        return f"{value:.1f}".rstrip("0").rstrip(".") if value < 1 else f"{value:.1f}"
    if value < 1000:
        return f"{value:.0f}"
    for unit, div in (("k", 1e3), ("M", 1e6), ("G", 1e9)):
        if value < div * 1000:
            v = value / div
            return f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{value / 1e12:.0f}T"


def count(value: int) -> str:
    """An event count: exact below 10,000 (``9,876``), then ``12.3k``, ``4.56M``."""
    return f"{value:,}" if value < 10_000 else rate(value)


def duration(ns: float) -> str:
    """A duration in ns as ``850ns``, ``12.3µs``, ``4.56ms``, ``1.23s``."""
    if ns <= 0:
        return "0"
    if ns < 1000:
        return f"{ns:.0f}ns"
    for unit, div in (("µs", 1e3), ("ms", 1e6)):
        if ns < div * 1000:
            v = ns / div
            return f"{v:.2f}{unit}" if v < 10 else f"{v:.1f}{unit}" if v < 100 else f"{v:.0f}{unit}"
    return f"{ns / 1e9:.2f}s"


def share(fraction: float) -> str:
    if fraction <= 0:
        return "0%"
    if fraction < 0.01:
        return "<1%"
    return f"{fraction * 100:.0f}%"


def timestamp(t: float) -> str:
    """Local wall-clock time of ``t`` (Unix seconds); a replayed capture's times are on its
    trace clock (seconds since boot, which never reach 2001) and are shown as such."""
    if t < _Y2001:
        return f"t={t:.6f}s (trace clock)"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
