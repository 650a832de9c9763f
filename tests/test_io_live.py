"""PIO ports and MMIO addresses, counted in the kernel while someone looks (or with --io):
the real test guest's accesses, exactly, and no probe attached otherwise."""

from __future__ import annotations

import os

import pytest

from kvmtop.bpf.program import IO_EVENTS
from kvmtop.io_stats import MMIO, PIO, IoAccess, IoSample, summed
from kvmtop.testing.kvm_guest import DONE_PORT, MMIO_ADDR, PIO_PORT

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live source needs root")


def test_io_stats_sum_threads_and_sort_by_count():
    sample = IoSample(2.0, (
        IoAccess(10, 11, PIO, True, 0x3F0, 30), IoAccess(10, 12, PIO, True, 0x3F0, 10),
        IoAccess(10, 12, MMIO, False, 0xFEB00000, 50), IoAccess(20, 21, PIO, True, 0x3F0, 99)))
    stats = sample.stats(10)
    assert [(s.space, s.direction, s.address, s.count, s.per_s) for s in stats] == [
        ("MMIO", "read", "0xfeb00000", 50, 25.0), ("PIO", "write", "0x03f0", 40, 20.0)]
    assert [s.count for s in sample.stats(10, tid=12)] == [50, 10]
    assert summed((), 1.0) == []


@pytest.mark.bpf
@needs_root
@pytest.mark.parametrize("pid_filter", [None, 10])
def test_io_handler_counts_each_access_by_thread_port_and_direction(pid_filter):
    from kvmtop.bpf import maps
    from kvmtop.bpf.program import IO_MMIO, IO_PIO
    from kvmtop.testing.bpf_testrun import TestProgram

    with TestProgram(pid=pid_filter) as tp:
        for _ in range(3):
            tp.io(10, 11, IO_PIO, True, 0x3F0)
        tp.io(10, 11, IO_PIO, False, 0x3F0)   # the other direction: a row of its own
        tp.io(10, 12, IO_MMIO, True, 0xFEB0_0000)
        tp.io(20, 21, IO_PIO, True, 0x3F0)    # another VM (left out by -p 10)
        reader = maps.HashReader(tp.program.map_fd("io"), maps.IO_KEY, maps.COUNT, 1024)
        keys, counts = reader.drain()
        fields = zip(*(keys[f].tolist() for f in ("pid", "tid", "space", "write", "addr")), counts.tolist())
        got = {(pid, tid, space, write, addr): n for pid, tid, space, write, addr, n in fields}
        expected = {(10, 11, IO_PIO, 1, 0x3F0): 3, (10, 11, IO_PIO, 0, 0x3F0): 1, (10, 12, IO_MMIO, 1, 0xFEB0_0000): 1}
        if pid_filter is None:
            expected[(20, 21, IO_PIO, 1, 0x3F0)] = 1
        assert got == expected
        assert reader.drain()[0].size == 0  # drained: the next interval starts at zero


def attached(src) -> set[str]:
    return {e for e in IO_EVENTS if e.encode() in src.program.bpf.tracepoint_fds}


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_guest_io_is_counted_exactly_while_wanted_and_costs_nothing_otherwise(live, kvm_guest):
    src = live()
    assert src.io_supported
    assert attached(src) == set()  # nobody looks: no I/O probe
    src.next_interval()
    assert src.last_io is None

    src.want_io(True)  # a screen that shows I/O opened
    src.next_interval()
    assert attached(src) == set(IO_EVENTS)
    g = kvm_guest("kvmtop-io", pio=40, mmio=6)
    g.go()
    g.wait_done()
    src.next_interval()
    sample = src.last_io
    got = {(s.space, s.write, s.addr): s.count for s in sample.stats(g.pid)}
    assert got == {(PIO, True, PIO_PORT): 40, (PIO, True, DONE_PORT): 1, (MMIO, True, MMIO_ADDR): 6}
    assert sample.drops == 0 and {a.tid for a in sample.accesses if a.pid == g.pid} == {g.tid}

    src.want_io(False)  # the screen closed
    src.next_interval()
    assert attached(src) == set() and src.last_io is None
    h = kvm_guest("kvmtop-io-2", pio=5)
    h.go()
    h.wait_done()
    src.want_io(True)
    src.next_interval()
    assert src.last_io.stats(h.pid) == []  # nothing was counted while detached


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
def test_io_option_keeps_the_probes_attached(live, kvm_guest):
    src = live(io=True)
    assert attached(src) == set(IO_EVENTS)
    src.want_io(False)  # a screen closing does not detach what --io asked for
    src.next_interval()
    assert attached(src) == set(IO_EVENTS)
    g = kvm_guest("kvmtop-io-3", pio=3)
    g.go()
    g.wait_done()
    src.next_interval()
    assert {(s.addr, s.count) for s in src.last_io.stats(g.pid)} == {(PIO_PORT, 3), (DONE_PORT, 1)}
    src.next_interval()  # each interval has its own accesses: nothing new, nothing shown
    assert src.last_io.stats(g.pid) == []


class IoDemo:
    """The demo with a live source's I/O side: counts accesses only while wanted."""

    name, paced = "io-demo", True

    def __init__(self) -> None:
        from kvmtop.sources.demo import DemoSource

        self.demo = DemoSource(vms=2)
        self.io_supported = True
        self.wanted: list[bool] = []
        self.last_io: IoSample | None = None

    def open(self): ...
    def close(self): ...
    def reset(self): ...

    def want_io(self, on: bool) -> None:
        self.wanted.append(on)

    def next_interval(self):
        iv = self.demo.next_interval()
        on = bool(self.wanted and self.wanted[-1])
        self.last_io = IoSample(1.0, tuple(IoAccess(t.pid, t.tid, PIO, True, 0x3F0 + i, 10 * (i + 1))
                                           for i, t in enumerate(iv.threads))) if on else None
        return iv


@pytest.mark.ui
async def test_guest_screen_asks_for_io_while_open_and_shows_the_guests_ports():
    from ui_helpers import first_snapshot, region_text, wait_for

    from kvmtop.stepped_feed import SteppedFeed
    from kvmtop.ui.app import make_app
    from kvmtop.ui.screens.guest import GuestScreen
    from kvmtop.ui.screens.main import MainScreen
    from kvmtop.ui.widgets.vm_table import vm_key

    source = IoDemo()
    feed = SteppedFeed(source, warmup=2)
    app = make_app(feed)
    async with app.run_test(size=(160, 50)) as pilot:
        await first_snapshot(pilot)
        assert source.wanted == []  # the main screen shows no I/O: nothing attached
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, GuestScreen))
        await wait_for(pilot, lambda: source.wanted == [True])
        panel = app.screen.query_one("#io")
        assert "from the next interval" in str(panel.render())
        feed.step()
        await wait_for(pilot, lambda: app.view.io is not None)
        await pilot.pause()
        vm = next(v for v in app.snapshot.vms if vm_key(v) == app.screen.vm_key)
        text = region_text(app, panel)
        expected = app.view.io.stats(vm.pid)
        assert len(expected) == len(vm.vcpus)  # one port per vCPU thread in this source
        for s in expected[:4]:  # the busiest first (the panel shows as many as fit)
            line = next(line for line in text.splitlines() if s.address in line)
            assert "PIO" in line and "write" in line and str(s.count) in line
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await wait_for(pilot, lambda: source.wanted == [True, False])


def test_the_demo_counts_io_only_while_asked_and_always_the_same():
    from kvmtop.sources.demo import DemoSource
    from kvmtop.sources.demo_io import DemoIoSource

    def run(want_from: int) -> list:
        src = DemoIoSource(DemoSource(vms=3))
        out = []
        for i in range(4):
            src.want_io(i >= want_from)
            iv = src.next_interval()
            out.append((iv, src.last_io))
        return out

    a, b = run(2), run(2)
    assert [io for _, io in a[:2]] == [None, None]  # not asked: nothing counted
    for (iv, io), (_, io_b) in zip(a[2:], b[2:]):
        assert io == io_b and io.accesses  # deterministic
        tids = {t for ident in iv.vms.values() for t in ident.vcpu_index}
        assert {x.tid for x in io.accesses} <= tids
        assert {(x.space, x.addr) for x in io.accesses} >= {(MMIO, 0xFEBD1000), (PIO, 0x3F8)}
