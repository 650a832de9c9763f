"""Reading the stats never loses an increment: new events go to one `stats` map (the one in
the slot of the current ``epoch``) while the collector reads the other, which nothing writes
any more, and each poll gives the slot it writes next a new empty map instead of deleting
what was read.

(Draining the map being written loses an event now and then: a BPF program that looked a key
up just before lookup_and_delete took it increments a deleted element. The churn soak found
it: about one event per 300 polls.)"""

from __future__ import annotations

import ctypes
import os
import time

import pytest

from kvmtop.bpf import maps
from kvmtop.bpf.program import KIND_USERSPACE
from kvmtop.testing.bpf_testrun import TestProgram, bpf_syscall

BPF_MAP_GET_FD_BY_ID, BPF_OBJ_GET_INFO_BY_FD = 14, 15

pytestmark = [pytest.mark.bpf, pytest.mark.skipif(os.geteuid() != 0, reason="BPF needs root")]


def rows(fd: int) -> list[tuple[int, int]]:
    keys, vals = maps.HashReader(fd, maps.STAT_KEY, maps.STAT_VAL, 64).read()
    assert set(keys["kind"].tolist()) <= {KIND_USERSPACE}
    return sorted(zip(keys["code"].tolist(), vals["count"].tolist()))


def map_id(fd: int) -> int:
    info = (ctypes.c_uint32 * 20)()  # struct bpf_map_info: type, id, ...
    attr = (ctypes.c_uint32 * 4)(fd, ctypes.sizeof(info))
    ctypes.cast(ctypes.addressof(attr) + 8, ctypes.POINTER(ctypes.c_uint64))[0] = ctypes.addressof(info)
    assert bpf_syscall(BPF_OBJ_GET_INFO_BY_FD, attr) == 0
    return info[1]


def map_exists(map_id_: int) -> bool:
    try:
        os.close(bpf_syscall(BPF_MAP_GET_FD_BY_ID, (ctypes.c_uint32 * 3)(map_id_, 0, 0)))
    except FileNotFoundError:  # ENOENT: no such map any more
        return False
    return True


def test_events_go_to_the_current_epochs_map_and_a_read_map_is_replaced_and_freed():
    tp = TestProgram()
    try:
        p = tp.program
        table = p.table("epoch")
        first, second = p.stats.fds
        first_id = map_id(first)
        tp.userspace_exit(7, 8, 1000, 2)
        tp.userspace_exit(7, 8, 2000, 2)  # the first one, unmatched: counted in epoch 0
        assert p.flip_epoch() == 0 and table[table.Key(0)].value == 1 == p.epoch
        assert p.stats_fd() == second
        tp.userspace_exit(7, 8, 3000, 6)  # the second one, unmatched: counted in epoch 1
        assert rows(first) == [(2, 1)]  # the old epoch's map: only its own
        assert rows(second) == [(2, 1)]
        p.release_stats(0)  # read: its slot gets a new, empty map, the read one goes
        assert p.flip_epoch() == 1 and table[table.Key(0)].value == 0
        assert p.stats_fd() not in (first, second) and rows(p.stats_fd()) == []
        assert rows(second) == [(2, 1)]  # the one to read now is left alone
        deadline = time.monotonic() + 10
        while map_exists(first_id) and time.monotonic() < deadline:  # no fd, no slot holds it
            time.sleep(0.01)
        assert not map_exists(first_id)
        assert map_exists(map_id(second))
    finally:
        tp.close()


def test_the_collector_flips_the_epoch_each_poll_and_drains_the_other(live):
    src = live(pid=os.getpid())  # (no events of ours: the maps are written here by hand)
    table = src.program.table("epoch")
    seen = []
    for _ in range(3):
        src.next_interval()
        seen.append(table[table.Key(0)].value)
    assert seen == [1, 0, 1]
