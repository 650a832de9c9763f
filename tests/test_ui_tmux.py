"""The dashboard in a real terminal (tmux) against a real KVM guest, as root.

tmux runs ``kvmtop`` (the venv's console script, or ``python -m kvmtop``); we poll
``capture-pane`` (with a deadline, never fixed sleeps) for the guest's row, open its guest screen,
and quit with ``q``, Ctrl+C or F10.
On hosts where kvm_exit never fires, the table's exit columns give way to userspace
columns: the first rate after the vCPU count is then USER/s.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
# The installed console script when there is one (``make setup``), else the module.
KVMTOP = [str(ROOT / ".venv" / "bin" / "kvmtop")] if (ROOT / ".venv" / "bin" / "kvmtop").exists() \
    else [PYTHON, "-m", "kvmtop"]

pytestmark = [
    pytest.mark.ui,
    pytest.mark.kvm,
    pytest.mark.bpf,
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root"),
]

RATE_COLUMN = 3  # name pid vcpus, then EXITS/s (or USER/s where kvm_exit never fires)


class Tmux:
    def __init__(self, name: str, command: str, tmp: Path, size: tuple[int, int] = (160, 45)):
        self.session = f"{name}-{os.getpid()}"
        self.status = tmp / "status"
        wrapped = f"{command}; echo $? > {self.status}"
        env = {k: v for k, v in os.environ.items() if k not in ("TMUX", "NO_COLOR")}
        env["TERM"] = "xterm-256color"
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)
        subprocess.run(["tmux", "new-session", "-d", "-s", self.session, "-x", str(size[0]), "-y", str(size[1]),
                        "sh", "-c", wrapped], check=True, env=env, cwd=ROOT)

    def capture(self) -> str:
        out = subprocess.run(["tmux", "capture-pane", "-p", "-t", self.session], capture_output=True, text=True)
        return out.stdout

    def send(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.session, *keys], check=True)

    def send_literal(self, text: str) -> None:
        subprocess.run(["tmux", "send-keys", "-l", "-t", self.session, text], check=True)

    def wait_for(self, predicate, what: str, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            if self.status.exists() and self.status.read_text().strip():
                raise AssertionError(f"kvmtop exited ({self.status.read_text().strip()}) while waiting for "
                                     f"{what}; screen:\n{screen}")
            screen = self.capture()
            found = predicate(screen)
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")

    def wait_exit(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status.exists() and self.status.read_text().strip():
                return int(self.status.read_text().strip())
            time.sleep(0.1)
        raise AssertionError(f"kvmtop did not exit; screen:\n{self.capture()}")

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.session], capture_output=True)


@pytest.fixture
def tmux_kvmtop(tmp_path):
    sessions: list[Tmux] = []

    def start(*args: str) -> Tmux:
        command = " ".join([*KVMTOP, *args])
        t = Tmux("kvmtop-ui", command, tmp_path)
        sessions.append(t)
        return t

    yield start
    for t in sessions:
        t.close()


def _row(screen: str, name: str, pid: int) -> list[str] | None:
    """The tokens of the guest's row in the VM table, once it shows a non-zero rate."""
    for line in screen.splitlines():
        tokens = line.split()
        if len(tokens) > RATE_COLUMN and tokens[0] == name and tokens[1] == str(pid):
            return tokens
    return None


def _rate(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)([kMG]?)", text)
    if not m:
        return 0.0
    return float(m.group(1)) * {"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m.group(2)]


def _busy_row(name: str, pid: int):
    def check(screen: str):
        tokens = _row(screen, name, pid)
        if tokens is None:
            return None
        if _rate(tokens[RATE_COLUMN]) > 0:
            return tokens
        return None
    return check


def test_live_dashboard_shows_the_guest_and_quits_cleanly(kvm_guest, tmux_kvmtop):
    guest = kvm_guest("kvmtop-tmux", pio=20, mmio=5, mmio_sleep_ms=1, loop=True)
    guest.go()
    t = tmux_kvmtop()
    tokens = t.wait_for(_busy_row("kvmtop-tmux", guest.pid), "the guest's row with a non-zero rate")
    assert tokens[2] == "1"  # one vCPU
    screen = t.capture()
    if "TOP KVM_EXIT" in screen:
        # kvm_exit never fires here: the header says so in one line, USER/s leads the table
        assert "USER/s" in screen.split("TOP KVM_EXIT")[0].splitlines()[-1]
        assert "kvm_exit" in screen and "n/a" not in " ".join(tokens)

    # open its guest screen (find it by name first: other guests may run on this host)
    t.send("/")
    t.wait_for(lambda s: "find a guest by name" in s, "the find box")
    t.send_literal("kvmtop-tmux")
    t.wait_for(lambda s: "find a guest by name" not in s and "kvmtop-tmux" in s.split("NAME")[0],
               "the typed name in the find box")
    t.send("Enter")
    t.wait_for(lambda s: "▔▔▔" not in s and "find a guest" not in s, "the find box to close")
    t.send("Enter")
    t.wait_for(lambda s: " VM  kvmtop-tmux" in s or "VM  kvmtop-tmux" in s.replace("\u00a0", " "),
               "the guest screen title")
    screen = t.wait_for(lambda s: "KVM_EXIT_" in s and ("IO" in s or "MMIO" in s) and f"pid {guest.pid}" in s and s,
                        "the userspace-exit panel and the guest's pid in the title")
    assert "Exit reasons" in screen and "Requests pending at exit" in screen
    # the I/O panel's probes attach as the screen opens: the guest's port and MMIO address appear
    t.wait_for(lambda s: "0x03f0" in s and "0x8000" in s, "the guest's PIO port and MMIO address in the I/O panel")

    t.send("Escape")
    t.wait_for(lambda s: _row(s, "kvmtop-tmux", guest.pid), "the main screen again")
    t.send("q")
    assert t.wait_exit() == 0


def test_markup_in_a_guest_name_is_shown_literally(kvm_guest, tmux_kvmtop):
    name = "[b]x[/b]"
    guest = kvm_guest(name, pio=20, loop=True)
    guest.go()
    t = tmux_kvmtop()
    tokens = t.wait_for(_busy_row(name, guest.pid), "the guest's row with its literal name")
    assert tokens[0] == "[b]x[/b]"
    t.send("q")
    assert t.wait_exit() == 0


@pytest.mark.parametrize("key", ["C-c", "F10"])
def test_ctrl_c_and_f10_quit_as_in_htop(kvm_guest, tmux_kvmtop, key):
    guest = kvm_guest("kvmtop-keys", pio=20, loop=True)
    guest.go()
    t = tmux_kvmtop()
    t.wait_for(_busy_row("kvmtop-keys", guest.pid), "the guest's row with a non-zero rate")
    footer = t.capture().rstrip().splitlines()[-1]
    assert "F10 Quit" in footer and footer.lstrip().startswith("F1 Help")
    t.send(key)
    assert t.wait_exit() == 0  # a key the app handled, not a signal (130)
