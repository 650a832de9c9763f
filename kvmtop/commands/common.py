"""The source that the live front ends (dashboard, stream, record, export) build from the same options."""

from __future__ import annotations

from ..errors import SourceError
from ..identity import vm_pid_problem
from ..sources.base import Source


def live_source(args) -> Source:
    """The demo generator with ``--demo``, else the BPF collector (``--pid``, ``--max-keys``)."""
    if args.demo:
        from ..sources.demo import DemoSource

        return DemoSource()
    if args.pid is not None:
        problem = vm_pid_problem(args.pid)
        if problem:
            raise SourceError(f"-p {args.pid}: {problem}")
    from ..sources.collector import LiveSource  # imports numpy and the BPF side: only when live

    return LiveSource(pid=args.pid, max_keys=args.max_keys)

