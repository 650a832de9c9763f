"""Command line: parse the arguments, dispatch to a front end in ``kvmtop.commands``, turn
every failure into one line."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from . import __version__
from .bpf.program import DEFAULT_MAX_KEYS
from .errors import SourceError
from .exporter import DEFAULT_FORGET_AFTER_S, DEFAULT_INTERVAL_S, DEFAULT_LISTEN
from .pacing import MAX_INTERVAL, MIN_INTERVAL


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not MIN_INTERVAL <= value <= MAX_INTERVAL:
        raise argparse.ArgumentTypeError(f"the interval must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g} seconds")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError("must be 0 or more seconds")
    return value


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _add_source_options(p: argparse.ArgumentParser, interval: float = 1.0) -> None:
    p.add_argument("-d", "--delay", dest="interval", type=_interval, default=interval, metavar="S",
                   help=f"seconds between updates (default {interval:g})")
    p.add_argument("-p", "--pid", type=_positive, help="only the VM with this process id")
    p.add_argument("--max-keys", type=_positive, default=DEFAULT_MAX_KEYS, metavar="N",
                   help=f"BPF map size: distinct (VM, vCPU, reason) keys per interval (default {DEFAULT_MAX_KEYS})")
    p.add_argument("--demo", action="store_true", help="synthetic data: no KVM or root needed")


def _add_stream_options(p: argparse.ArgumentParser) -> None:
    """--once/--batch/--json/--csv/-n/-o: the printed front end (live, and replay)."""
    out = p.add_mutually_exclusive_group()
    out.add_argument("--once", action="store_true", help="print one interval as text and exit (like kvm_stat -1)")
    out.add_argument("--batch", "-b", action="store_true", help="print intervals as text (like top -b)")
    p.add_argument("-n", "--iterations", type=_positive, metavar="N",
                   help="with --batch/--json: stop after N intervals")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help="print one JSON object per line per interval (schema kvmtop.snapshot/1)")
    fmt.add_argument("--csv", action="store_true",
                     help="print CSV, one row per VM and reason per interval, after a header line")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="with --once/--batch/--json/--csv: append to FILE instead of stdout; "
                        "SIGHUP reopens it (logrotate)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kvmtop",
        description="Live view of what KVM guests cost the host: VM exits, exit latency percentiles, "
                    "exit reasons, hypercalls, vcpu->requests bits and userspace exits.",
        epilog="commands: doctor, record, replay, report, export (kvmtop COMMAND -h for each)",
    )
    p.add_argument("--version", action="version", version=f"kvmtop {__version__}")
    _add_source_options(p)
    _add_stream_options(p)
    p.add_argument("--filter", metavar="REASON[,REASON...]",
                   help="show only these exit reasons (prefix with ! to exclude them)")
    p.add_argument("--color", choices=("auto", "16", "256", "truecolor", "none"), default="auto",
                   help="colour depth of the dashboard (sudo often drops COLORTERM)")

    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    doc = sub.add_parser("doctor", help="check prerequisites and say what each missing piece means")
    doc.add_argument("--probe-seconds", type=float, default=1.0, metavar="S",
                     help="how long to watch the tracepoints fire (0: skip the probe)")
    rec = sub.add_parser("record", help="record the live stream to a compressed file")
    rec.add_argument("-o", "--output", required=True, metavar="FILE")
    rec.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    _add_source_options(rec)
    rep = sub.add_parser("replay", help="a recording or a trace capture in the dashboard, or printed "
                                         "with --once/--batch/--json/--csv as live")
    rep.add_argument("file", metavar="FILE")
    rep.add_argument("--speed", type=float, default=None,
                     help="replay speed factor (default 1 in the dashboard; printed output comes at once)")
    rep.add_argument("--window", type=_interval, default=1.0, metavar="S",
                     help="for trace captures: seconds of trace time per interval (default 1)")
    rep.add_argument("--filter", metavar="REASON[,REASON...]")
    rep.add_argument("--color", choices=("auto", "16", "256", "truecolor", "none"), default="auto")
    _add_stream_options(rep)
    rpt = sub.add_parser("report", help="statistics of a capture (ftrace, trace-cmd, perf script, perf.data, "
                                        "trace.dat) or of a recording")
    rpt.add_argument("file", metavar="FILE")
    rpt.add_argument("--json", action="store_true", help="print one JSON object (schema kvmtop.report/1)")
    rpt.add_argument("-p", "--pid", type=_non_negative, help="only the VM with this pid (as the report lists it)")
    rpt.add_argument("-t", "--tid", type=_non_negative, help="only this thread")
    rpt.add_argument("-g", "--guest", metavar="NAME",
                     help="only the VM of this name (or the one whose name contains it)")
    rpt.add_argument("--slowest", type=_positive, metavar="N",
                     help="also list the N slowest exits and the N slowest userspace round trips")
    exp = sub.add_parser("export", help="serve Prometheus metrics on /metrics (runs the collector headless)",
                         description="Serve Prometheus metrics on /metrics; the collector polls every -d S "
                                     f"seconds (default {DEFAULT_INTERVAL_S:g}, a usual scrape interval).")
    exp.add_argument("--listen", default=DEFAULT_LISTEN, metavar="ADDR:PORT",
                     help=f"where to serve (default {DEFAULT_LISTEN}; [::1]:PORT for IPv6)")
    exp.add_argument("--per-vcpu", action="store_true", help="also kvmtop_vcpu_exits_total per vCPU")
    exp.add_argument("--buckets", choices=("default", "fine"), default="default",
                     help="histogram buckets: every other power of two (default) or four per power of two")
    exp.add_argument("--forget-after", type=_seconds, default=DEFAULT_FORGET_AFTER_S, metavar="S",
                     help=f"drop an exited VM's series after S seconds (default {DEFAULT_FORGET_AFTER_S:g})")
    _add_source_options(exp, interval=DEFAULT_INTERVAL_S)
    return p


def _command(args) -> str:
    """The front end module under ``kvmtop.commands`` that runs these arguments."""
    if args.command is not None:
        return args.command
    return "stream" if args.once or args.batch or args.json or args.csv else "dashboard"


def run(args) -> int:
    """Dispatch to the command's front end (imported on demand: each pulls in what it needs)."""
    command = importlib.import_module(f"{__package__}.commands.{_command(args)}")
    return command.run(args)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command in (None, "replay") and (args.iterations or args.output) and not (
            args.batch or args.json or args.csv):
        args.batch = True
    try:
        return run(args)
    except SourceError as exc:
        print(f"kvmtop: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output closed early (kvmtop --batch | head): not an error worth a traceback. Point
        # stdout at /dev/null so the interpreter's last flush does not fail again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
