"""contrib/systemd/kvmtop-exporter.service: the fewest privileges that work, checked for real.

systemd does not run the test; instead the exporter runs the way the unit would run it: uid 0
with exactly the unit's capability set (setpriv), no new privileges, and a private mount
namespace where everything is read-only but /proc, /dev, a private /tmp and the cache
directory (ProtectSystem=strict, ProtectKernelTunables, PrivateTmp, CacheDirectory) — and it
must serve a real guest's exact counts. With any one of those capabilities less, it must fail
to start, with one line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from export_helpers import REPO, ExporterProcess, scrape, value, wait_for

UNIT = os.path.join(REPO, "contrib", "systemd", "kvmtop-exporter.service")
CACHE = "/var/cache/kvmtop"
CAP_BITS = {"CAP_BPF": 39, "CAP_PERFMON": 38}

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the live collector needs root")
needs_tools = pytest.mark.skipif(not (shutil.which("setpriv") and shutil.which("unshare")),
                                 reason="setpriv/unshare (util-linux) are not installed")


def unit() -> dict[str, str]:
    settings = {}
    for line in Path(UNIT).read_text(encoding="utf-8").splitlines():
        m = re.match(r"^(\w+)=(.*)$", line.strip())
        if m:
            settings[m.group(1)] = m.group(2)
    return settings


def unit_caps() -> list[str]:
    return unit()["CapabilityBoundingSet"].split()


def setpriv(caps: list[str]) -> list[str]:
    names = ",".join(["-all"] + [f"+{c.removeprefix('CAP_').lower()}" for c in caps])
    return ["setpriv", "--no-new-privs", f"--inh-caps={names}", f"--ambient-caps={names}", f"--bounding-set={names}",
            "--"]


def sandbox() -> list[str]:
    """A private mount namespace shaped like the unit's ProtectSystem=strict and friends."""
    hide_home = "" if REPO.startswith(("/home/", "/root/")) else \
        "for h in /home /root /run/user; do [ -d $h ] && mount -t tmpfs -o ro tmpfs $h; done; "
    # PrivateTmp; a checkout under /tmp (a scratch clone) is bound back into the private /tmp
    private_tmp = "mount -t tmpfs tmpfs /tmp; " if not REPO.startswith("/tmp/") else (
        f"exec 3<'{REPO}'; mount -t tmpfs tmpfs /tmp; mkdir -p '{REPO}'; "
        f"mount --no-canonicalize --bind /proc/self/fd/3 '{REPO}'; exec 3<&-; ")
    script = (
        "set -e; "
        "for m in $(awk '{print $2}' /proc/self/mounts | sort -u); do "
        "  case $m in /proc|/proc/*|/dev|/dev/*) continue;; esac; "
        "  mount -o remount,bind,ro \"$m\" 2>/dev/null || true; "
        "done; "
        f"{private_tmp}"
        f"{hide_home}"
        f"mkdir -p {CACHE} 2>/dev/null || true; mount --bind {CACHE} {CACHE}; mount -o remount,bind,rw {CACHE}; "
        "if touch /usr/.kvmtop-rw-check 2>/dev/null; then echo 'sandbox: / is writable' >&2; exit 99; fi; "
        'exec "$@"'
    )
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sandbox"]


def status_caps(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def test_unit_asks_for_exactly_bpf_and_perfmon_as_root():
    u = unit()
    assert unit_caps() == ["CAP_BPF", "CAP_PERFMON"]
    assert u["AmbientCapabilities"].split() == unit_caps()
    assert u["User"] == "root" and u["NoNewPrivileges"] == "yes"
    assert u["ProtectSystem"] == "strict" and u["ProtectHome"] == "yes" and u["PrivateTmp"] == "yes"
    assert u["CacheDirectory"] == "kvmtop" and u["ProtectKernelTunables"] == "yes"
    assert u["ExecStart"].split()[1:] == ["export", "--listen", "127.0.0.1:9477"]


def test_systemd_analyze_verify_accepts_the_unit():
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (no systemd on this machine)")
    if not os.access(unit()["ExecStart"].split()[0], os.X_OK):
        pytest.skip("the unit's ExecStart launcher is not installed here (make setup writes it)")
    r = subprocess.run(["systemd-analyze", "verify", UNIT], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


@pytest.mark.bpf
@pytest.mark.kvm
@needs_root
@needs_tools
def test_exporter_with_the_units_privileges_serves_real_counts(kvm_guest):
    with ExporterProcess("-d", "0.5", prefix=(*sandbox(), *setpriv(unit_caps()))) as e:
        st = status_caps(e.proc.pid)
        want = f"{sum(1 << CAP_BITS[c] for c in unit_caps()):016x}"
        assert (st["CapEff"], st["CapPrm"], st["CapBnd"], st["NoNewPrivs"]) == (want, want, want, "1")
        assert st["Uid"].split()[0] == "0"
        g = kvm_guest("kvmtop-systemd", pio=4, mmio=2)
        g.go()
        exits = g.wait_done()

        def counted():
            text = scrape(e.url)
            io = value(text, "kvmtop_userspace_exits_total", pid=str(g.pid), reason="KVM_EXIT_IO")
            mmio = value(text, "kvmtop_userspace_exits_total", pid=str(g.pid), reason="KVM_EXIT_MMIO")
            return (io, mmio) == (exits["KVM_EXIT_IO"], exits["KVM_EXIT_MMIO"]) and text

        text = wait_for(counted, 30, 0.2, what="the guest's exact counts")
        assert value(text, "kvmtop_userspace_exits_total", vm="kvmtop-systemd", reason="KVM_EXIT_IO") == 5
        assert value(text, "kvmtop_collector_poll_failures_total") == 0
    assert e.proc.returncode == 0 and "Traceback" not in e.stderr


@pytest.mark.bpf
@needs_root
@needs_tools
@pytest.mark.parametrize("missing", unit_caps())
def test_one_capability_less_is_not_enough(missing):
    caps = [c for c in unit_caps() if c != missing]
    e = ExporterProcess("-d", "0.5", prefix=tuple(setpriv(caps)))
    with pytest.raises(AssertionError, match="did not start"):
        e.start()
    assert e.proc.returncode == 1
    lines = e.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kvmtop: "), lines
    assert "Operation not permitted" in lines[0] or "privileges" in lines[0], lines
