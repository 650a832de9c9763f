"""contrib/prometheus: the scrape config and alert rules pass promtool, and their unit tests pass."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from export_helpers import REPO

CONTRIB = os.path.join(REPO, "contrib", "prometheus")
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None,
                                    reason="promtool is not installed (scripts/setup.sh installs prometheus)")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], cwd=CONTRIB, capture_output=True, text=True, timeout=120)


@needs_promtool
def test_alert_rules_are_valid():
    r = promtool("check", "rules", "kvmtop-alerts.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS: 5 rules found" in r.stdout


@needs_promtool
def test_alert_rule_unit_tests_pass():
    r = promtool("test", "rules", "kvmtop-alerts.test.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


@needs_promtool
def test_alert_rule_unit_tests_can_fail(tmp_path):
    """The same tests against rules with a threshold moved: they must notice."""
    for name in ("kvmtop-alerts.yml", "kvmtop-alerts.test.yml"):
        shutil.copy(os.path.join(CONTRIB, name), tmp_path / name)
    rules = tmp_path / "kvmtop-alerts.yml"
    rules.write_text(rules.read_text().replace("> 3 * sum", "> 30 * sum"))
    r = subprocess.run(["promtool", "test", "rules", "kvmtop-alerts.test.yml"], cwd=tmp_path,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0 and "KvmtopExitRateSpike" in r.stdout + r.stderr


@needs_promtool
def test_scrape_config_example_is_valid():
    r = promtool("check", "config", "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
