"""The exporter's HTTP side stays up whatever the collector and the clients do."""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
from export_helpers import REPO, ExporterProcess, samples, scrape, value, wait_for
from fake_sources import ListSource

from kvmtop.commands.export import Exporter, host_isa
from kvmtop.errors import SourceError
from kvmtop.exporter.http import parse_listen
from kvmtop.exporter.state import MetricState
from kvmtop.sources.demo import DemoSource

LOOPBACK = ("127.0.0.1", 0)


class FlakySource(ListSource):
    """ListSource whose polls number ``fail`` raise (SourceError, or a bug-like RuntimeError)."""

    def __init__(self, fail: dict[int, Exception]):
        super().__init__()
        self.fail = fail
        self.calls = 0

    def next_interval(self):
        self.calls += 1
        if self.calls in self.fail:
            raise self.fail[self.calls]
        return super().next_interval()


@pytest.fixture
def exporter():
    running: list[Exporter] = []

    def make(source, **kwargs) -> Exporter:
        log = []
        kwargs.setdefault("interval_s", 0.1)
        state = MetricState(forget_after_s=kwargs.pop("state_forget", 300))
        e = Exporter(source, state, LOOPBACK, log=log.append, **kwargs)
        e.lines = log
        running.append(e.start())
        return e

    yield make
    for e in running:
        e.stop()


def test_failed_polls_are_counted_logged_once_and_serving_goes_on(exporter):
    source = FlakySource({2: SourceError("reading the BPF maps failed: Bad file descriptor"),
                          3: SourceError("again"), 5: RuntimeError("a bug")})
    e = exporter(source)
    seen = []

    def polled_past_failures():
        text = scrape(e.url)  # every scrape in between answers
        seen.append(value(text, "kvmtop_collector_poll_failures_total"))
        return value(text, "kvmtop_collector_intervals_total") >= 4 and text

    text = wait_for(polled_past_failures, 20, what="four good polls")
    assert value(text, "kvmtop_collector_poll_failures_total") == 3
    assert seen == sorted(seen)
    # good polls still add up: intervals 1, 2, 3, 4... of ListSource (one per successful call)
    good = int(value(text, "kvmtop_collector_intervals_total"))
    assert value(text, "kvmtop_exits_total", vm="alpha", reason="HLT") == sum(range(1, good + 1))
    # one log line for the first failure; the next ones within the minute are only counted
    assert e.lines == ["poll failed: reading the BPF maps failed: Bad file descriptor"]


def test_slow_and_silent_clients_do_not_block_scrapes(exporter):
    e = exporter(DemoSource(vms=50, vcpus=4), client_timeout_s=5.0)
    wait_for(lambda: value(scrape(e.url), "kvmtop_collector_intervals_total") >= 1, 20, what="a first interval")
    e.feed.interval_s = 60  # no poll competing with the scrapes: only the clients are measured
    host, port = e.server.server_address[:2]
    silent = [socket.create_connection((host, port)) for _ in range(5)]
    for s in silent[:3]:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.connect((host, port))
    reader.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")  # asks for a big response and never reads it
    try:
        t0 = time.monotonic()
        for _ in range(5):
            assert value(scrape(e.url, timeout=5), "kvmtop_info") == 1
        assert time.monotonic() - t0 < 4  # not queued behind the stalled clients (they hold on for 5 s)
    finally:
        for s in silent + [reader]:
            s.close()


def test_connections_beyond_the_cap_are_closed_at_once_then_served_again(exporter):
    e = exporter(ListSource(), max_clients=2, client_timeout_s=0.5)
    host, port = e.server.server_address[:2]
    held = [socket.create_connection((host, port)) for _ in range(2)]
    wait_for(lambda: e.server._slots._value == 0, 5, 0.02, what="both slots taken")
    extra = socket.create_connection((host, port))
    extra.settimeout(5)
    assert extra.recv(100) == b""  # closed without an answer: the cap holds
    assert e.server.rejected == 1
    extra.close()
    for s in held:
        s.close()
    assert wait_for(lambda: scrape(e.url, timeout=2), 10, what="a served scrape after the silent ones timed out")


def test_scrapes_while_vms_come_and_go(exporter):
    e = exporter(DemoSource(vms=8, churn=1), interval_s=0.1, state_forget=0.3)
    errors, bodies = [], []
    stop = threading.Event()

    def scraper():
        while not stop.is_set():
            try:
                bodies.append(samples(scrape(e.url, timeout=5)))
            except Exception as exc:
                errors.append(exc)

    threads = [threading.Thread(target=scraper) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: e.state.version >= 20 and len(bodies) >= 20, 60, what="20 intervals with churn")
    stop.set()
    for t in threads:
        t.join(10)
    assert errors == []
    for s in bodies:  # every exposition is consistent: +Inf == _count for every histogram series
        counts = {tuple(sorted(lab.items())): v for lab, v in s.get("kvmtop_exit_latency_seconds_count", [])}
        for lab, v in s.get("kvmtop_exit_latency_seconds_bucket", []):
            if lab["le"] == "+Inf":
                assert counts[tuple(sorted((k, x) for k, x in lab.items() if k != "le"))] == v
    # a VM replaced every interval and forgotten 0.3 s later: the series stay bounded
    names = {lab["vm"] for lab, _ in bodies[-1]["kvmtop_vm_vcpus"]}
    assert len(names) <= 8 + 5


def test_encoded_once_per_version_whatever_the_number_of_scrapes(exporter):
    e = exporter(ListSource())
    wait_for(lambda: value(scrape(e.url), "kvmtop_collector_intervals_total") >= 1, 10, what="first interval")
    e.feed.interval_s = 60  # no new interval for a minute
    version = e.state.version
    scrape(e.url)
    before = e.app.encodings
    bodies = {scrape(e.url) for _ in range(10)}
    assert e.state.version == version
    assert len(bodies) == 1 and e.app.encodings == before
    gz = urllib.request.urlopen(urllib.request.Request(e.url, headers={"Accept-Encoding": "gzip"}), timeout=5)
    assert gz.headers["Content-Encoding"] == "gzip"
    kvmtop_lines = [ln for ln in bodies.pop().splitlines() if "kvmtop" in ln]  # process_* moved meanwhile
    assert [ln for ln in gzip.decompress(gz.read()).decode().splitlines() if "kvmtop" in ln] == kvmtop_lines


def test_paths_and_methods(exporter):
    e = exporter(ListSource())
    base = e.url[: -len("/metrics")]
    assert b"/metrics" in urllib.request.urlopen(base + "/", timeout=5).read()
    for req, code in ((urllib.request.Request(base + "/nope"), 404),
                      (urllib.request.Request(e.url, data=b"x", method="POST"), 405)):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=5)
        assert err.value.code == code
    head = urllib.request.urlopen(urllib.request.Request(e.url, method="HEAD"), timeout=5)
    assert head.status == 200 and head.read() == b"" and int(head.headers["Content-Length"]) > 0
    om = urllib.request.urlopen(urllib.request.Request(
        e.url, headers={"Accept": "application/openmetrics-text; version=1.0.0"}), timeout=5)
    assert om.headers["Content-Type"].startswith("application/openmetrics-text") and om.read().endswith(b"# EOF\n")


def test_parse_listen():
    assert parse_listen("127.0.0.1:9477") == ("127.0.0.1", 9477)
    assert parse_listen("[::1]:80") == ("::1", 80)
    assert parse_listen("0.0.0.0:0") == ("0.0.0.0", 0)
    for bad in ("9477", ":9477", "::1:80", "host:port", "127.0.0.1:70000"):
        with pytest.raises(ValueError):
            parse_listen(bad)


def test_host_isa_from_cpu_flags(tmp_path):
    for flags, isa in (("fpu vmx sse", "VMX"), ("fpu svm", "SVM"), ("fpu hypervisor", "")):
        (tmp_path / "cpuinfo").write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
        assert host_isa(str(tmp_path / "cpuinfo")) == isa
    assert host_isa(str(tmp_path / "absent")) == ""


# --------------------------------------------------------------------------- the command


def run_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "kvmtop", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_demo_exporter_end_to_end_and_clean_exit_on_sigterm():
    with ExporterProcess("--demo", "-d", "0.2", "--per-vcpu", "--buckets", "fine") as e:
        text = wait_for(lambda: (t := scrape(e.url)) and value(t, "kvmtop_collector_intervals_total") >= 2 and t,
                        30, what="two demo intervals")
        s = samples(text)
        assert s["kvmtop_vcpu_exits_total"]
        assert len({lab["le"] for lab, _ in s["kvmtop_exit_latency_seconds_bucket"]}) == 98
        assert e.url.startswith("http://127.0.0.1:")
    assert e.proc.returncode == 0
    assert "Traceback" not in e.stderr


def test_bad_listen_address_and_busy_port_are_one_line_errors():
    r = run_cli("export", "--demo", "--listen", "nonsense")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "--listen" in r.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        r = run_cli("export", "--demo", "--listen", f"127.0.0.1:{busy.getsockname()[1]}")
    assert r.returncode == 1 and r.stderr.strip().count("\n") == 0
    assert "cannot listen on" in r.stderr and "Traceback" not in r.stderr
