"""Bounds of the update interval: the command line refuses values outside them, the Feed
clamps to them."""

from __future__ import annotations

MIN_INTERVAL = 0.1
MAX_INTERVAL = 60.0


def clamp_interval(seconds: float) -> float:
    return min(MAX_INTERVAL, max(MIN_INTERVAL, float(seconds)))
