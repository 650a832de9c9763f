"""Shared pytest fixtures, and the test groups (markers in pyproject.toml)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config, items):
    """``bpf`` and ``kvm`` tests belong to the ``root`` group (``-m root`` / ``-m "not root"``)."""
    for item in items:
        if item.get_closest_marker("bpf") or item.get_closest_marker("kvm") or "kvm_guest" in item.fixturenames:
            item.add_marker(pytest.mark.root)


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


# --------------------------------------------------------------------------- live collector
# ``live`` is a factory: live(**LiveSource kwargs) opens a LiveSource; every one is closed at teardown.

@pytest.fixture
def live():
    from kvmtop.sources.collector import LiveSource

    sources = []

    def make(**kwargs):
        src = LiveSource(**kwargs)
        sources.append(src)
        src.open()
        return src

    yield make
    for src in sources:
        src.close()
