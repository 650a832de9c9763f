"""What the README shows is what ``--demo`` shows: every screenshot is of a kvmtop
command line a user can run, built by kvmtop's own parser and source."""

from __future__ import annotations

import importlib.util
import shlex
from pathlib import Path

import pytest

from kvmtop import cli

ROOT = Path(__file__).resolve().parent.parent


def screenshots_module():
    spec = importlib.util.spec_from_file_location("screenshots", ROOT / "scripts" / "screenshots.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SHOTS = screenshots_module().SHOTS


@pytest.mark.parametrize("name", sorted(SHOTS))
def test_every_screenshot_is_a_command_users_can_run(name, capsys):
    command = SHOTS[name][0]
    argv = shlex.split(command)
    assert argv[0] == "kvmtop" and "--demo" in argv
    assert cli.main([*argv[1:], "--once", "-d", "0.1"]) == 0  # the same options, printed
    out = capsys.readouterr().out
    vms = int(argv[argv.index("--vms") + 1]) if "--vms" in argv else 6
    assert f"VMs {vms} " in out
    assert ("exits n/a" in out) == ("--no-kvm-exit" in argv)


def test_the_screenshot_app_is_the_commands_app():
    module = screenshots_module()
    app = module.app_for("kvmtop --demo --vms 30 --vcpus 4 --no-kvm-exit -g web")
    snap = app.feed.next_snapshot()
    assert snap.host.vm_count >= 1 and all("web" in v.name for v in snap.vms)
    assert all(len(v.vcpus) == 4 for v in snap.vms) and not snap.collector.has("exits")
    assert app.title == "kvmtop (demo)" and ("Guests", "web") in app.selection
    with pytest.raises(SystemExit):
        module.app_for("kvmtop -d 2")  # only the demo is drawn


def test_demo_shape_options_need_the_demo(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--vms", "3", "--no-kvm-exit", "--once"])
    assert exc.value.code == 2
    assert "--vms, --no-kvm-exit shape the synthetic host: use with --demo" in capsys.readouterr().err
