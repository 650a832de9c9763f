"""Selecting guests and reasons as kvm_stat users do: -g NAME, --filter with regular
expressions and close matches for unknown names, and the dashboard's picker and header."""

from __future__ import annotations

import json

import pytest
from fake_sources import RecordedList, make_interval
from ui_helpers import column, first_snapshot, header_text, open_screen, wait_for

from kvmtop import cli
from kvmtop.aggregate import SnapshotBuilder
from kvmtop.commands import stream
from kvmtop.feed import Feed
from kvmtop.filtering import ReasonFilter, exit_reason_names, userspace_names
from kvmtop.selection import NamePattern
from kvmtop.sources.demo import DemoSource
from kvmtop.sources.selected import SelectedSource, select_guests
from kvmtop.stepped_feed import SteppedFeed
from kvmtop.ui.app import make_app
from kvmtop.ui.screens.filter import FilterScreen
from kvmtop.ui.screens.main import MainScreen

SIZE = (140, 42)


# --------------------------------------------------------------------------- name patterns


@pytest.mark.parametrize("pattern,name,hit", [
    ("redis", "redis-cache-01", True),          # text: anywhere, as htop's filter
    ("CACHE", "redis-cache-01", True),          # case ignored
    ("db-*", "db-postgres-01", True),           # glob: the whole name
    ("db-*", "mysql-db-01", False),
    ("vm[12]", "vm2", True),
    ("vm[12]", "vm12", False),
    ("^db-(pg|my)", "db-pg-01", True),          # regular expression: searched, like kvm_stat -g
    ("^db-(pg|my)", "xdb-pg", False),
    ("web.*01$", "web-frontend-01", True),
    ("a.b", "axb", False),                       # a dot alone is text, not "any character"
])
def test_name_patterns(pattern, name, hit):
    assert NamePattern(pattern).matches(name) is hit


def test_a_bad_regular_expression_is_a_one_line_error():
    with pytest.raises(ValueError, match=r"not a valid regular expression: '\^\(db'"):
        NamePattern.parse("^(db")
    assert NamePattern.parse("  ") is None


# --------------------------------------------------------------------------- -g NAME


def test_select_guests_keeps_only_matching_vms_and_their_threads():
    interval = make_interval(3)  # VM 10 "alpha" (exits), VM 20 "[b]beta[/b]…" (userspace)
    only = select_guests(interval, NamePattern("alp*"))
    assert set(only.vms) == {10} and {t.pid for t in only.threads} == {10}
    snap = SnapshotBuilder().build(only)
    assert [v.name for v in snap.vms] == ["alpha"]
    # every figure is of the selection: the host is VM 10 alone (no userspace exits)
    assert snap.host.exits == 9 and snap.host.userspace_count == 0 and snap.host.vm_count == 1


def test_selected_source_narrows_recordings_for_replay_seeking():
    source = SelectedSource(RecordedList(4), NamePattern("beta"))
    assert len(source.intervals) == 4
    assert all(set(i.vms) == {20} for i in source.intervals)
    feed = Feed(source)
    assert feed.seekable and feed.length == 4


def test_cli_guest_option_narrows_the_output(monkeypatch, capsys):
    monkeypatch.setattr(stream, "live_source",
                        lambda args: SelectedSource(DemoSource(vms=8), NamePattern(args.guest)))
    assert cli.main(["--json", "-n", "1", "-d", "0.1", "-g", "^(db|mysql)-"]) == 0
    d = json.loads(capsys.readouterr().out)
    names = [v["name"] for v in d["vms"]]
    assert names and all(n.startswith(("db-", "mysql-")) for n in names)
    assert d["host"]["vms"] == len(names)


def test_cli_guest_option_goes_through_the_real_source_builder(capsys):
    assert cli.main(["--demo", "--json", "-n", "1", "-d", "0.1", "-g", "redis*"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [v["name"][:5] for v in d["vms"]] == ["redis"] * len(d["vms"]) != []


def test_cli_guest_option_rejects_a_bad_regex(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--demo", "--once", "-g", "^(db"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "not a valid regular expression" in err and "Traceback" not in err


# --------------------------------------------------------------------------- --filter


def test_filter_takes_regular_expressions_like_kvm_stat():
    snap = SnapshotBuilder().build(make_interval(2))
    f = ReasonFilter.parse("EPT_.*", strict=True)
    assert [r.name for r in f.apply(snap).vm(10).reasons] == ["EPT_VIOLATION"]
    assert f.apply(snap).vm(20).userspace_count == 2  # names no KVM_EXIT_*: userspace left whole
    g = ReasonFilter.parse("!(HLT|KVM_EXIT_IO)", strict=True)
    narrowed = g.apply(snap)
    assert [r.name for r in narrowed.vm(10).reasons] == ["EPT_VIOLATION"]
    assert narrowed.vm(20).userspace_count == 0
    assert ReasonFilter.parse("kvm_exit_(io|mmio)", strict=True).admits_userspace(6)


@pytest.mark.parametrize("text,message", [
    ("HTL", "unknown exit reason 'HTL' (close: HLT"),
    ("HLT,EPT_VIOLATON", "unknown exit reason 'EPT_VIOLATON' (close: EPT_VIOLATION"),
    ("KVM_EXIT_MMMIO", "close: KVM_EXIT_MMIO"),
    ("NOTHING_.*", "'NOTHING_.*' matches no exit reason"),
    ("(HLT", "not a valid regular expression"),
])
def test_unknown_filter_names_are_an_error_with_close_matches(text, message):
    with pytest.raises(ValueError) as exc:
        ReasonFilter.parse(text, strict=True)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_known_spellings_are_accepted():
    for text in ("hlt", "npf", "PF excp", "EPT_VIOLATION FAILED_VMENTRY", "KVM_EXIT_IO", "restart",
                 "error(4)", "!MSR_WRITE,MSR_READ"):
        assert ReasonFilter.parse(text, strict=True) is not None


def test_cli_unknown_filter_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--demo", "--once", "--filter", "HTL"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--filter: unknown exit reason 'HTL' (close: HLT" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------- the dashboard


@pytest.mark.ui
async def test_header_shows_every_active_selection():
    feed = SteppedFeed(SelectedSource(DemoSource(vms=12), NamePattern("-0")), warmup=60)
    app = make_app(feed, reason_filter=ReasonFilter.parse("HLT"),
                   selection=[("PID", "4242"), ("Guests", "-0")])
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await pilot.press("f4", *"redis", "enter")
        await pilot.pause()
        header = header_text(app)
        for part in ("PID 4242", "Guests -0", "Rows redis", "Reasons HLT"):
            assert part in header
        assert "Selection all" not in header


@pytest.mark.ui
async def test_picker_lists_every_reason_of_the_isa_and_every_kvm_exit_seen_first():
    app = make_app(SteppedFeed(DemoSource(vms=6), warmup=60))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await open_screen(pilot, "f", FilterScreen)
        picker = app.screen
        seen = set(app.raw.reasons_seen())
        names = picker.names
        assert set(names[:len(seen)]) == seen  # the seen ones first
        assert set(exit_reason_names(1)) <= set(names)  # every VMX reason (the demo is VMX)
        assert set(userspace_names()) <= set(names)
        assert not set(exit_reason_names(2)) - set(exit_reason_names(1)) & set(names)  # no SVM-only names
        await pilot.press(*"triple")
        await pilot.pause()
        assert picker.matching("triple") == ["TRIPLE_FAULT"]  # never seen, still offered


@pytest.mark.ui
async def test_enter_on_a_ticked_reason_applies_the_filter():
    app = make_app(SteppedFeed(DemoSource(vms=6), warmup=60))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await open_screen(pilot, "f", FilterScreen)
        first_two = app.screen.matching("msr_")[:2]
        await pilot.press(*"msr_", "down", "space", "down", "space", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        assert app.reason_filter == ReasonFilter.of(first_two)
        assert "MSR_WRITE" in first_two


@pytest.mark.ui
async def test_enter_with_nothing_ticked_applies_the_highlighted_reason():
    app = make_app(SteppedFeed(DemoSource(vms=6), warmup=60))
    async with app.run_test(size=SIZE) as pilot:
        await first_snapshot(pilot)
        await open_screen(pilot, "f", FilterScreen)
        await pilot.press(*"hlt", "down", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, MainScreen))
        await pilot.pause()
        assert app.reason_filter == ReasonFilter.of(["HLT"])
        assert set(column(app, "top")) == {"HLT"}
