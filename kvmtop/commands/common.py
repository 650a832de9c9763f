"""The source that the live front ends (dashboard, stream, record, export) build from the same options."""

from __future__ import annotations

from ..errors import SourceError
from ..identity import vm_pid_problem
from ..selection import NamePattern
from ..sources.base import Source
from ..sources.selected import SelectedSource


def live_source(args) -> Source:
    """The demo generator with ``--demo`` (``--vms``, ``--vcpus``, ``--no-kvm-exit``), else the
    BPF collector (``--pid``, ``--max-keys``); ``-g`` narrows either to the guests it names."""
    if args.demo:
        from ..sources.demo import DemoSource
        from ..sources.demo_io import DemoIoSource

        demo = DemoSource(vms=args.vms or 6, vcpus=args.vcpus, exits=not args.no_kvm_exit)
        return selected(DemoIoSource(demo, io=args.io), args)
    if args.pid is not None:
        problem = vm_pid_problem(args.pid)
        if problem:
            raise SourceError(f"-p {args.pid}: {problem}")
    from ..sources.collector import LiveSource  # imports numpy and the BPF side: only when live

    return selected(LiveSource(pid=args.pid, max_keys=args.max_keys, io=args.io), args)


#: Said (stderr, the exporter's log) when ``--io`` meets an opened source that cannot count
#: PIO/MMIO accesses: the option would otherwise do nothing, silently.
NO_IO_SOURCE = "--io: no PIO/MMIO source here (tracepoints kvm:kvm_pio, kvm:kvm_mmio): accesses not counted"


def source_counts_io(source: Source) -> bool:
    """Whether an opened source can count PIO/MMIO accesses (else ``--io`` says NO_IO_SOURCE)."""
    return bool(getattr(source, "io_supported", False))


def selected(source: Source, args) -> Source:
    """``source`` narrowed by ``-g NAME`` when given."""
    pattern = NamePattern.parse(getattr(args, "guest", None))
    return source if pattern is None else SelectedSource(source, pattern)


def selection(args) -> list[tuple[str, str]]:
    """How the data was narrowed, for the dashboard's header."""
    out = []
    if getattr(args, "pid", None):
        out.append(("PID", str(args.pid)))
    if getattr(args, "guest", None):
        out.append(("Guests", args.guest))
    return out

