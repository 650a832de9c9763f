"""Which threads of a capture make up one VM (used by ``kvmtop report`` and ``kvmtop replay``).

* by the tgid when the capture shows it (ftrace's ``( tgid)`` column, perf's ``pid/tid``);
  the VM is named by the comm of its main thread when that thread appears, else by the
  comm its threads share, else ``pid N``;
* otherwise by comm, with vCPU numbering taken out (``CPU N/KVM``, ``fc_vcpu N``,
  ``vcpuN``): ``qemu-system-x86-8396`` and ``-8397`` make one VM named
  ``qemu-system-x86``, whose pid is its lowest tid;
* lines without a task column are one anonymous thread (tid 0) in a VM of pid 0.

A thread's vCPU index comes from a ``CPU N/KVM`` comm, else from the ``vcpu N`` of
kvm_exit / kvm_entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from ..model import VmIdentity
from .trace_lines import ANON_TID, ThreadMeta

_VCPU_PATTERNS = (
    (re.compile(r"CPU \d+/(\w+)$"), r"CPU N/\1"),
    (re.compile(r"fc_vcpu \d+$"), "fc_vcpu N"),
    (re.compile(r"vcpu\d+$"), "vcpuN"),
)
ANON_NAME = "(no task column)"


def comm_group(comm: str) -> str:
    """A comm with its vCPU numbering taken out: the key that groups threads without a tgid."""
    for pattern, repl in _VCPU_PATTERNS:
        if pattern.match(comm):
            return pattern.sub(repl, comm)
    return comm


def group_threads(threads: Mapping[int, ThreadMeta], tids: Iterable[int]
                  ) -> tuple[dict[int, int], dict[int, VmIdentity]]:
    """tid -> VM pid, and pid -> VmIdentity, for the threads ``tids`` (see the module docstring)."""
    groups: dict[tuple, list[int]] = {}
    for tid in sorted(tids):
        meta = threads.get(tid)
        if tid == ANON_TID and (meta is None or not meta.comm):
            key: tuple = ("anon",)
        elif meta is not None and meta.tgid is not None:
            key = ("tgid", meta.tgid)
        else:
            key = ("comm", comm_group(meta.comm if meta else ""))
        groups.setdefault(key, []).append(tid)
    tgids = {k[1] for k in groups if k[0] == "tgid"}
    pid_of: dict[int, int] = {}
    vms: dict[int, VmIdentity] = {}
    for key, members in groups.items():
        comms = {t: threads[t].comm for t in members if t in threads}
        if key[0] == "anon":
            pid, name = 0, ANON_NAME
        elif key[0] == "tgid":
            pid = key[1]
            shared = {comm_group(c) for c in comms.values()}
            if pid in threads and threads[pid].comm:
                name = threads[pid].comm
            elif len(shared) == 1 and next(iter(shared)) not in ("", "<...>"):
                name = next(iter(shared))
            else:
                name = f"pid {pid}"
        else:
            pid = min(members)
            while pid in tgids or pid in vms:  # keep pids unique
                pid += 1
            name = key[1] or "(no comm)"
        index = {}
        for t in members:
            meta = threads.get(t)
            if meta is not None and meta.vcpu_index is not None:
                index[t] = meta.vcpu_index
        vms[pid] = VmIdentity(pid=pid, name=name, vcpu_index=index, comms=comms)
        for t in members:
            pid_of[t] = pid
    return pid_of, vms
