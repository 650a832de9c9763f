"""A churn soak: real test guests started and stopped over and over while the collector (and the
Prometheus exporter) run; every guest must be counted exactly, and nothing may be left behind.

Guests (``kvm_guest.GuestProcess``) take turns under ``names`` distinct names, at most ``alive`` at
once. Each is either short (a known number of PIO/MMIO/HLT exits, then it exits at once: it may
live less than an interval) or looping for a random while, then stopped (it exits mid-interval
after running a while). Each reports the exits it handled; the in-process collector
(``LiveSource``, polled every ``interval_s``) and the exporter (a ``kvmtop export`` child,
scraped at the end) must count exactly those, per process, under the guest's name.

At the end: the BPF maps' per-thread entries of the soak's guests must be gone (``info``,
``pending``, the ``slots`` they held), and so must the collector's own per-process state; the
RSS of the collector's process and of the exporter is measured at the start and the end.
``bench/soak.py`` runs it for minutes and prints the figures; ``tests/test_soak.py`` runs a
short version.
"""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass

from ..sources.collector import LiveSource
from .kvm_guest import GuestProcess

SCRAPE_TIMEOUT_S = 10.0
_SAMPLE = re.compile(r'^kvmtop_userspace_exits_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
_INTERVALS = re.compile(r"^kvmtop_collector_intervals_total (\S+)$", re.M)
EXPORTER_FORGET_S = 60.0  # an exited VM's series stay this long: scraped at least once more meanwhile
SCRAPE_EVERY_S = 5.0


@dataclass
class Guest:
    name: str
    pid: int
    tid: int
    exits: int = 0  # handled, as the guest reported


@dataclass
class SoakResult:
    duration_s: float
    guests: list[Guest]
    counted: dict[int, int]          # pid -> userspace exits the collector counted
    names: dict[int, set[str]]       # pid -> names the collector gave it
    exported: dict[int, int] | None  # pid -> userspace exits the exporter counted (None: no exporter)
    entries_start: dict[str, int]    # BPF map entries (all processes) after opening
    entries_end: dict[str, int]
    leftover: dict[str, int]         # BPF map and collector entries still held for the soak's guests
    rss: list[tuple[float, int, int]]  # (seconds into the soak, collector process, exporter) in KiB
    max_alive: int = 0

    @property
    def expected(self) -> int:
        return sum(g.exits for g in self.guests)

    @property
    def seen(self) -> list[Guest]:
        """Guests the collector counted exactly, under their own name."""
        return [g for g in self.guests if self.counted.get(g.pid) == g.exits and self.names.get(g.pid) == {g.name}]

    @property
    def exported_exact(self) -> list[Guest]:
        exported = self.exported or {}
        return [g for g in self.guests if exported.get(g.pid) == g.exits]

    def _rss_at(self, t: float) -> tuple[int, int]:
        sample = min(self.rss, key=lambda r: abs(r[0] - t))
        return sample[1], sample[2]

    def lines(self) -> list[str]:
        exported = (f", {sum((self.exported or {}).get(g.pid, 0) for g in self.guests)} (exporter; "
                    f"{len(self.exported_exact)}/{len(self.guests)} guests exact)") if self.exported is not None else ""
        out = [
            f"soak: {self.duration_s:.0f} s, {len(self.guests)} guests started and stopped "
            f"({len({g.name for g in self.guests})} names, at most {self.max_alive} alive at once)",
            f"guests seen/expected: {len(self.seen)}/{len(self.guests)} (counted exactly, under their names)",
            f"exits expected/counted: {self.expected}/{sum(self.counted.get(g.pid, 0) for g in self.guests)} "
            f"(collector){exported}",
            "BPF map entries baseline/end (all processes): " + ", ".join(
                f"{k} {self.entries_start[k]}/{self.entries_end[k]}" for k in self.entries_start),
            "left for the soak's guests at the end: " + ", ".join(f"{k} {v}" for k, v in self.leftover.items()),
        ]
        if self.rss:
            points = [0.0, min(60.0, self.duration_s / 5), self.rss[-1][0]]
            at = [self._rss_at(t) for t in points]
            out.append("RSS at start / after " + f"{points[1]:.0f} s / end: collector process "
                       + " / ".join(f"{c / 1024:.1f}" for c, _ in at) + " MiB"
                       + (", exporter " + " / ".join(f"{e / 1024:.1f}" for _, e in at) + " MiB"
                          if self.exported is not None else ""))
        for g in self.guests:
            if g not in self.seen or (self.exported is not None and g not in self.exported_exact):
                out.append(f"  not exact: {g.name} pid {g.pid}: handled {g.exits}, collector "
                           f"{self.counted.get(g.pid, 0)} as {sorted(self.names.get(g.pid, ()))}, exporter "
                           f"{(self.exported or {}).get(g.pid)}")
        return out

    @property
    def ok(self) -> bool:
        exporter_ok = self.exported is None or len(self.exported_exact) == len(self.guests)
        return len(self.seen) == len(self.guests) and exporter_ok and not any(self.leftover.values())


def rss_kib(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class _Poller(threading.Thread):
    """Polls the collector every ``interval_s`` and sums userspace exits per pid (and names)."""

    def __init__(self, src: LiveSource, interval_s: float, exporter: _Exporter | None):
        super().__init__(name="soak-poller", daemon=True)
        self.src, self.interval_s, self.exporter = src, interval_s, exporter
        self.counted: dict[int, int] = {}
        self.names: dict[int, set[str]] = {}
        self.exported: dict[int, int] = {}  # pid -> the exporter's count at its last scrape
        self.rss: list[tuple[float, int, int]] = []  # (time, this process, the exporter) in KiB
        self._next_scrape = 0.0
        self.polls = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.wait(self.interval_s):
                self.poll()
                if time.monotonic() >= self._next_scrape:
                    self._next_scrape = time.monotonic() + SCRAPE_EVERY_S
                    self.scrape()
        except BaseException as e:  # reported by the soak
            self.error = e

    def scrape(self) -> None:
        """The exporter's counts (series of exited VMs stay EXPORTER_FORGET_S), and both RSS."""
        exp = self.exporter
        if exp is not None:
            self.exported.update(exp.userspace_exits())
        self.rss.append((time.monotonic(), rss_kib(), rss_kib(exp.proc.pid) if exp is not None else 0))

    def poll(self) -> None:
        iv = self.src.next_interval()
        for t in iv.threads:
            n = sum(s.count + s.lost for s in t.userspace.values())
            if n:
                self.counted[t.pid] = self.counted.get(t.pid, 0) + n
                ident = iv.vms.get(t.pid)
                self.names.setdefault(t.pid, set()).add(ident.name if ident else "")
        self.polls += 1

    def stop(self) -> None:
        self._halt.set()
        self.join()


class _Exporter:
    """A ``kvmtop export`` child on a free loopback port, polling every ``interval_s``."""

    def __init__(self, interval_s: float, forget_after_s: float):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(); a file: it never blocks
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kvmtop", "export", "--listen", f"127.0.0.1:{self.port}",
             "-d", f"{interval_s:g}", "--forget-after", f"{forget_after_s:g}"],
            stdout=subprocess.DEVNULL, stderr=self.log)

    def scrape(self) -> str:
        url = f"http://127.0.0.1:{self.port}/metrics"
        with urllib.request.urlopen(url, timeout=SCRAPE_TIMEOUT_S) as r:
            return r.read().decode()

    def intervals(self) -> int:
        m = _INTERVALS.search(self.scrape())
        return int(float(m[1])) if m else 0

    def wait_polls(self, n: int, timeout: float = 180.0) -> None:
        """Until it has polled ``n`` times (the first: its BPF program is attached)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"kvmtop export exited: {self.log.read().decode(errors='replace').strip()}")
            try:
                if self.intervals() >= n:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"kvmtop export did not poll {n} times in time")

    def userspace_exits(self) -> dict[int, int]:
        """Cumulative userspace exits per pid, of the VMs it still holds series for."""
        out: dict[int, int] = {}
        for line in self.scrape().splitlines():
            m = _SAMPLE.match(line)
            if m:
                labels = dict(_LABEL.findall(m["labels"]))
                pid = int(labels["pid"])
                out[pid] = out.get(pid, 0) + int(float(m["value"]))
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


MAPS = ("info", "pending", "slots")


def _maps(footprint: dict[str, int]) -> dict[str, int]:
    return {k: footprint[k] for k in MAPS}


def run_soak(guests: int = 50, duration_s: float = 300.0, alive: int = 4, interval_s: float = 1.0,
             names: int = 50, exporter: bool = True, seed: int = 8, log=None) -> SoakResult:
    """Start and stop guests until ``duration_s`` has passed and at least ``guests`` have run."""
    rnd = random.Random(seed)
    src = LiveSource()
    src.open()
    exp = _Exporter(interval_s, EXPORTER_FORGET_S) if exporter else None
    poller = _Poller(src, interval_s, exp)
    done: list[Guest] = []
    running: list[tuple[GuestProcess, float]] = []  # looping guests and when to stop them
    max_alive = 0
    try:
        if exp is not None:
            exp.wait_polls(1)
        poller.poll()
        entries_start = _maps(src.footprint())
        t0 = time.monotonic()
        poller.scrape()
        poller.start()
        started = 0
        while time.monotonic() - t0 < duration_s or started < guests or running:
            now = time.monotonic()
            for g, until in [r for r in running if r[1] <= now]:  # loopers whose time is up
                running.remove((g, until))
                done.append(Guest(g.name, g.pid, g.tid, sum(g.stop().values())))
                g.close()
            want_more = now - t0 < duration_s or started < guests
            if want_more and len(running) < alive:
                max_alive = max(max_alive, len(running) + 1)
                name = f"soak-{started % names:02d}"
                started += 1
                if rnd.random() < 0.5:  # short: its work, then exit at once
                    g = GuestProcess(name, pio=rnd.randint(20, 400), mmio=rnd.randint(0, 5), hlt=rnd.randint(0, 3),
                                     exit_when_done=True).start()
                    g.go()
                    exits = g.wait_done()
                    g.close()
                    done.append(Guest(name, g.pid, g.tid, sum(exits.values())))
                else:  # a while in a loop, then stopped
                    g = GuestProcess(name, pio=rnd.randint(1, 8), mmio=rnd.randint(0, 1), loop=True).start()
                    g.go()
                    running.append((g, time.monotonic() + rnd.uniform(0.2, 3.0)))
                if log and started % 25 == 0:
                    log(f"  {started} guests started, {time.monotonic() - t0:.0f} s")
            elif running:
                time.sleep(min(0.05, max(0.0, min(u for _, u in running) - time.monotonic())))
        duration = time.monotonic() - t0
        pids = {g.pid for g in done}
        # every guest has exited: the next polls see their last counts and free their state
        deadline = time.monotonic() + max(15.0, 10 * interval_s) + src.scan_every_s
        target = poller.polls + 3
        while time.monotonic() < deadline and (poller.polls < target or any(src.footprint(pids).values())):
            time.sleep(interval_s / 2)
        poller.stop()
        if poller.error is not None:
            raise poller.error
        if exp is not None:  # three more polls of its own, then its last counts
            exp.wait_polls(exp.intervals() + 3)
        poller.scrape()
        rss = [(t - t0, c, e) for t, c, e in poller.rss]
        return SoakResult(duration, done, poller.counted, poller.names, poller.exported if exp else None,
                          entries_start, _maps(src.footprint()), src.footprint(pids), rss, max_alive)
    finally:
        if poller.is_alive():
            poller.stop()
        for g, _ in running:
            g.close()
        if exp is not None:
            exp.close()
        src.close()


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Churn soak: real test guests started and stopped under the "
                                            "collector and the exporter (needs root and /dev/kvm).")
    p.add_argument("--guests", type=int, default=50, help="at least this many guests (default 50)")
    p.add_argument("--duration", type=float, default=300.0, help="at least this many seconds (default 300)")
    p.add_argument("--alive", type=int, default=4, help="guests alive at once, at most (default 4)")
    p.add_argument("--interval", type=float, default=1.0, help="collector and exporter interval (default 1 s)")
    p.add_argument("--no-exporter", action="store_true")
    args = p.parse_args(argv)
    result = run_soak(args.guests, args.duration, args.alive, args.interval, exporter=not args.no_exporter,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
    for line in result.lines():
        print(line)
    print("result: every guest counted exactly, nothing left behind" if result.ok else "result: FAILED")
    return 0 if result.ok else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
