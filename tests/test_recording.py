"""Recordings: exact round trips, identical snapshots on replay, truncated files, record_main."""

from __future__ import annotations

import io
import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.commands.record import record_main
from kvmtop.decode import ISA_SVM, ISA_VMX
from kvmtop.errors import SourceError
from kvmtop.feed import Feed
from kvmtop.model import CollectorStatus, InFlight, Interval, Latency, Stat, ThreadInterval, VmIdentity
from kvmtop.offline.recording import (
    SCHEMA,
    RecordingWriter,
    interval_from_json,
    interval_to_json,
)
from kvmtop.offline.recording_reader import read_recording
from kvmtop.snapshot_json import snapshot_to_dict
from kvmtop.sources.recording import RecordingSource, open_replay_source
from kvmtop.sources.trace import TraceSource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRACES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "traces")


def make_intervals(n: int = 30, seed: int = 7) -> list[Interval]:
    """Hand-made intervals with varied content: VMs coming and going, both ISAs, pseudo codes,
    huge latencies, request bits, notes with odd characters, kernels."""
    rnd = random.Random(seed)
    out = []
    t0 = 1_700_000_000.123456
    for i in range(n):
        vms = {}
        threads = []
        for pid in (100, 200, 300)[: 1 + i % 3]:
            tids = [pid + k for k in range(1, 1 + rnd.randint(1, 4))]
            vms[pid] = VmIdentity(pid=pid, name=f"vm-{pid} «guest»", start_time=pid * 1000 + 17,
                                  vcpu_index={t: k for k, t in enumerate(tids)},
                                  comms={t: f"CPU {k}/KVM" for k, t in enumerate(tids)})
            for k, tid in enumerate(tids):
                if rnd.random() < 0.2:
                    continue  # an idle vCPU
                isa = ISA_SVM if pid == 300 else ISA_VMX
                reasons = {}
                for code in rnd.sample([1, 12, 30, 48, 0x400, 0x7C, 0x80000021], rnd.randint(1, 4)):
                    values = [rnd.choice([0, 1, 7, 900, 4096, 12_345, 2**36]) for _ in range(rnd.randint(0, 6))]
                    reasons[(isa, code)] = Stat(len(values) + rnd.randint(0, 2), Latency.from_values(values))
                userspace = {c: Stat(rnd.randint(1, 9), Latency.from_values([rnd.randint(1, 10**6)]))
                             for c in rnd.sample([2, 6, 0x80000004, 0x8000000E], 2)}
                hypercalls = {5: Stat(2, Latency.from_values([1500, 2500]))} if k == 0 else {}
                requests = {0: rnd.randint(0, 5), 12: 1} if rnd.random() < 0.5 else {}
                lost = {}
                if i % 5 == 1 and k == 0:  # rows a full map cut, and a vCPU stuck in its VMM
                    userspace[7] = Stat(0, lost=3)
                    hypercalls = {5: Stat(2, Latency.from_values([1500, 2500]), lost=1)}
                    lost = {12: 2, 40: 1}
                threads.append(ThreadInterval(pid=pid, tid=tid, vcpu_id=None if k == 3 else k * 2,
                                              reasons=reasons, userspace=userspace,
                                              hypercalls=hypercalls, requests=requests, requests_lost=lost,
                                              in_userspace=InFlight(6, 3_200_000_000 + i) if lost else None))
        status = CollectorStatus(drops=i % 3, unmatched_exits=i % 2, unmatched_entries=i % 5,
                                 poll_ms=0.1 * i, drops_by_map={"events": i} if i % 4 == 0 else {},
                                 drops_by_kind={"userspace": 3, "requests": 3} if i % 5 == 1 else {},
                                 features={"exits": True, "requests": i % 2 == 0, "hypercalls": False},
                                 notes=("no kvm_hypercall \x1b[31m", "ok") if i % 2 else ())
        out.append(Interval(time=t0 + i * 0.5, interval_s=0.5, threads=tuple(threads), vms=vms,
                            status=status, kernel=None if i % 7 == 0 else "6.14.0-rc1"))
    return out


def snapshots(intervals: list[Interval]) -> list[dict]:
    """snapshot_to_dict of each interval plus the history series a screen draws."""
    builder = SnapshotBuilder(history_len=12)
    out = []
    for iv in intervals:
        snap = builder.build(iv)
        d = snapshot_to_dict(snap)
        hist = {"host": (snap.host.history, snap.host.userspace_history,
                         [snap.host.reason_history(r.key) for r in snap.host.reasons])}
        for vm in snap.vms:
            hist[vm.pid] = (vm.history, vm.userspace_history, [vm.reason_history(r.key) for r in vm.reasons],
                            [(c.tid, c.history, c.userspace_history) for c in vm.vcpus])
        out.append((d, hist))
    return out


# --------------------------------------------------------------------------- round trips


def test_interval_json_round_trip_is_exact():
    for iv in make_intervals():
        assert interval_from_json(interval_to_json(iv)) == iv


def test_write_read_round_trip_and_identical_snapshots(tmp_path):
    ivs = make_intervals()
    path = str(tmp_path / "rec.kvmtop")
    meta = {"source": "demo", "interval_s": 0.5, "note": "é"}
    with RecordingWriter(path, meta) as w:
        for iv in ivs:
            w.write(iv)
    got_meta, got, warning = read_recording(path)
    assert got_meta == meta and warning is None
    assert got == ivs
    assert snapshots(got) == snapshots(ivs)
    with open(path, "rb") as f:
        assert f.read(2) == b"\x1f\x8b"  # gzip


@pytest.mark.parametrize("name,window", [
    ("lkml-2023-03-30_krause-cr0wp_vmx-newfmt_2vcpu.txt", 0.0001),
    ("amd-svm_kvm-lists_2019-2024_three-eras.txt", 1.0),
])
def test_trace_import_records_and_replays_identically(tmp_path, name, window):
    path = os.path.join(TRACES, name)
    ivs = TraceSource(path, window).intervals
    rec = str(tmp_path / "trace.kvmtop")
    with RecordingWriter(rec, {"source": name}) as w:
        for iv in ivs:
            w.write(iv)
    src = open_replay_source(rec)
    assert isinstance(src, RecordingSource) and list(src.intervals) == ivs
    assert snapshots(src.intervals) == snapshots(ivs)


# --------------------------------------------------------------------------- damage


def test_truncated_recording_yields_its_complete_prefix(tmp_path):
    ivs = make_intervals(12)
    path = str(tmp_path / "rec.kvmtop")
    with RecordingWriter(path, {"source": "demo"}) as w:
        for iv in ivs:
            w.write(iv)
    with open(path, "rb") as f:
        data = f.read()
    cut_path = str(tmp_path / "cut.kvmtop")
    seen = set()
    for cut in range(len(data) - 1, 0, -max(1, len(data) // 97)):
        with open(cut_path, "wb") as f:
            f.write(data[:cut])
        try:
            meta, got, warning = read_recording(cut_path)
        except SourceError:  # cut inside the header line
            continue
        assert meta == {"source": "demo"}
        assert got == ivs[: len(got)]
        assert warning is not None and f": {len(got)} intervals, stops at byte " in warning
        assert "(truncated" in warning
        seen.add(len(got))
    assert len(seen) > 5  # many different prefixes were exercised


def test_killed_recorder_leaves_a_readable_prefix(tmp_path):
    path = str(tmp_path / "killed.kvmtop")
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {ROOT!r})
        sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from test_recording import make_intervals
        from kvmtop.offline.recording import RecordingWriter
        w = RecordingWriter({path!r}, {{"source": "killed"}})
        for iv in make_intervals(5):
            w.write(iv)
        print("written", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "written"
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    meta, got, warning = read_recording(path)
    assert meta == {"source": "killed"} and got == make_intervals(5)
    assert "truncated" in warning


def test_damaged_and_foreign_files_are_one_line_source_errors(tmp_path):
    cases = {
        "empty": b"",
        "text": b"hello\n",
        "other-schema": b'{"schema": "kvmtop.recording/2"}\n',
        "json": b'{"schema": "something/1"}\n',
    }
    for name, data in cases.items():
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(SourceError) as e:
            read_recording(str(p))
        assert "\n" not in str(e.value)
    with pytest.raises(SourceError, match="unsupported schema"):
        read_recording(str(tmp_path / "other-schema"))
    with pytest.raises(SourceError, match="cannot read"):
        read_recording(str(tmp_path / "missing"))


def test_damaged_record_in_the_middle_is_skipped(tmp_path):
    ivs = make_intervals(3)
    import json

    lines = [json.dumps({"schema": SCHEMA, "source": "x"})]
    lines += [json.dumps(interval_to_json(iv)) for iv in ivs]
    lines[2] = lines[2][: len(lines[2]) // 2]  # a plain (uncompressed) recording with a cut record
    lines.append(json.dumps({"end": 3}))
    (tmp_path / "plain.kvmtop").write_text("\n".join(lines) + "\n")
    meta, got, warning = read_recording(str(tmp_path / "plain.kvmtop"))
    assert got == [ivs[0], ivs[2]]
    assert warning == ("recording plain.kvmtop: 2 intervals, 1 damaged record skipped "
                       "(the first after interval 1: not JSON (JSONDecodeError))")


# --------------------------------------------------------------------------- replay sources


def test_open_replay_source_tells_recordings_from_traces(tmp_path):
    rec = str(tmp_path / "rec.kvmtop")
    with RecordingWriter(rec, {}) as w:
        for iv in make_intervals(4):
            w.write(iv)
    src = open_replay_source(rec)
    assert isinstance(src, RecordingSource) and src.paced is False and len(src.intervals) == 4
    src.open()
    assert [src.next_interval() for _ in range(5)][-1] is None
    src.reset()
    assert src.next_interval() == src.intervals[0]
    src.close()
    src.close()

    trace = tmp_path / "t.txt"
    trace.write_text(" CPU 0/KVM-5 [000] d....  1.000001: kvm_exit: vcpu 0 reason HLT rip 0x1 info1 0x0 "
                     "info2 0x0 intr_info 0x00000000 error_code 0x00000000\n")
    t = open_replay_source(str(trace), window_s=0.5)
    assert isinstance(t, TraceSource) and t.paced is False and len(t.intervals) == 1

    empty = tmp_path / "empty.kvmtop"
    RecordingWriter(str(empty), {}).close()
    for bad in (str(empty), str(tmp_path / "missing"), str(tmp_path), "/etc/hostname"):
        with pytest.raises(SourceError) as e:
            open_replay_source(bad)
        assert "\n" not in str(e.value)


def test_feed_replays_a_recording_with_seek(tmp_path):
    ivs = make_intervals(20)
    rec = str(tmp_path / "rec.kvmtop")
    with RecordingWriter(rec, {}) as w:
        for iv in ivs:
            w.write(iv)
    feed = Feed(open_replay_source(rec), history_len=12)
    assert feed.seekable and feed.length == 20
    feed.open()
    feed.seek(15)
    snap = feed.next_snapshot()
    # seeking rebuilds the history window that ends at 15: the same snapshot as building 1..15
    assert snapshot_to_dict(snap) == snapshots(ivs[:15])[-1][0]
    assert snap.host.history == snapshots(ivs[:15])[-1][1]["host"][0]
    feed.close()


# --------------------------------------------------------------------------- record_main


class FakeLive:
    """A paced source handing out prepared intervals (raising what it is told to)."""

    name = "fake live"
    paced = True

    def __init__(self, intervals, interrupt_at: int | None = None):
        self._items = list(intervals)
        self.interrupt_at = interrupt_at
        self.calls = 0
        self.opened = self.closed = False

    def open(self):
        self.opened = True

    def next_interval(self):
        self.calls += 1
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        return self._items.pop(0) if self._items else None

    def reset(self):
        pass

    def close(self):
        self.closed = True


def test_record_main_stops_after_the_duration(tmp_path):
    ivs = make_intervals(10)
    src = FakeLive(ivs)
    out = io.StringIO()
    path = str(tmp_path / "rec.kvmtop")
    assert record_main(src, path, interval_s=0.1, duration_s=0.3, out=out) == 0
    assert src.opened and src.closed
    meta, got, warning = read_recording(path)
    assert got == ivs[:3] and warning is None
    assert meta["source"] == "fake live" and meta["interval_s"] == 0.1
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1] == f"recorded 3 intervals to {path}"
    assert all(path in ln for ln in lines[:3])


def test_record_main_handles_ctrl_c(tmp_path):
    ivs = make_intervals(10)
    path = str(tmp_path / "rec.kvmtop")
    assert record_main(FakeLive(ivs, interrupt_at=3), path, 0.1, None, io.StringIO()) == 0
    _, got, warning = read_recording(path)
    assert got == ivs[:2] and warning is None  # closed cleanly


def test_record_main_source_that_cannot_start_creates_no_file(tmp_path):
    class Broken(FakeLive):
        def open(self):
            raise SourceError("no BPF here")

    path = tmp_path / "rec.kvmtop"
    with pytest.raises(SourceError):
        record_main(Broken([]), str(path), 0.1, 1.0, io.StringIO())
    assert not path.exists()
    src = FakeLive([])
    with pytest.raises(SourceError, match="cannot write"):
        record_main(src, str(tmp_path / "no" / "such" / "dir.kvmtop"), 0.1, 1.0, io.StringIO())
    assert not src.opened  # the path is checked before the source starts


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_record_main_stops_cleanly_on_sigterm_and_ctrl_c(tmp_path, sig):
    path = str(tmp_path / "term.kvmtop")
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {ROOT!r})
        sys.path.insert(0, {os.path.join(ROOT, "tests")!r})
        from test_recording import FakeLive, make_intervals
        from kvmtop.commands.record import record_main
        sys.exit(record_main(FakeLive(make_intervals(1000)), {path!r}, 0.1, None, sys.stdout))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        for _ in range(2):
            assert path in proc.stdout.readline()
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert proc.returncode == 0
    _, got, warning = read_recording(path)
    assert warning is None and len(got) >= 2 and got == make_intervals(len(got))
    assert rest.strip().endswith(f"recorded {len(got)} intervals to {path}")


def test_writer_flushes_each_record(tmp_path):
    path = str(tmp_path / "live.kvmtop")
    w = RecordingWriter(path, {})
    ivs = make_intervals(3)
    for k, iv in enumerate(ivs, 1):
        w.write(iv)
        _, got, warning = read_recording(path)  # readable while still being written
        assert got == ivs[:k] and "truncated" in warning
    w.close()
    w.close()  # twice is fine
    with pytest.raises(ValueError):
        w.write(ivs[0])
    assert time.time() > 0
