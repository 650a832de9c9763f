"""Human-readable numbers shared by the text tables and the dashboard."""

from __future__ import annotations


def ns(value: float | int | None) -> str:
    """850ns, 12.3µs, 4.56ms, 1.23s."""
    if value is None:
        return "—"
    v = float(value)
    if v < 1_000:
        return f"{v:.0f}ns"
    if v < 1_000_000:
        return f"{v / 1e3:.3g}µs" if v < 100_000 else f"{v / 1e3:.0f}µs"
    if v < 1_000_000_000:
        return f"{v / 1e6:.3g}ms" if v < 100_000_000 else f"{v / 1e6:.0f}ms"
    return f"{v / 1e9:.3g}s"


def rate(value: float | None) -> str:
    """Events per second: 0, 12.5, 980, 12.3k, 4.5M."""
    if value is None:
        return "—"
    v = float(value)
    if v == 0:
        return "0"
    if v < 10:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    if v < 1_000:
        return f"{v:.0f}"
    if v < 1_000_000:
        return f"{v / 1e3:.3g}k" if v < 100_000 else f"{v / 1e3:.0f}k"
    return f"{v / 1e6:.3g}M"


def share(value: float) -> str:
    return f"{value * 100:.1f}%"
