"""Where Intervals come from: live BPF, the demo generator, recordings and trace imports."""

from .base import Source, SourceError

__all__ = ["Source", "SourceError"]
