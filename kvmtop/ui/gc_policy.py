"""Garbage-collector pacing for big hosts.

A snapshot of 1,000 VMs x 8 vCPUs is about a million small objects that live for an
interval or two. CPython counts them as long-lived, so a full (generation 2) collection
runs about every interval and walks every live snapshot: close to a second with the UI
stalled. The snapshots themselves are acyclic and freed by reference counting, so the
feed thread freezes the heap after each big snapshot (``gc.freeze``: the collector
stops walking it; reference counting still frees it) and, every ``every`` snapshots,
unfreezes and runs one full collection for any cyclic garbage frozen meanwhile.
Small hosts (under ``min_vcpus``) are left to the default collector.
"""

from __future__ import annotations

import gc

from ..model import Snapshot


class GcPolicy:
    def __init__(self, min_vcpus: int = 512, every: int = 120) -> None:
        self.min_vcpus = min_vcpus
        self.every = every
        self.frozen = 0

    def after_snapshot(self, snapshot: Snapshot) -> None:
        """Call on the feed thread once a snapshot is built and prepared."""
        if snapshot.host.vcpu_count < self.min_vcpus and not self.frozen:
            return
        self.frozen += 1
        if self.frozen >= self.every:
            self.frozen = 0
            gc.unfreeze()
            gc.collect()
        else:
            gc.freeze()

    def close(self) -> None:
        if self.frozen:
            gc.unfreeze()
            self.frozen = 0
