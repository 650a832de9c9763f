"""Which checkout a kvmtop runs: `kvmtop --version` says, and setup says when the
/usr/local/bin/kvmtop launcher is left running another checkout (scripts/launcher.sh)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER_SH = ROOT / "scripts" / "launcher.sh"


def kvmtop_version(command: list[str]) -> str:
    out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60, cwd="/")
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_version_names_the_checkout_it_runs_from():
    line = kvmtop_version([sys.executable, "-m", "kvmtop"])
    assert line.startswith("kvmtop ") and f" from {ROOT}" in line
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    if head.returncode == 0:  # a git checkout: its commit is named too
        assert f"(git {head.stdout.strip()}" in line


def test_a_launcher_shows_which_checkout_it_runs(tmp_path):
    launcher = tmp_path / "kvmtop"
    launcher.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m kvmtop "$@"\n')
    launcher.chmod(0o755)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([str(launcher), "--version"], capture_output=True, text=True, timeout=60, cwd="/", env=env)
    assert f" from {ROOT}" in out.stdout


def run_launcher_sh(launcher: Path, *args: str) -> str:
    env = {**os.environ, "KVMTOP_LAUNCHER": str(launcher)}
    out = subprocess.run(["bash", str(LAUNCHER_SH), *args], capture_output=True, text=True, timeout=30, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def other_checkout(tmp_path: Path) -> Path:
    other = tmp_path / "other-checkout"
    exe = other / ".venv" / "bin" / "kvmtop"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\necho other\n")
    exe.chmod(0o755)
    return other


def test_setup_writes_a_missing_launcher(tmp_path):
    launcher = tmp_path / "kvmtop"
    out = run_launcher_sh(launcher)
    assert f"writing {launcher}" in out
    assert f'exec "{ROOT}/.venv/bin/kvmtop" "$@"' in launcher.read_text()
    assert run_launcher_sh(launcher) == ""  # already right: nothing to say


def test_setup_says_when_it_leaves_a_launcher_running_another_checkout(tmp_path):
    other = other_checkout(tmp_path)
    launcher = tmp_path / "kvmtop"
    launcher.write_text(f'#!/bin/sh\nexec "{other}/.venv/bin/kvmtop" "$@"\n')
    before = launcher.read_text()
    out = run_launcher_sh(launcher)
    assert launcher.read_text() == before  # kept
    assert f"it runs ANOTHER checkout, {other}" in out and str(ROOT) in out
    assert "sudo make launcher" in out and "kvmtop --version" in out
    out = run_launcher_sh(launcher, "here")  # what `make launcher` runs
    assert f"writing {launcher}" in out and str(ROOT) in launcher.read_text()


def test_setup_replaces_a_launcher_whose_checkout_is_gone(tmp_path):
    launcher = tmp_path / "kvmtop"
    launcher.write_text(f'#!/bin/sh\nexec "{tmp_path}/gone/.venv/bin/kvmtop" "$@"\n')
    assert f"writing {launcher}" in run_launcher_sh(launcher)
