"""The exporter's cost: CPU per interval and per scrape, scrape latency, and a concurrent load.

The exporter runs in a child process (``--serve``) over the demo source with N VMs x 8 vCPUs,
so its CPU (from /proc/PID/stat) is measured apart from the scraping client. Every scrape
sends Prometheus's own Accept and Accept-Encoding headers. For each size:

* interval: exporter CPU per interval (snapshot build, cumulative update, encoding the
  format a scraper asked for), measured over intervals of 1 s with one scraper;
* scrape: latency (median, p99) of back-to-back scrapes and exporter CPU per scrape;
* CPU at 1 scrape / 15 s with the default interval (15 s): 1 interval + 1 scrape per 15 s.

Then 20 concurrent scrapers on loopback for 30 s at 100 VMs, intervals of 1 s: every scrape
must succeed. Targets: scrape p99 <= 100 ms and <= 2% of one CPU at 1 scrape / 15 s for 100
VMs; zero failed scrapes. Exit status 1 when a target is missed.

    python bench/bench_export.py [--sizes 10 100 1000] [--load-s 30] [--scrapers 20]
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

from kvmtop.exporter import DEFAULT_INTERVAL_S

ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")  # what Prometheus 2.x sends
HEADERS = {"Accept": ACCEPT, "Accept-Encoding": "gzip"}
TICK = os.sysconf("SC_CLK_TCK")
VCPUS = 8
SCRAPE_EVERY_S = 15.0
TARGET_P99_MS = 100.0
TARGET_CPU_PCT = 2.0


def serve(vms: int, interval_s: float) -> None:
    """Child: an exporter over DemoSource(vms x 8 vCPUs) on a free loopback port."""
    from kvmtop.commands.export import Exporter
    from kvmtop.exporter.state import MetricState
    from kvmtop.sources.demo import DemoSource

    e = Exporter(DemoSource(vms=vms, vcpus=VCPUS), MetricState(kernel="demo", isa="VMX"), ("127.0.0.1", 0),
                 interval_s=interval_s, log=lambda line: print(line, file=sys.stderr, flush=True)).start()
    print(e.url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes stdin
    finally:
        e.stop()


class Child:
    def __init__(self, vms: int, interval_s: float):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", str(vms), str(interval_s)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(60)


def scrape(url: str, timeout: float = 30.0, headers: dict = HEADERS) -> tuple[float, bytes]:
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout) as r:
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"HTTP {r.status}")
    return time.perf_counter() - t0, body


def gauge(body: bytes, name: str) -> int:
    text = gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body
    for line in text.decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def intervals_done(url: str, headers: dict = HEADERS) -> int:
    return gauge(scrape(url, headers=headers)[1], "kvmtop_collector_intervals_total")


def wait_intervals(url: str, n: int, timeout: float, headers: dict = HEADERS) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = intervals_done(url, headers)
        if done >= n:
            return done
        time.sleep(0.2)
    raise SystemExit(f"the exporter did not reach {n} intervals in {timeout:.0f} s")


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, int(round(q * len(s) + 0.5)) - 1))]


def measure(vms: int, scrapes: int) -> dict:
    out: dict = {"vms": vms}
    # per interval: 1 s intervals, Prometheus's format kept warm by a few scrapes per second
    child = Child(vms, 1.0)
    try:
        wait_intervals(child.url, 2, 300)
        n0, c0 = intervals_done(child.url), child.cpu_s()
        n1 = wait_intervals(child.url, n0 + (8 if vms < 1000 else 4), 600)
        c1 = child.cpu_s()
        out["interval_ms"] = (c1 - c0) / (n1 - n0) * 1000
        out["rss_mb"] = child.rss_mb()
    finally:
        child.close()
    # per scrape: no interval during the run (60 s); the first scrape encodes, the others reuse it
    child = Child(vms, 60.0)
    try:
        wait_intervals(child.url, 1, 300, headers={})  # another format: Prometheus's stays cold
        first, body = scrape(child.url)
        out["first_ms"], out["bytes_gz"] = first * 1000, len(body)
        out["series"] = gauge(body, "kvmtop_exporter_series")
        lat = []
        c0 = child.cpu_s()
        for _ in range(scrapes):
            lat.append(scrape(child.url)[0] * 1000)
        out["scrape_cpu_ms"] = (child.cpu_s() - c0) / scrapes * 1000
    finally:
        child.close()
    out["p50_ms"], out["p99_ms"] = statistics.median(lat), pct(lat, 0.99)
    per_15s = out["interval_ms"] * SCRAPE_EVERY_S / DEFAULT_INTERVAL_S + out["scrape_cpu_ms"]
    out["cpu_pct"] = per_15s / (SCRAPE_EVERY_S * 1000) * 100
    return out


def load(vms: int, scrapers: int, seconds: float) -> dict:
    child = Child(vms, 1.0)
    lat: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    try:
        wait_intervals(child.url, 1, 300)
        stop = time.monotonic() + seconds
        c0 = child.cpu_s()

        def run():
            while time.monotonic() < stop:
                try:
                    dt = scrape(child.url, timeout=10)[0]
                    with lock:
                        lat.append(dt * 1000)
                except Exception as e:
                    with lock:
                        failures.append(f"{type(e).__name__}: {e}")

        threads = [threading.Thread(target=run) for _ in range(scrapers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = child.cpu_s() - c0
    finally:
        child.close()
    return {"scrapes": len(lat), "failures": failures, "p50_ms": statistics.median(lat) if lat else 0,
            "p99_ms": pct(lat, 0.99) if lat else 0, "cpu_pct": cpu / seconds * 100}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="VMs (x 8 vCPUs)")
    p.add_argument("--scrapes", type=int, default=50)
    p.add_argument("--load-s", type=float, default=30.0)
    p.add_argument("--scrapers", type=int, default=20)
    p.add_argument("--load-vms", type=int, default=100)
    args = p.parse_args(argv)

    ok = True
    print(f"{'VMs x 8':>8} {'series':>8} {'gzip KB':>8} {'RSS MB':>7} {'interval CPU':>13} {'1st scrape':>11} "
          f"{'scrape p50':>11} {'p99':>8} {'CPU/scrape':>11} {'CPU @15s':>9}")
    for vms in args.sizes:
        m = measure(vms, args.scrapes if vms < 1000 else max(10, args.scrapes // 5))
        print(f"{vms:>8} {m['series']:>8} {m['bytes_gz'] / 1024:>8.0f} {m['rss_mb']:>7.0f} "
              f"{m['interval_ms']:>10.0f} ms "
              f"{m['first_ms']:>8.0f} ms {m['p50_ms']:>8.1f} ms {m['p99_ms']:>5.1f} ms {m['scrape_cpu_ms']:>8.1f} ms "
              f"{m['cpu_pct']:>8.2f}%")
        if vms == 100:
            ok_lat, ok_cpu = m["p99_ms"] <= TARGET_P99_MS, m["cpu_pct"] <= TARGET_CPU_PCT
            print(f"  100 VMs: scrape p99 {m['p99_ms']:.1f} ms (target <= {TARGET_P99_MS:.0f}: "
                  f"{'OK' if ok_lat else 'MISSED'}); CPU at 1 scrape/15 s with -d 15: {m['cpu_pct']:.2f}% "
                  f"(target <= {TARGET_CPU_PCT:.0f}%: {'OK' if ok_cpu else 'MISSED'})")
            ok = ok and ok_lat and ok_cpu
    r = load(args.load_vms, args.scrapers, args.load_s)
    print(f"load: {args.scrapers} scrapers x {args.load_s:.0f} s at {args.load_vms} VMs x 8, 1 s intervals: "
          f"{r['scrapes']} scrapes, {len(r['failures'])} failed, p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
          f"exporter CPU {r['cpu_pct']:.0f}% of one core")
    for f in sorted(set(r["failures"]))[:5]:
        print(f"  failure: {f}")
    ok = ok and not r["failures"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
