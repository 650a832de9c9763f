"""Bounds of the update interval, a recording's duration and the replay speed: the command
line refuses values outside them, the Feed clamps to them."""

from __future__ import annotations

MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0
MAX_DURATION = 366 * 86400.0  # record --duration: a year at most
MIN_SPEED, MAX_SPEED = 0.01, 1000.0  # replay --speed: 100 s to 1 ms per recorded second


def clamp_interval(seconds: float) -> float:
    return min(MAX_INTERVAL, max(MIN_INTERVAL, float(seconds)))
