"""A BPF map reader stand-in for the pairing-state tests (no kernel needed)."""

import numpy as np

from kvmtop.bpf import maps


class FakeReader:
    """A maps.HashReader stand-in over a numpy array (the `slots` array, or a `pending` hash by tid)."""

    def __init__(self, rows: np.ndarray, keyed_by_tid: bool = False):
        self.rows, self.keyed = rows, keyed_by_tid

    def read(self):
        keys = self.rows["tid"].astype(maps.TID) if self.keyed else np.arange(len(self.rows), dtype=maps.INDEX)
        return keys, self.rows.copy()

    def update(self, keys, values, last=None):
        self.rows[keys] = values
        return len(keys)

    def delete(self, keys):
        self.rows = self.rows[~np.isin(self.rows["tid"], keys.astype(np.uint64))]
