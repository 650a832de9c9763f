"""Small deterministic sources for tests of the feed, text and CLI."""

from kvmtop.model import Interval, Latency, Stat, ThreadInterval, VmIdentity


def make_interval(n: int, dt: float = 1.0) -> Interval:
    """Interval n: VM 10 has n HLT and 2n EPT_VIOLATION exits; VM 20 has n IO round trips."""
    a = ThreadInterval(pid=10, tid=11, reasons={
        (1, 12): Stat(n, Latency.from_values([40_000 + i for i in range(n)])),
        (1, 48): Stat(2 * n, Latency.from_values([800] * (2 * n))),
    }, requests={14: n})
    b = ThreadInterval(pid=20, tid=21, userspace={2: Stat(n, Latency.from_values([5_000] * n))})
    vms = {10: VmIdentity(10, "alpha", 1, {11: 0}), 20: VmIdentity(20, "[b]beta[/b]\x1b[2J", 1, {21: 0})}
    return Interval(time=1_700_000_000.0 + n, interval_s=dt, threads=(a, b), vms=vms, kernel="6.18.0")


class ListSource:
    """Paced source that hands out make_interval(1), (2), …"""

    name = "test"
    paced = True

    def __init__(self):
        self.n = 0
        self.opened = self.closed = False
        self.resets = 0

    def open(self):
        self.opened = True

    def next_interval(self):
        self.n += 1
        return make_interval(self.n)

    def reset(self):
        self.resets += 1

    def close(self):
        self.closed = True


class RecordedList:
    name = "recorded"
    paced = False

    def __init__(self, count: int):
        self.intervals = [make_interval(i + 1) for i in range(count)]

    def open(self):
        pass

    def next_interval(self):
        return None

    def reset(self):
        pass

    def close(self):
        pass
