"""maps.HashReader reads every entry of a BPF hash map in batches straight into the arrays it
returns, also when the map holds more entries than the reader was told (they grow)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from kvmtop.bpf import maps

pytestmark = [pytest.mark.bpf, pytest.mark.skipif(os.geteuid() != 0, reason="BPF maps need root")]


@pytest.fixture
def hash_map():
    from kvmtop.bpf.swapped import BPF_F_NO_PREALLOC, BPF_MAP_TYPE_HASH, _lib

    fd = _lib().bcc_create_map(BPF_MAP_TYPE_HASH, b"kvmtop_test", maps.STAT_KEY.itemsize, maps.STAT_VAL.itemsize,
                               4096, BPF_F_NO_PREALLOC)
    assert fd >= 0
    yield fd
    os.close(fd)


@pytest.mark.parametrize("told", [64, 4096])
def test_reads_every_entry_whatever_the_reader_was_told(hash_map, told):
    keys = np.zeros(1000, maps.STAT_KEY)
    keys["pid"], keys["tid"], keys["code"] = 7, np.arange(1000) // 10, np.arange(1000) % 10
    values = np.zeros(1000, maps.STAT_VAL)
    values["count"], values["sum_ns"] = np.arange(1000) + 1, np.arange(1000) * 3
    reader = maps.HashReader(hash_map, maps.STAT_KEY, maps.STAT_VAL, told)
    assert reader.update(keys, values) == 1000

    got_k, got_v = reader.read()
    assert reader.batch_ok
    order = np.lexsort((got_k["code"], got_k["tid"]))
    assert (got_k[order] == keys).all() and (got_v[order] == values).all()
    assert len(reader.read()[0]) == 1000  # read leaves them

    drained_k, drained_v = reader.drain()
    assert sorted(drained_v["count"].tolist()) == list(range(1, 1001))
    assert len(reader.read()[0]) == 0
