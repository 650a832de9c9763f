"""Where Intervals come from: live BPF (collector), the demo generator, recordings and
trace imports (adapters of ``kvmtop.offline``'s readers)."""

from .base import Source

__all__ = ["Source"]
