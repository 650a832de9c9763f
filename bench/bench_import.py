"""Import speed and peak memory of ``kvmtop report`` on generated captures.

    python bench/bench_import.py [--lines 2000000] [--dir /tmp]

Writes ftrace-style captures of 1M and 2M lines (8 vCPU threads of 2 VMs interleaved, ~89%
kvm_exit/kvm_entry in the >= 5.10 format, the rest other kvm events and userspace exits),
then imports each in a fresh process and prints lines/s and that process's peak RSS
(``resource.getrusage``): the same peak for both sizes shows that memory does not grow with
the file. The target is 250,000 lines/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

TARGET = 250_000
REASONS = ["EXTERNAL_INTERRUPT", "MSR_WRITE", "HLT", "EPT_VIOLATION", "IO_INSTRUCTION", "PREEMPTION_TIMER",
           "EPT_MISCONFIG", "CPUID", "PAUSE_INSTRUCTION", "MSR_READ"]
WEIGHTS = [30, 25, 15, 8, 6, 6, 4, 3, 2, 1]


def generate(path: str, n_lines: int, seed: int = 1) -> None:
    """A capture of exactly n_lines lines."""
    rnd = random.Random(seed)
    threads = [(f"CPU {i % 4}/KVM", 4000 + i, i % 4, i) for i in range(8)]  # comm, tid, vcpu, cpu
    pending = [None] * 8
    ts = 1_000_000_000  # µs
    reasons = rnd.choices(REASONS, WEIGHTS, k=4096)
    written = 0
    with open(path, "w") as f:
        f.write("# tracer: nop\n#\n")
        written = 2
        buf = []
        k = 0
        while written < n_lines:
            i = rnd.randrange(8)
            comm, tid, vcpu, cpu = threads[i]
            ts += rnd.randint(0, 3)
            head = f"{comm:>16}-{tid:<7} [{cpu:03d}] d....  {ts // 1_000_000}.{ts % 1_000_000:06d}: "
            r = rnd.random()
            if pending[i] is None:
                reason = reasons[k % 4096]
                k += 1
                pending[i] = reason
                buf.append(f"{head}kvm_exit: vcpu {vcpu} reason {reason} rip 0xffffffff8108aca7 info1 "
                           f"0x0000000000000000 info2 0x0000000000000000 intr_info 0x00000000 "
                           f"error_code 0x00000000\n")
            elif r < 0.10:
                buf.append(f"{head}kvm_msr: msr_write 6e0 = 0x{ts:x}\n")
            elif r < 0.11 and pending[i] == "IO_INSTRUCTION":
                buf.append(f"{head}kvm_userspace_exit: reason KVM_EXIT_IO (2)\n")
            else:
                pending[i] = None
                buf.append(f"{head}kvm_entry: vcpu {vcpu}, rip 0xffffffff8108aca7\n")
            written += 1
            if len(buf) >= 10000:
                f.writelines(buf)
                buf.clear()
        f.writelines(buf)


def _count_lines(path: str) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def child(path: str) -> None:
    """Import one capture and print what it cost (run in a fresh process)."""
    from kvmtop.offline.report import report_to_dict
    from kvmtop.offline.trace_import import import_file

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    imp = import_file(path)
    d = report_to_dict(imp)
    dt = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"lines": d["lines"], "events": d["events"], "seconds": dt,
                      "rss_before_kb": before, "peak_rss_kb": peak}))


def run_child(path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", path], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--dir", default="/tmp")
    ap.add_argument("--child")
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return 0
    sizes = [args.lines // 2, args.lines]
    results = []
    for n in sizes:
        path = os.path.join(args.dir, f"kvmtop-bench-{n}.txt")
        if not os.path.exists(path) or _count_lines(path) != n:
            t0 = time.perf_counter()
            generate(path, n)
            print(f"generated {path}: {n:,} lines, {os.path.getsize(path) / 2**20:.0f} MiB "
                  f"in {time.perf_counter() - t0:.1f} s")
        runs = [run_child(path) for _ in range(3)]
        best = min(runs, key=lambda r: r["seconds"])
        best["peak_rss_kb"] = max(r["peak_rss_kb"] for r in runs)
        results.append((n, path, best))
    print()
    print(f"{'lines':>10}  {'MiB':>5}  {'seconds':>8}  {'lines/s':>10}  {'peak RSS':>9}  {'RSS at start':>12}")
    for _n, path, r in results:
        print(f"{r['lines']:>10,}  {os.path.getsize(path) / 2**20:>5.0f}  {r['seconds']:>8.2f}  "
              f"{r['lines'] / r['seconds']:>10,.0f}  {r['peak_rss_kb'] / 1024:>7.1f} MiB  "
              f"{r['rss_before_kb'] / 1024:>8.1f} MiB")
    speed = results[-1][2]["lines"] / results[-1][2]["seconds"]
    growth = (results[-1][2]["peak_rss_kb"] - results[0][2]["peak_rss_kb"]) / 1024
    print()
    print(f"import speed: {speed:,.0f} lines/s (target {TARGET:,}: {'met' if speed >= TARGET else 'NOT met'}); "
          f"peak RSS grows {growth:+.1f} MiB from {sizes[0]:,} to {sizes[1]:,} lines")
    return 0


if __name__ == "__main__":
    sys.exit(main())
