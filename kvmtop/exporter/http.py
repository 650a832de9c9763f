"""The HTTP side: /metrics from a prometheus_client registry, encoded once per state version.

The state changes once per interval. Each format that scrapers asked for lately (text or
OpenMetrics, gzipped or not) is encoded once per version, right after the feed folds an
interval in (``prerender``), so a scrape only copies bytes; while that encoding runs, a
scrape gets the previous version's bytes instead of waiting. One thread per connection,
a socket timeout for slow or silent clients and a cap on connections served at once keep
the server up whatever the clients and the collector do.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
from collections.abc import Callable
from socketserver import TCPServer, ThreadingMixIn
from typing import cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client.exposition import choose_encoder, gzip_accepted
from prometheus_client.registry import CollectorRegistry

CLIENT_TIMEOUT_S = 10.0
MAX_CLIENTS = 64
WARM_S = 300.0  # a format nobody asked for in this long is no longer encoded ahead of time
MAX_AGE_S = 60.0  # process_* metrics move even when no interval arrives (a stuck collector)

INDEX = b"""<html><head><title>kvmtop exporter</title></head>
<body><h1>kvmtop exporter</h1><p><a href="/metrics">/metrics</a></p></body></html>
"""


def encoder_for(accept: str):
    """(encode, content type): the text format unless the client takes OpenMetrics only.

    Prometheus lists both; the text format is the cheaper of the two to encode and carries
    the same samples (kvmtop has no exemplars or created timestamps to lose).
    """
    if "application/openmetrics-text" in accept and "text/plain" not in accept:
        return choose_encoder(accept)
    return choose_encoder("")


class MetricsApp:
    """WSGI app: ``/metrics``, and ``/`` a link to it."""

    def __init__(self, registry: CollectorRegistry, version: Callable[[], int],
                 log: Callable[[str], None] = lambda line: None, clock: Callable[[], float] = time.monotonic):
        self.registry = registry
        self.version = version
        self.log = log
        self.clock = clock
        self._cache: dict[tuple[str, bool], tuple[int, float, bytes]] = {}  # (type, gzip) -> version, when, body
        self._wanted: dict[tuple[str, bool], tuple[Callable, float]] = {}  # (type, gzip) -> encoder, last asked
        self._render_lock = threading.Lock()
        self.encodings = 0

    def __call__(self, environ, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "/")
        if method not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"use GET\n", [("Allow", "GET, HEAD")])
        if path == "/":
            return _reply(start_response, "200 OK", INDEX, [("Content-Type", "text/html; charset=utf-8")])
        if path != "/metrics":
            return _reply(start_response, "404 Not Found", b"see /metrics\n")
        encoder, content_type = encoder_for(environ.get("HTTP_ACCEPT", ""))
        key = (content_type, gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")))
        self._wanted[key] = (encoder, self.clock())
        try:
            body = self._body(key, encoder)
        except Exception as e:
            self.log(f"encoding /metrics failed: {type(e).__name__}: {e}")
            return _reply(start_response, "500 Internal Server Error", b"encoding the metrics failed\n")
        headers = [("Content-Type", content_type)] + ([("Content-Encoding", "gzip")] if key[1] else [])
        return _reply(start_response, "200 OK", b"" if method == "HEAD" else body, headers, len(body))

    def prerender(self) -> None:
        """Encode the formats asked for lately, for the current version (the feed thread calls this)."""
        now = self.clock()
        for key, (encoder, asked) in list(self._wanted.items()):
            if now - asked > WARM_S:
                self._wanted.pop(key, None)
                continue
            with self._render_lock:
                if self._fresh(key) is None:
                    try:
                        self._render(key, encoder)
                    except Exception as e:
                        self.log(f"encoding /metrics failed: {type(e).__name__}: {e}")

    def _body(self, key, encoder) -> bytes:
        body = self._fresh(key)
        if body is not None:
            return body
        if not self._render_lock.acquire(blocking=False):
            stale = self._cache.get(key)
            if stale is not None and self.clock() - stale[1] < MAX_AGE_S:
                return stale[2]  # the next version is being encoded: this one is one interval old
            self._render_lock.acquire()
        try:
            return self._fresh(key) or self._render(key, encoder)
        finally:
            self._render_lock.release()

    def _render(self, key, encoder) -> bytes:
        version = self.version()
        body = encoder(self.registry)
        if key[1]:
            body = gzip.compress(body, compresslevel=5)
        self._cache[key] = (version, self.clock(), body)
        self.encodings += 1
        return body

    def _fresh(self, key) -> bytes | None:
        hit = self._cache.get(key)
        if hit is not None and hit[0] == self.version() and self.clock() - hit[1] < MAX_AGE_S:
            return hit[2]
        return None


def _reply(start_response, status: str, body: bytes, headers=(), length: int | None = None):
    start_response(status, [*headers, ("Content-Length", str(len(body) if length is None else length))])
    return [body]


class _Handler(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT_S  # a slow or silent client gives its thread back after this

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # no access log: Prometheus scrapes every few seconds


class MetricsServer(ThreadingMixIn, WSGIServer):
    """Thread per connection, at most ``max_clients`` at once (the rest are closed at once)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # socketserver's 5 makes concurrent scrapers wait for SYN retries (1 s)

    def __init__(self, address: tuple[str, int], app, max_clients: int = MAX_CLIENTS,
                 client_timeout_s: float = CLIENT_TIMEOUT_S):
        self.address_family = _family(address[0])
        self._slots = threading.BoundedSemaphore(max_clients)
        self.rejected = 0
        handler = type("Handler", (_Handler,), {"timeout": client_timeout_s})
        super().__init__(address, handler)
        self.set_app(app)

    def server_bind(self):
        # HTTPServer.server_bind looks the host's FQDN up (DNS); the WSGI environ needs no more than this.
        TCPServer.server_bind(self)
        host, port = self._address()
        self.server_name, self.server_port = host, port
        self.setup_environ()

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.rejected += 1
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        pass  # a client that went away mid-response is not the server's problem

    def _address(self) -> tuple[str, int]:
        """(host, port) bound: an AF_INET/AF_INET6 address, whose host is text."""
        host, port = self.server_address[:2]
        return cast(str, host), int(port)

    @property
    def url(self) -> str:
        host, port = self._address()
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT`` (IPv6 in brackets: ``[::1]:9477``) -> (host, port); ValueError says why."""
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"not ADDR:PORT: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"put an IPv6 address in brackets: [{host}]:{port}")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"not a port number: {port!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"port out of range: {number}")
    return host, number


def start_server(address: tuple[str, int], app, max_clients: int = MAX_CLIENTS,
                 client_timeout_s: float = CLIENT_TIMEOUT_S) -> MetricsServer:
    """Bind and serve on a daemon thread; OSError when the address cannot be bound."""
    server = MetricsServer(address, app, max_clients, client_timeout_s)
    threading.Thread(target=server.serve_forever, name="kvmtop-http", daemon=True).start()
    return server
