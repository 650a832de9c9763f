"""Command line: pick a source and a front end, turn every failure into one line."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .sources.base import SourceError

DEFAULT_MAX_KEYS = 16384

COLOR_SYSTEMS = {"16": "standard", "256": "256", "truecolor": "truecolor"}


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0.1 <= value <= 60:
        raise argparse.ArgumentTypeError("the interval must be between 0.1 and 60 seconds")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _add_source_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--delay", dest="interval", type=_interval, default=1.0, metavar="S",
                   help="seconds between updates (default 1)")
    p.add_argument("-p", "--pid", type=_positive, help="only the VM with this process id")
    p.add_argument("--max-keys", type=_positive, default=DEFAULT_MAX_KEYS, metavar="N",
                   help=f"BPF map size: distinct (VM, vCPU, reason) keys per interval (default {DEFAULT_MAX_KEYS})")
    p.add_argument("--demo", action="store_true", help="synthetic data: no KVM or root needed")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kvmtop",
        description="Live view of what KVM guests cost the host: VM exits, exit latency percentiles, "
                    "exit reasons, hypercalls, vcpu->requests bits and userspace exits.",
        epilog="commands: doctor, record, replay, report (kvmtop COMMAND -h for each)",
    )
    p.add_argument("--version", action="version", version=f"kvmtop {__version__}")
    _add_source_options(p)
    out = p.add_mutually_exclusive_group()
    out.add_argument("--once", action="store_true", help="print one interval as text and exit (like kvm_stat -1)")
    out.add_argument("--batch", "-b", action="store_true", help="print intervals as text (like top -b)")
    p.add_argument("-n", "--iterations", type=_positive, metavar="N", help="with --batch/--json: stop after N intervals")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object per line per interval (schema kvmtop.snapshot/1)")
    p.add_argument("--filter", metavar="REASON[,REASON...]",
                   help="show only these exit reasons (prefix with ! to exclude them)")
    p.add_argument("--color", choices=("auto", "16", "256", "truecolor", "none"), default="auto",
                   help="colour depth of the dashboard (sudo often drops COLORTERM)")

    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("doctor", help="check prerequisites and say what each missing piece means")
    rec = sub.add_parser("record", help="record the live stream to a compressed file")
    rec.add_argument("-o", "--output", required=True, metavar="FILE")
    rec.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    _add_source_options(rec)
    rep = sub.add_parser("replay", help="open the dashboard over a recording or a trace capture")
    rep.add_argument("file", metavar="FILE")
    rep.add_argument("--speed", type=float, default=1.0, help="replay speed factor (default 1)")
    rep.add_argument("--window", type=_interval, default=1.0, metavar="S",
                     help="for trace captures: seconds of trace time per interval (default 1)")
    rep.add_argument("--filter", metavar="REASON[,REASON...]")
    rep.add_argument("--color", choices=("auto", "16", "256", "truecolor", "none"), default="auto")
    rpt = sub.add_parser("report", help="statistics of a trace capture (ftrace, trace-cmd, perf script)")
    rpt.add_argument("file", metavar="FILE")
    rpt.add_argument("--json", action="store_true", help="print one JSON object (schema kvmtop.report/1)")
    return p


def _live_source(args):
    if args.demo:
        from .sources.demo import DemoSource

        return DemoSource()
    from .collector import LiveSource

    return LiveSource(pid=args.pid, max_keys=args.max_keys)


def _set_color(choice: str) -> None:
    """Textual reads these at import time, so this runs before any UI import."""
    if choice == "none":
        os.environ["NO_COLOR"] = "1"
    elif choice in COLOR_SYSTEMS:
        os.environ["TEXTUAL_COLOR_SYSTEM"] = COLOR_SYSTEMS[choice]


def _reason_filter(text):
    from .filtering import ReasonFilter

    return ReasonFilter.parse(text)


def _print_stream(feed, args) -> int:
    from .snapshot_json import snapshot_to_json
    from .text import render

    count = 1 if args.once else args.iterations
    rf = _reason_filter(args.filter)
    first = True
    for snap in feed.snapshots(count):
        if rf is not None:
            snap = rf.apply(snap)
        if args.json:
            print(snapshot_to_json(snap), flush=True)
        else:
            if not first:
                print()
            print(render(snap), flush=True)
        first = False
    return 0


def _dashboard(feed, args, title: str) -> int:
    _set_color(args.color)
    from .ui.app import run_dashboard

    return run_dashboard(feed, reason_filter=_reason_filter(args.filter), title=title)


def run(args) -> int:
    from .feed import Feed

    if args.command == "doctor":
        from .doctor import main as doctor_main

        return doctor_main([])
    if args.command == "report":
        from .offline.report import report_main

        return report_main(args.file, args.json, sys.stdout)
    if args.command == "record":
        from .offline.recording import record_main

        return record_main(_live_source(args), args.output, args.interval, args.duration, sys.stdout)
    if args.command == "replay":
        from .sources.recording import open_replay_source

        feed = Feed(open_replay_source(args.file, window_s=args.window), speed=args.speed)
        feed.open()
        try:
            return _dashboard(feed, args, f"kvmtop replay {os.path.basename(args.file)}")
        finally:
            feed.close()

    feed = Feed(_live_source(args), interval_s=args.interval)
    feed.open()
    try:
        if args.once or args.batch or args.json:
            return _print_stream(feed, args)
        return _dashboard(feed, args, "kvmtop (demo)" if args.demo else "kvmtop")
    finally:
        feed.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None and args.iterations and not (args.batch or args.json):
        args.batch = True
    try:
        return run(args)
    except SourceError as exc:
        print(f"kvmtop: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output closed early (kvmtop --batch | head): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0


if __name__ == "__main__":
    sys.exit(main())
