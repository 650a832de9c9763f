"""--max-keys: what a size costs in kernel memory is said up front and is what the kernel
reports; a size whose maps would not fit comfortably in MemAvailable is refused in one line
before anything is loaded (issue 8 §2)."""

from __future__ import annotations

import os
import time

import pytest

from kvmtop import cli
from kvmtop.bpf import sizing
from kvmtop.bpf.program import MAPS, Program
from kvmtop.bpf.sizing import MapSizes
from kvmtop.errors import SourceError

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="loading BPF needs root")
GiB = 1 << 30


def test_refuses_sizes_that_do_not_fit_in_half_of_mem_available():
    available = 8 * GiB
    fits = sizing.largest_max_keys(available)
    assert fits > 100_000
    sizing.check(MapSizes.for_max_keys(fits), available)  # accepted
    with pytest.raises(SourceError) as e:
        sizing.check(MapSizes.for_max_keys(fits + 1), available)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"--max-keys {fits + 1}:" in msg and "MemAvailable (8.0 GiB)" in msg
    assert f"use --max-keys {fits} or less" in msg
    full = MapSizes.for_max_keys(fits + 1).kernel_bytes(True)
    assert full > available * sizing.MEMORY_SHARE >= MapSizes.for_max_keys(fits).kernel_bytes(True)


def test_costs_grow_with_the_size_and_per_thread_maps_are_bounded():
    small, default, huge = (MapSizes.for_max_keys(n) for n in (1, sizing.DEFAULT_MAX_KEYS, 10_000_000))
    assert small.kernel_bytes(False) < default.kernel_bytes(False) < huge.kernel_bytes(False)
    assert default.kernel_bytes(False) < default.kernel_bytes(True)
    assert huge.pending_keys == huge.lost_keys == sizing.MAX_THREAD_KEYS and huge.slots == sizing.MAX_THREAD_KEYS
    assert small.pending_keys == sizing.MIN_THREAD_KEYS
    line = sizing.cost_line(default)
    assert line.startswith(f"--max-keys {sizing.DEFAULT_MAX_KEYS}: the BPF maps take ")
    assert "when loaded, up to" in line and "when full" in line


@needs_root
@pytest.mark.bpf
@pytest.mark.parametrize("max_keys", [1, 16384, 100_000])
def test_the_estimate_is_what_the_kernel_reports(max_keys):
    """The kernel's own accounting of each map (memlock in /proc/self/fdinfo) at load."""
    p = Program(max_keys=max_keys).load()
    try:
        total = 0
        fds = p.map_fds()  # `stats`: its array of maps, template and two maps
        assert set(MAPS) <= set(fds) and {"stats_template", "stats[0]", "stats[1]"} <= set(fds)
        for fd in fds.values():
            with open(f"/proc/self/fdinfo/{fd}") as f:
                total += next(int(ln.split()[1]) for ln in f if ln.startswith("memlock:"))
        estimate = p.sizes.kernel_bytes(False, io=p.features.io)
        assert abs(estimate - total) <= 0.05 * total, (estimate, total)
    finally:
        p.close()


@needs_root
@pytest.mark.bpf
def test_cli_refuses_a_size_too_big_for_this_host_in_one_line(capsys):
    too_big = 2 * sizing.largest_max_keys(sizing.mem_available())  # MemAvailable moves: a clear margin
    t0 = time.monotonic()
    assert cli.main(["--max-keys", str(too_big), "--once"]) == 1
    assert time.monotonic() - t0 < 10  # refused before any map is made
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"kvmtop: --max-keys {too_big}: the BPF maps take ")
    assert "MemAvailable" in err and "Traceback" not in err


@needs_root
@pytest.mark.bpf
def test_cli_says_what_a_chosen_size_costs(capsys):
    assert cli.main(["--max-keys", "5000", "--once"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == f"kvmtop: {sizing.cost_line(MapSizes.for_max_keys(5000))}"
    assert captured.out.startswith("kvmtop ")  # the interval, on stdout as usual
