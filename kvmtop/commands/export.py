"""``kvmtop export``: the collector headless, its snapshots served to Prometheus on /metrics.

One more front end over the snapshot stream: a Feed paces the source on a worker thread,
each Snapshot is folded into the cumulative MetricState, and the HTTP side encodes that
state when scraped. A poll that fails is counted (kvmtop_collector_poll_failures_total),
logged, and retried at the next interval; the HTTP side never depends on it.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector

from ..exporter.buckets import LAYOUTS
from ..exporter.families import KvmtopCollector
from ..exporter.http import CLIENT_TIMEOUT_S, MAX_CLIENTS, MetricsApp, MetricsServer, parse_listen, start_server
from ..exporter.state import MetricState
from ..feed import Feed
from .common import NO_IO_SOURCE, live_source, source_counts_io

FAILURE_LOG_EVERY_S = 60.0  # a failing collector logs its first failure, then one line a minute


def host_isa(cpuinfo: str = "/proc/cpuinfo") -> str:
    """VMX or SVM from the CPU flags; empty when neither shows (a nested or PVM host)."""
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return "VMX" if "vmx" in flags else "SVM" if "svm" in flags else ""
    except OSError:
        pass
    return ""


def stderr_log(line: str) -> None:
    print(f"kvmtop export: {line}", file=sys.stderr, flush=True)


class Exporter:
    """Source -> Feed -> MetricState, and the HTTP server; ``start`` then ``stop``."""

    def __init__(self, source, state: MetricState, listen: tuple[str, int], interval_s: float = 1.0,
                 log: Callable[[str], None] = stderr_log, max_clients: int = MAX_CLIENTS,
                 client_timeout_s: float = CLIENT_TIMEOUT_S):
        self.source = source
        self.state = state
        self.listen = listen
        self.log = log
        self.feed = Feed(source, interval_s=interval_s, history_len=2)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(KvmtopCollector(state))
        ProcessCollector(registry=self.registry)
        self.app = MetricsApp(self.registry, lambda: state.version, log)
        self.max_clients = max_clients
        self.client_timeout_s = client_timeout_s
        self.server: MetricsServer | None = None
        self.done = threading.Event()
        self._thread: threading.Thread | None = None
        self._failures_unlogged = 0
        self._next_failure_log = 0.0

    def start(self) -> Exporter:
        """Open the source (SourceError) and bind the server (OSError), then start polling."""
        self.feed.open()
        try:
            self.server = start_server(self.listen, self.app, self.max_clients, self.client_timeout_s)
        except OSError:
            self.feed.close()
            raise
        self._thread = threading.Thread(target=self._poll_loop, name="kvmtop-export-feed", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.feed.stop()
        if self._thread is not None:
            self._thread.join(10)
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.feed.close()
        self.done.set()

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def _poll_loop(self) -> None:
        try:
            while not self.feed.stopped:
                try:
                    snap = self.feed.next_snapshot()
                    if snap is None:
                        break
                    self.state.update(snap, self.feed.io_sample())
                except Exception as e:
                    self.state.poll_failed()
                    self._log_failure(e)
                self.app.prerender()
        finally:
            self.done.set()

    def _log_failure(self, exc: Exception) -> None:
        now = time.monotonic()
        if now < self._next_failure_log:
            self._failures_unlogged += 1
            return
        more = f" ({self._failures_unlogged} more since the last line)" if self._failures_unlogged else ""
        self.log(f"poll failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}{more}")
        self._failures_unlogged = 0
        self._next_failure_log = now + FAILURE_LOG_EVERY_S


def run(args) -> int:
    try:
        listen = parse_listen(args.listen)
    except ValueError as e:
        print(f"kvmtop: --listen: {e}", file=sys.stderr)
        return 2
    source = live_source(args)
    state = MetricState(LAYOUTS[args.buckets], per_vcpu=args.per_vcpu, forget_after_s=args.forget_after,
                        kernel=getattr(source, "kernel", None) or os.uname().release,
                        isa="VMX" if args.demo else host_isa(), io_top=args.io_top if args.io else None)
    exporter = Exporter(source, state, listen, interval_s=args.interval)
    try:
        exporter.start()
    except OSError as e:
        print(f"kvmtop: cannot listen on {args.listen}: {e.strerror or e}", file=sys.stderr)
        return 1

    if args.io and not source_counts_io(source):
        stderr_log(NO_IO_SOURCE)

    def stop(*_signal) -> None:
        exporter.done.set()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        stderr_log(f"serving {exporter.url} ({'demo' if args.demo else 'live'} source, every {args.interval:g} s, "
                   f"{args.buckets} buckets{', per vCPU' if args.per_vcpu else ''}"
                   f"{f', PIO/MMIO accesses of the {args.io_top} busiest addresses per VM' if args.io else ''}, "
                   f"forgetting VMs {args.forget_after:g} s after they exit)")
        exporter.done.wait()
    finally:
        exporter.stop()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 0

