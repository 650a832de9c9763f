"""The churn soak, short (bench/soak.py is the long one): 10 real test guests started and stopped
under the collector and the exporter; each counted exactly, under its name, by both, and every
per-thread entry (BPF maps and the collector's own) gone once they have exited."""

from __future__ import annotations

import os

import pytest

pytestmark = [pytest.mark.bpf, pytest.mark.kvm,
              pytest.mark.skipif(os.geteuid() != 0, reason="the collector needs root"),
              pytest.mark.skipif(not os.path.exists("/dev/kvm"), reason="/dev/kvm is absent: this host has no KVM")]


def test_ten_guests_churned_are_all_counted_exactly_and_leave_nothing():
    from kvmtop.testing.soak import run_soak

    r = run_soak(guests=10, duration_s=0, alive=3, interval_s=0.5)
    lines = "\n".join(r.lines())
    assert len(r.guests) == 10 and 1 <= r.max_alive <= 3, lines
    assert {g.pid for g in r.seen} == {g.pid for g in r.guests}, lines  # exact counts, own names
    assert all(g.exits > 0 for g in r.guests)
    assert r.exported is not None and len(r.exported_exact) == 10, lines
    assert not any(r.leftover.values()), lines
    assert set(r.leftover) >= {"info", "pending", "slots", "collector threads", "names at first sight"}
    assert r.ok
