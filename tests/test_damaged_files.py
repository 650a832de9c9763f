"""Damaged recordings and captures keep what they can: damage costs only the damaged records,
every record is checked at the boundary, sizes are bounded, binary captures are recognised."""

from __future__ import annotations

import gzip
import json
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kvmtop.aggregate import SnapshotBuilder
from kvmtop.offline.recording import SCHEMA, RecordingWriter, interval_to_json
from kvmtop.offline.recording_reader import MAX_RECORD, RecordingReader, read_recording
from kvmtop.snapshot_json import snapshot_to_json
from kvmtop.sources.demo import DemoSource
from kvmtop.sources.recording import open_replay_source
from kvmtop.text import render

ROOT = Path(__file__).resolve().parent.parent


def demo_intervals(n: int) -> list:
    src = DemoSource(vms=2)
    src.open()
    try:
        return [src.next_interval() for _ in range(n)]
    finally:
        src.close()


def write(path: Path, intervals) -> bytes:
    with RecordingWriter(str(path), {"source": "demo"}) as w:
        for iv in intervals:
            w.write(iv)
    return path.read_bytes()


def replays_cleanly(intervals) -> None:
    """Every interval builds a snapshot that renders as text and JSON (no exception)."""
    builder = SnapshotBuilder()
    for iv in intervals:
        snap = builder.build(iv)
        render(snap)
        snapshot_to_json(snap)


# --------------------------------------------------------------------------- framing


def test_one_flipped_byte_costs_at_most_the_record_it_hits(tmp_path):
    ivs = demo_intervals(10)
    data = write(tmp_path / "r.kvmrec", ivs)
    rng = random.Random(8)
    positions = sorted(rng.sample(range(len(data) // 4, len(data) * 3 // 4), 40))
    lost_one = 0
    for pos in positions:
        bad = bytearray(data)
        bad[pos] ^= 0x5A
        path = tmp_path / "bad.kvmrec"
        path.write_bytes(bytes(bad))
        with RecordingReader(str(path)) as r:
            got = list(r)
            assert r.meta == {"source": "demo"}, pos
            assert len(got) >= 9 and [iv for iv in ivs if iv in got] == got, pos
            if len(got) == 9:
                lost_one += 1
                assert r.warning == (f"recording bad.kvmrec: 9 intervals, 1 damaged record skipped "
                                     f"({r.warning.split('skipped (', 1)[1]}"), pos
                assert "the compressed data is damaged" in r.warning
            else:  # a byte gzip does not check (a member's mtime): the record reads as written
                assert got == ivs and r.warning is None, pos
    assert lost_one > 30  # almost every flip lands in checked data


def test_a_damaged_header_keeps_the_records(tmp_path):
    ivs = demo_intervals(4)
    data = bytearray(write(tmp_path / "r.kvmrec", ivs))
    data[20] ^= 0xFF  # inside the header's member
    (tmp_path / "h.kvmrec").write_bytes(bytes(data))
    src = open_replay_source(str(tmp_path / "h.kvmrec"))
    try:
        assert list(src.intervals)[0].status.notes[-1] == src.warning
        assert [replace_notes(iv) for iv in src.intervals] == ivs
        assert "1 damaged record skipped (the first after interval 0: the header is damaged)" in src.warning
    finally:
        src.close()


def replace_notes(iv):
    from dataclasses import replace

    return replace(iv, status=replace(iv.status, notes=iv.status.notes[:-1]))


def test_killed_recorder_says_where_the_file_stops(tmp_path):
    ivs = demo_intervals(6)
    data = write(tmp_path / "r.kvmrec", ivs)
    end = data.rindex(b"\x1f\x8b\x08")  # the end record's member
    last = data.rindex(b"\x1f\x8b\x08", 0, end)  # the last interval's member
    (tmp_path / "cut.kvmrec").write_bytes(data[: last + 30])
    meta, got, warning = read_recording(str(tmp_path / "cut.kvmrec"))
    assert got == ivs[:5]
    assert warning == (f"recording cut.kvmrec: 5 intervals, stops at byte {last} "
                       "(truncated: the compressed data stops early (the file is cut short))")
    (tmp_path / "noend.kvmrec").write_bytes(data[:end])  # every record whole, no end record
    meta, got, warning = read_recording(str(tmp_path / "noend.kvmrec"))
    assert got == ivs and warning == (f"recording noend.kvmrec: 6 intervals, stops at byte {end} "
                                      "(truncated: no end record: the recorder did not finish)")


def test_replay_shows_the_warning_with_every_interval(tmp_path):
    ivs = demo_intervals(3)
    data = write(tmp_path / "r.kvmrec", ivs)
    (tmp_path / "cut.kvmrec").write_bytes(data[: data.rindex(b"\x1f\x8b\x08")])
    from kvmtop.feed import Feed

    feed = Feed(open_replay_source(str(tmp_path / "cut.kvmrec")), speed=1000)
    feed.open()
    try:
        notes = [snap.collector.notes[-1] for snap in feed.snapshots()]
    finally:
        feed.close()
    assert len(notes) == 3 and all("3 intervals, stops at byte" in n for n in notes)


# --------------------------------------------------------------------------- crafted records


CRAFTED = {
    "deep nesting": lambda rec: b'{"t": ' + b"[" * 200_000,
    "string count": lambda rec: _edit(rec, lambda o: o["threads"][0]["u"][0].__setitem__(1, "5")),
    "list pid": lambda rec: _edit(rec, lambda o: o["threads"][0].__setitem__("pid", [1])),
    "count 10**40": lambda rec: _edit(rec, lambda o: o["threads"][0]["u"][0].__setitem__(1, 10**40)),
    "bool tid": lambda rec: _edit(rec, lambda o: o["threads"][0].__setitem__("tid", True)),
    "nan dt": lambda rec: rec.replace(b'"dt": ', b'"dt": NaN, "x": '),
    "bucket 999": lambda rec: _edit(rec, lambda o: o["threads"][0]["u"][0][2][4].__setitem__(0, [999, 1])),
    "name not text": lambda rec: _edit(rec, lambda o: o["vms"][0][1].__setitem__("name", {"a": 1})),
    "not an object": lambda rec: b"[1, 2, 3]",
}


def _edit(rec: bytes, change) -> bytes:
    obj = json.loads(rec)
    change(obj)
    return json.dumps(obj).encode()


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_crafted_records_are_skipped_and_counted_never_a_traceback(tmp_path, compress):
    ivs = [iv for iv in demo_intervals(30) if any(t.userspace for t in iv.threads) and iv.vms][:len(CRAFTED) + 1]
    good = [json.dumps(interval_to_json(iv)).encode() for iv in ivs]
    lines = [json.dumps({"schema": SCHEMA}).encode()]
    for k, craft in enumerate(CRAFTED.values()):
        lines += [good[k], craft(good[k])]
    lines += [good[-1], json.dumps({"end": len(ivs)}).encode()]
    path = tmp_path / "crafted.kvmrec"
    if compress:
        path.write_bytes(b"".join(gzip.compress(ln + b"\n") for ln in lines))
    else:
        path.write_bytes(b"\n".join(lines) + b"\n")
    with RecordingReader(str(path)) as r:
        got = list(r)
        assert got == ivs
        assert r.damaged == len(CRAFTED)
        assert f"{len(ivs)} intervals, {len(CRAFTED)} damaged records skipped (the first after interval 1: " \
               "not JSON (RecursionError))" in r.warning
    replays_cleanly(got)


def test_dashboard_replays_a_crafted_recording(tmp_path):
    """The same crafted file through the real dashboard (Textual pilot): no TypeError/ValueError."""
    import asyncio

    from kvmtop.feed import Feed
    from kvmtop.ui.app import make_app

    ivs = demo_intervals(3)
    good = [json.dumps(interval_to_json(iv)).encode() for iv in ivs]
    lines = [json.dumps({"schema": SCHEMA}).encode(), good[0],
             CRAFTED["count 10**40"](good[1]), CRAFTED["string count"](good[1]), good[2]]
    path = tmp_path / "c.kvmrec"
    path.write_bytes(b"\n".join(lines) + b"\n")
    feed = Feed(open_replay_source(str(path)), speed=1000)
    feed.open()

    async def run() -> None:
        app = make_app(feed)
        async with app.run_test() as pilot:
            for _ in range(200):
                if feed.position >= 2:
                    break
                await pilot.pause(0.05)
            assert feed.position == 2 and app.error is None

    try:
        asyncio.run(run())
    finally:
        feed.close()


# --------------------------------------------------------------------------- bounded sizes


def gzip_of_one_long_line(mib: int) -> bytes:
    """A gzip member of one JSON-looking line of ``mib`` MiB, made fast: after the first, every
    sync-flushed 1 MiB block of "a" compresses to the same bytes, so it is repeated."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"a" * (1 << 20)
    start = b'{"t": 1, "x": "'
    out = [z.compress(start) + z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)]
    same = z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
    out += [same] * (mib - 1)
    z2 = zlib.compressobj(9, zlib.DEFLATED, -15)  # the tail, continuing the stream: raw deflate
    end = b'"}\n'
    crc = zlib.crc32(start)
    for _ in range(mib):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(end, crc)
    size = len(start) + mib * len(block) + len(end)
    out.append(z2.compress(end) + z2.flush() + crc.to_bytes(4, "little") + (size % 2**32).to_bytes(4, "little"))
    return b"".join(out)


def test_a_huge_line_in_a_small_gzip_is_skipped_in_bounded_memory(tmp_path):
    ivs = demo_intervals(2)
    huge = gzip_of_one_long_line(256)  # 4x the record bound
    members = [gzip.compress(json.dumps({"schema": SCHEMA}).encode() + b"\n"),
               gzip.compress(json.dumps(interval_to_json(ivs[0])).encode() + b"\n"),
               huge,
               gzip.compress(json.dumps(interval_to_json(ivs[1])).encode() + b"\n")]
    path = tmp_path / "huge.kvmrec"
    path.write_bytes(b"".join(members))
    assert path.stat().st_size < 1 << 20  # 256 MiB of line in under 1 MB
    code = ("import resource, sys\n"
            "from kvmtop.offline.recording_reader import read_recording\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "meta, got, warning = read_recording(sys.argv[1])\n"
            "print(len(got), (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
            "print(warning)\n")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, cwd=ROOT,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    first, warning = out.stdout.splitlines()
    count, grew_mib = map(int, first.split())
    assert count == 2
    assert f"1 damaged record skipped (the first after interval 1: longer than {MAX_RECORD >> 20} MiB)" in warning
    assert grew_mib < 3 * (MAX_RECORD >> 20), f"reading grew RSS by {grew_mib} MiB"


def test_a_long_line_in_a_plain_recording_is_read_without_copying_it_over_and_over(tmp_path):
    ivs = demo_intervals(2)
    lines = [json.dumps({"schema": SCHEMA}).encode(), json.dumps(interval_to_json(ivs[0])).encode(),
             b'{"t": 1, "x": "' + b"b" * (50 << 20) + b'"}', json.dumps(interval_to_json(ivs[1])).encode(),
             json.dumps({"end": 2}).encode()]
    path = tmp_path / "long.kvmrec"
    path.write_bytes(b"\n".join(lines) + b"\n")
    with RecordingReader(str(path)) as r:
        assert list(r) == ivs and r.damaged == 1
        assert r.warning == "recording long.kvmrec: 2 intervals, 1 damaged record skipped " \
                            "(the first after interval 1: record: no 'dt')"


# --------------------------------------------------------------------------- report


def report(path: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kvmtop", "report", str(path)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_report_of_random_bytes_or_an_empty_file_fails_with_one_line(tmp_path):
    (tmp_path / "random.bin").write_bytes(random.Random(1).randbytes(100_000))
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "prose.txt").write_text("hello\nworld\n")
    for name, says in (("random.bin", "holds binary data, not a text capture"), ("empty.txt", "is empty"),
                       ("prose.txt", "holds no KVM trace events (2 lines")):  # (perf.data, trace.dat:
        # test_report_live_captures)
        res = report(tmp_path / name)
        assert res.returncode == 1 and res.stdout == ""
        assert res.stderr.startswith("kvmtop report: ") and says in res.stderr and res.stderr.count("\n") == 1


# --------------------------------------------------------------------------- any damage

_SMALL = None


def _small_recording(tmp_path_factory) -> tuple[list, bytes]:
    global _SMALL
    if _SMALL is None:
        ivs = demo_intervals(5)
        _SMALL = ivs, write(tmp_path_factory.mktemp("rec") / "r.kvmrec", ivs)
    return _SMALL


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.floats(0, 1), st.integers(1, 255), st.sampled_from(["flip", "cut", "insert"])),
                      min_size=1, max_size=4))
def test_any_damage_keeps_a_subset_in_order_and_says_so(tmp_path_factory, edits):
    from kvmtop.errors import SourceError

    ivs, data = _small_recording(tmp_path_factory)
    bad = bytearray(data)
    for where, value, how in edits:
        k = int(where * (len(bad) - 1))
        if how == "flip":
            bad[k] ^= value
        elif how == "cut":
            del bad[k:]
        else:
            bad[k:k] = bytes([value]) * value
        if not bad:
            break
    path = tmp_path_factory.mktemp("bad") / "bad.kvmrec"
    path.write_bytes(bytes(bad))
    try:
        with RecordingReader(str(path)) as r:
            got = list(r)
            warning = r.warning
    except SourceError as exc:  # only when the header itself cannot be told: one line
        assert "\n" not in str(exc)
        return
    kept = iter(ivs)
    assert all(any(iv == want for want in kept) for iv in got)  # a subsequence of what was written
    if got != ivs:
        assert warning and warning.startswith(f"recording bad.kvmrec: {len(got)} intervals, ")
    replays_cleanly(got)
