"""The terminal is restored on every exit path of the dashboard, in a real terminal (tmux).

Each run starts under ``sh`` (which, unlike bash, does not reset the tty after a command),
saves ``stty -g`` before kvmtop and again after it, then keeps the pane open so tmux can
tell whether the alternate screen, the cursor and mouse reporting are as they were.
Exit paths: ``q``, Ctrl+C, SIGINT, SIGTERM, SIGHUP, SIGQUIT, and an exception in the
collector thread; the demo source for the matrix, the live collector for a few.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_ui_tmux import KVMTOP, PYTHON, Tmux

ROOT = Path(__file__).resolve().parent.parent
FLAGS = "#{alternate_on} #{cursor_flag} #{mouse_any_flag} #{mouse_button_flag} #{mouse_standard_flag} #{mouse_sgr_flag}"
RESTORED = "0 1 0 0 0 0"  # normal screen, cursor shown, no mouse reporting of any kind

pytestmark = pytest.mark.skipif(subprocess.run(["which", "tmux"], capture_output=True).returncode != 0,
                                reason="tmux is not installed")

# kvmtop whose collector raises in its worker thread after two intervals (demo or live)
FAULTY = """
import sys
from kvmtop import cli
from kvmtop.sources.{module} import {cls} as Source
real = Source.next_interval
calls = [0]
def next_interval(self):
    calls[0] += 1
    if calls[0] > 2:
        raise RuntimeError("injected collector fault")
    return real(self)
Source.next_interval = next_interval
sys.exit(cli.main(sys.argv[1:]))
"""


class TtyRun(Tmux):
    """One kvmtop run in tmux, with the tty modes saved before and after it."""

    def __init__(self, argv: list[str], tmp: Path):
        self.before, self.after = tmp / "stty-before", tmp / "stty-after"
        cmd = " ".join(shlex.quote(a) for a in argv)
        # (exit $s) hands kvmtop's status to the harness's "echo $?"; sleep keeps the pane
        # (and its terminal state) for inspection until the session is killed.
        super().__init__("kvmtop-tty", f"stty -g > {self.before}; {cmd}; s=$?; stty -g > {self.after}; "
                                       f"(exit $s); echo $? > {tmp / 'status'}; exec sleep 600", tmp)
        self.status = tmp / "status"

    def flags(self) -> str:
        out = subprocess.run(["tmux", "display", "-p", "-t", self.session, FLAGS], capture_output=True, text=True)
        return out.stdout.strip()

    def kvmtop_pid(self) -> int:
        shell = int(subprocess.run(["tmux", "display", "-p", "-t", self.session, "#{pane_pid}"],
                                   capture_output=True, text=True).stdout)
        with open(f"/proc/{shell}/task/{shell}/children") as f:
            children = f.read().split()
        assert len(children) == 1, children
        return int(children[0])

    def wait_up(self, text: str, timeout: float = 90.0) -> None:
        """Until the dashboard draws ``text`` in the alternate screen."""
        self.wait_for(lambda s: text in s and self.flags().startswith("1 "), f"the dashboard ({text!r})", timeout)

    def wait_done(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.status.exists() and self.status.read_text().strip() and self.after.exists():
                return int(self.status.read_text().strip())
            time.sleep(0.1)
        raise AssertionError(f"kvmtop did not exit; screen:\n{self.capture()}")

    def assert_restored(self) -> None:
        assert self.flags() == RESTORED, f"terminal left as {self.flags()!r}; screen:\n{self.capture()}"
        before, after = self.before.read_text().strip(), self.after.read_text().strip()
        assert before and after == before, "tty modes differ from before kvmtop"


@pytest.fixture
def tty_run(tmp_path):
    runs: list[TtyRun] = []

    def start(argv: list[str]) -> TtyRun:
        d = tmp_path / str(len(runs))
        d.mkdir()
        r = TtyRun(argv, d)
        runs.append(r)
        return r

    yield start
    for r in runs:
        r.close()


def _faulty(module: str, cls: str) -> list[str]:
    return [PYTHON, "-c", FAULTY.format(module=module, cls=cls)]


# --------------------------------------------------------------------------- keys


@pytest.mark.parametrize("key", ["q", "C-c"])
def test_quit_keys_restore_the_terminal(tty_run, key):
    r = tty_run([*KVMTOP, "--demo"])
    r.wait_up("demo")
    r.send(key)
    assert r.wait_done() == 0
    r.assert_restored()


# --------------------------------------------------------------------------- signals


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT],
                         ids=lambda s: signal.Signals(s).name)
def test_signals_restore_the_terminal(tty_run, sig):
    r = tty_run([*KVMTOP, "--demo"])
    r.wait_up("demo")
    os.kill(r.kvmtop_pid(), sig)
    assert r.wait_done() == 128 + sig
    r.assert_restored()
    assert "Traceback" not in r.capture()


@pytest.mark.bpf
@pytest.mark.kvm
@pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: signal.Signals(s).name)
def test_signals_restore_the_terminal_live(tty_run, kvm_guest, sig):
    guest = kvm_guest("kvmtop-tty", pio=5, loop=True)
    guest.go()
    r = tty_run([*KVMTOP])
    r.wait_up("kvmtop-tty")
    os.kill(r.kvmtop_pid(), sig)
    assert r.wait_done() == 128 + sig
    r.assert_restored()


# --------------------------------------------------------------------------- collector failure


def test_collector_thread_exception_restores_the_terminal(tty_run):
    r = tty_run([*_faulty("demo", "DemoSource"), "--demo"])
    assert r.wait_done(90) == 1
    r.assert_restored()
    screen = r.capture()
    assert "kvmtop: RuntimeError: injected collector fault" in screen
    assert "Traceback" not in screen


@pytest.mark.bpf
@pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root")
def test_live_collector_exception_restores_the_terminal(tty_run):
    r = tty_run(_faulty("collector", "LiveSource"))
    assert r.wait_done(90) == 1
    r.assert_restored()
    assert "kvmtop: RuntimeError: injected collector fault" in r.capture()


def test_a_dying_helper_thread_ends_the_dashboard_in_order(tty_run):
    """An uncaught exception in any other thread: one line and a restored terminal, no traceback."""
    code = ("import sys, threading\n"
            "from kvmtop import cli\n"
            "from kvmtop.sources.demo import DemoSource\n"
            "real, calls = DemoSource.next_interval, [0]\n"
            "def next_interval(self):\n"
            "    calls[0] += 1\n"
            "    if calls[0] == 3:\n"
            "        threading.Thread(target=lambda: 1 / 0, name='helper').start()\n"
            "    return real(self)\n"
            "DemoSource.next_interval = next_interval\n"
            "sys.exit(cli.main(['--demo']))\n")
    r = tty_run([PYTHON, "-c", code])
    assert r.wait_done(90) == 1
    r.assert_restored()
    screen = r.capture()
    assert "kvmtop: helper failed: ZeroDivisionError" in screen and "Traceback" not in screen


def test_a_stuck_dashboard_is_still_restored_after_the_grace_period(tty_run, tmp_path):
    """SIGTERM while the UI loop is blocked: after the grace period the guard restores the
    terminal itself and exits."""
    code = ("import sys, time\n"
            "from kvmtop import cli\n"
            "from kvmtop.sources.demo import DemoSource\n"
            "from kvmtop.ui.app import KvmtopApp\n"
            "apps, mount = [], KvmtopApp.on_mount\n"
            "def on_mount(self):\n"
            "    apps.append(self)\n"
            "    mount(self)\n"
            "KvmtopApp.on_mount = on_mount\n"
            "def block():  # the UI loop stops responding\n"
            "    open(sys.argv[1], 'w').close()\n"
            "    time.sleep(120)\n"
            "real, calls = DemoSource.next_interval, [0]\n"
            "def next_interval(self):\n"
            "    calls[0] += 1\n"
            "    if calls[0] == 3:\n"
            "        apps[0].call_later(block)\n"
            "    return real(self)\n"
            "DemoSource.next_interval = next_interval\n"
            "sys.exit(cli.main(['--demo']))\n")
    blocked = tmp_path / "blocked"
    r = tty_run([PYTHON, "-c", code, str(blocked)])
    r.wait_for(lambda _: blocked.exists(), "the UI loop to block")
    os.kill(r.kvmtop_pid(), signal.SIGTERM)
    t0 = time.monotonic()
    assert r.wait_done(30) == 128 + signal.SIGTERM
    assert time.monotonic() - t0 < 20  # the grace period, not the 120 s block
    r.assert_restored()
