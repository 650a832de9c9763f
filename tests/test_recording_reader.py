"""Recordings read as a stream: indexing in any order, checkpoints, bounded memory; and the
one tolerant reader (kvmtop.offline.datafile) under recordings and trace imports."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc
from pathlib import Path

import pytest
from test_recording import make_intervals, snapshots

from kvmtop.errors import SourceError
from kvmtop.feed import Feed
from kvmtop.offline import datafile, recording_reader
from kvmtop.offline.datafile import CUT_SHORT, DAMAGED, TRAILING, head, open_data
from kvmtop.offline.recording import SCHEMA, RecordingWriter, interval_to_json, is_recording
from kvmtop.offline.recording_reader import RecordingReader
from kvmtop.snapshot_json import snapshot_to_dict
from kvmtop.sources.recording import RecordingSource


def write(path, intervals, meta=None) -> str:
    with RecordingWriter(str(path), meta or {}) as w:
        for iv in intervals:
            w.write(iv)
    return str(path)


def plain(path, intervals) -> str:
    lines = [json.dumps({"schema": SCHEMA})] + [json.dumps(interval_to_json(iv)) for iv in intervals]
    lines.append(json.dumps({"end": len(intervals)}))
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def tight(monkeypatch):
    """Checkpoints every few KiB, at most 6 of them: seeks cross many checkpoints and the
    thinning (twice the spacing) happens on small files."""
    monkeypatch.setattr(recording_reader, "FIRST_SPACING", 4096)
    monkeypatch.setattr(recording_reader, "MAX_CHECKPOINTS", 6)
    monkeypatch.setattr(datafile, "CHUNK", 1024)


@pytest.mark.parametrize("kind", ["gzip", "plain"])
def test_any_order_of_access_gives_the_recorded_intervals(tmp_path, tight, kind):
    ivs = make_intervals(60)
    path = write(tmp_path / "r.kvmtop", ivs) if kind == "gzip" else plain(tmp_path / "r.jsonl", ivs)
    with RecordingReader(path) as r:
        assert len(r) == 60 and r.warning is None
        assert 3 <= len(r._checkpoints) <= 6  # thinned, never above the bound
        order = list(range(60)) + list(range(59, -1, -1))
        order += random.Random(1).choices(range(60), k=80)
        for i in order:
            assert r[i] == ivs[i], i
        assert r[-1] == ivs[-1] and r[10:14] == ivs[10:14] and r[::25] == ivs[::25]
        with pytest.raises(IndexError):
            r[60]
    with pytest.raises(SourceError, match="closed"):
        r[3]


def test_cut_files_read_their_complete_prefix_through_checkpoints(tmp_path, tight):
    ivs = make_intervals(40)
    data = Path(write(tmp_path / "r.kvmtop", ivs)).read_bytes()
    cut = tmp_path / "cut.kvmtop"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with RecordingReader(str(cut)) as r:
        n = len(r)
        assert 0 < n < 40 and r.warning.startswith(f"recording cut.kvmtop: {n} intervals, stops at byte ")
        assert "(truncated" in r.warning and r.truncated_at <= len(data) * 2 // 3
        assert [r[i] for i in reversed(range(n))] == ivs[:n][::-1]


def test_memory_does_not_grow_with_the_length(tmp_path, monkeypatch):
    monkeypatch.setattr(recording_reader, "FIRST_SPACING", 64 << 10)
    monkeypatch.setattr(recording_reader, "MAX_CHECKPOINTS", 8)
    one = make_intervals(40)
    peaks = {}
    for n in (200, 1600):
        path = write(tmp_path / f"r{n}.kvmtop", (one[i % 40] for i in range(n)))
        tracemalloc.start()
        try:
            with RecordingReader(path) as r:
                assert len(r) == n
                for i in range(0, n, 7):
                    assert r[i] == one[i % 40]
                r[n // 3]  # a seek back
                peaks[n] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[1600] < 1.5 * peaks[200], peaks  # 8x the intervals, about the same memory


def test_feed_seeks_a_streamed_recording_like_an_in_memory_one(tmp_path, tight):
    ivs = make_intervals(50)
    feed = Feed(RecordingSource(write(tmp_path / "r.kvmtop", ivs)), history_len=12)
    feed.open()
    try:
        for position in (40, 5, 49, 12, 1):
            feed.seek(position)
            snap = feed.next_snapshot()
            assert snapshot_to_dict(snap) == snapshots(ivs[:position])[-1][0], position
            feed.set_paused(True)
            feed.step()
            nxt = feed.next_snapshot()  # stepping goes on from the seek
            assert snapshot_to_dict(nxt) == snapshots(ivs[: position + 1])[-1][0]
    finally:
        feed.close()


def test_gzip_members_one_after_another_read_as_one_stream(tmp_path):
    ivs = make_intervals(6)
    path = write(tmp_path / "r.kvmtop", ivs[:3])
    data = Path(path).read_bytes()
    # a recording whose end record is replaced by a second member holding the rest
    text = gzip.decompress(data).decode().splitlines()
    first = gzip.compress(("\n".join(text[:-1]) + "\n").encode())
    rest = [json.dumps(interval_to_json(iv)) for iv in ivs[3:]] + [json.dumps({"end": 6})]
    second = gzip.compress(("\n".join(rest) + "\n").encode())
    (tmp_path / "two.kvmtop").write_bytes(first + second + b"\0" * 512)
    with RecordingReader(str(tmp_path / "two.kvmtop")) as r:
        assert list(r) == ivs and r.warning is None


def test_trailing_garbage_and_damage_are_said(tmp_path):
    ivs = make_intervals(5)
    data = Path(write(tmp_path / "r.kvmtop", ivs)).read_bytes()
    (tmp_path / "tail.kvmtop").write_bytes(data + b"garbage")
    with RecordingReader(str(tmp_path / "tail.kvmtop")) as r:
        assert list(r) == ivs and TRAILING in r.warning
    damaged = bytearray(data)
    for k in range(len(data) // 2, len(data) // 2 + 40):
        damaged[k] ^= 0x55
    (tmp_path / "bad.kvmtop").write_bytes(bytes(damaged))
    with RecordingReader(str(tmp_path / "bad.kvmtop")) as r:  # damage costs only the records it hits
        got = list(r)
        assert 3 <= len(got) < 5 and all(iv in ivs for iv in got) and r.damaged == 5 - len(got)
        assert f"{r.damaged} damaged record" in r.warning and DAMAGED in r.warning


def test_datafile_plain_gzip_and_impostors(tmp_path):
    text = bytes(random.Random(5).choices(b"line one two\n", k=20_000))
    (tmp_path / "p.txt").write_bytes(text)
    (tmp_path / "g.gz").write_bytes(gzip.compress(text))
    (tmp_path / "fake.gz").write_bytes(b"\x1f\x8b not gzip\n" + text)  # read as it is
    (tmp_path / "cut.gz").write_bytes(gzip.compress(text)[:2000])
    for name, want_gz, want in (("p.txt", False, text), ("g.gz", True, text),
                                ("fake.gz", False, b"\x1f\x8b not gzip\n" + text)):
        with open_data(str(tmp_path / name)) as f:
            assert f.gz == want_gz
            assert f.read() == want and f.problem is None
        assert head(str(tmp_path / name), 8) == want[:8]
    with open_data(str(tmp_path / "cut.gz")) as f:
        got = f.read()
        assert f.gz and text.startswith(got) and f.problem == CUT_SHORT


def test_datafile_state_and_restore_come_back_to_a_chunk_boundary(tmp_path, monkeypatch):
    monkeypatch.setattr(datafile, "CHUNK", 512)
    text = bytes(random.Random(3).choices(b"abcdefgh\n", k=50_000))
    (tmp_path / "g.gz").write_bytes(gzip.compress(text))
    with open_data(str(tmp_path / "g.gz")) as f:
        first = f.read_chunk() + f.read_chunk()
        mark = f.state()
        rest = b"".join(iter(f.read_chunk, b""))
        assert first + rest == text
        f.restore(mark)
        assert b"".join(iter(f.read_chunk, b"")) == rest
        f.restore(mark)  # the mark is not used up
        again = f.read_chunk()
        assert again and rest.startswith(again)


def test_one_sniffer_tells_recordings_from_captures(tmp_path):
    rec = write(tmp_path / "r.kvmtop", make_intervals(2))
    assert is_recording(rec)
    plain_rec = plain(tmp_path / "r.jsonl", make_intervals(2))
    assert is_recording(plain_rec)
    (tmp_path / "t.txt").write_text("CPU 0/KVM-5 [000] 1.0: kvm_exit: reason HLT\n")
    assert not is_recording(str(tmp_path / "t.txt"))
    (tmp_path / "t.gz").write_bytes(gzip.compress(b'{"schema": "kvmtop.recording/1"}\n'))
    assert is_recording(str(tmp_path / "t.gz"))
