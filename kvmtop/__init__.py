"""kvmtop: live dashboard of what KVM guests cost the host."""

__version__ = "0.1.0"
