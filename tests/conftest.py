"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest

# --------------------------------------------------------------------------- real KVM guest
# Owner: kvmtop/testing/kvm_guest.py. ``kvm_guest`` is a factory: kvm_guest("name", pio=5, ...) starts a
# GuestProcess (ready line read; .pid/.tid known) and every guest is closed at teardown.

@pytest.fixture
def kvm_guest():
    if not os.path.exists("/dev/kvm"):
        pytest.skip("/dev/kvm is absent: this host has no KVM")
    from kvmtop.testing.kvm_guest import GuestProcess

    guests: list[GuestProcess] = []

    def make(name: str = "kvmtop-test", **kwargs) -> GuestProcess:
        guest = GuestProcess(name, **kwargs)
        guests.append(guest)
        return guest.start()

    yield make
    for guest in guests:
        guest.close()

# --------------------------------------------------------------------------- end real KVM guest
