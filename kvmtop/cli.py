"""Command line: parse the arguments, dispatch to a front end in ``kvmtop.commands``, turn
every failure into one line."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import os
import sys

from .bpf.program import DEFAULT_MAX_KEYS
from .errors import SourceError
from .exporter import DEFAULT_FORGET_AFTER_S, DEFAULT_INTERVAL_S, DEFAULT_IO_TOP, DEFAULT_LISTEN
from .pacing import MAX_DURATION, MAX_INTERVAL, MAX_SPEED, MIN_INTERVAL, MIN_SPEED


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def _bounded(lo: float, hi: float, what: str):
    def parse(text: str) -> float:
        value = _number(text)
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"{what} must be between {lo:g} and {hi:g} (got {text})")
        return value
    return parse


_interval = _bounded(MIN_INTERVAL, MAX_INTERVAL, "the interval (seconds)")
_duration = _bounded(MIN_INTERVAL, MAX_DURATION, "the duration (seconds)")
_speed = _bounded(MIN_SPEED, MAX_SPEED, "the speed factor")
_probe_seconds = _bounded(0, 60, "the probe time (seconds)")
_seconds = _bounded(0, MAX_DURATION, "the time (seconds)")


class _Version(argparse.Action):
    """--version: which checkout runs (a launcher may point at another one); git only asked then."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from .provenance import version_line

        print(version_line())
        parser.exit()


def _guest_pattern(text: str) -> str:
    """-g: text, a glob or a regular expression (kvmtop.selection)."""
    from .selection import NamePattern

    try:
        if NamePattern.parse(text) is None:
            raise argparse.ArgumentTypeError("an empty guest name")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _whole(lo: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be {lo} or more")
        return value
    return parse


_positive = _whole(1)
_non_negative = _whole(0)

# Options given before a command land in their own dest (argparse.SUPPRESS: absent unless
# given); the copies a command has of them write to SUB + dest. ``_resolve`` merges both:
# the command's copy wins, then the global one, then the default; a global option the
# command does not take is an error, never silently dropped.
SUB = "sub_"
DEFAULTS = {"interval": 1.0, "pid": None, "max_keys": DEFAULT_MAX_KEYS, "demo": False, "once": False,
            "batch": False, "iterations": None, "json": False, "csv": False, "output": None, "filter": None,
            "color": "auto", "guest": None, "vms": None, "vcpus": None, "no_kvm_exit": False, "io": False}
COMMAND_DEFAULTS = {"export": {"interval": DEFAULT_INTERVAL_S}}
SOURCE = frozenset({"interval", "pid", "max_keys", "demo", "guest", "vms", "vcpus", "no_kvm_exit", "io"})
MAX_DEMO_VMS = 100_000
MAX_DEMO_VCPUS = 1024
DEMO_ONLY = ("vms", "vcpus", "no_kvm_exit")  # they shape the synthetic host
STREAM = frozenset({"once", "batch", "iterations", "json", "csv", "output"})
TAKES = {"record": SOURCE | {"output"}, "replay": STREAM | {"filter", "color", "guest"},
         "report": frozenset({"json", "pid", "guest"}), "doctor": frozenset(), "export": SOURCE}
COLORS = ("auto", "16", "256", "truecolor", "none")


def _add_source_options(p: argparse.ArgumentParser, prefix: str = "", interval: float = 1.0) -> None:
    p.add_argument("-d", "--delay", dest=prefix + "interval", type=_interval, default=argparse.SUPPRESS,
                   metavar="S", help=f"seconds between updates (default {interval:g})")
    p.add_argument("-p", "--pid", dest=prefix + "pid", type=_positive, default=argparse.SUPPRESS,
                   help="only the VM with this process id")
    p.add_argument("--max-keys", dest=prefix + "max_keys", type=_positive, default=argparse.SUPPRESS, metavar="N",
                   help=f"BPF map size: distinct (VM, vCPU, reason) keys per interval (default {DEFAULT_MAX_KEYS})")
    p.add_argument("--demo", dest=prefix + "demo", action="store_true", default=argparse.SUPPRESS,
                   help="synthetic data: no KVM or root needed")
    p.add_argument("--vms", dest=prefix + "vms", type=_whole(1), metavar="N", default=argparse.SUPPRESS,
                   help=f"with --demo: this many guests (default 6, at most {MAX_DEMO_VMS:,})")
    p.add_argument("--vcpus", dest=prefix + "vcpus", type=_whole(1), metavar="M", default=argparse.SUPPRESS,
                   help=f"with --demo: every guest has M vCPUs (default 1-8 by guest, at most {MAX_DEMO_VCPUS})")
    p.add_argument("--no-kvm-exit", dest=prefix + "no_kvm_exit", action="store_true", default=argparse.SUPPRESS,
                   help="with --demo: a host where kvm_exit never fires, as on PVM (userspace exits only)")
    p.add_argument("--io", dest=prefix + "io", action="store_true", default=argparse.SUPPRESS,
                   help="count PIO ports and MMIO addresses all the time (else only while the guest "
                        "screen shows them: their probes cost nothing otherwise), and put them in --json "
                        "(io), --csv (pio/mmio rows), --once/--batch, record and export")
    _add_guest(p, prefix)


def _add_guest(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("-g", "--guest", dest=prefix + "guest", type=_guest_pattern, metavar="NAME",
                   default=argparse.SUPPRESS,
                   help="only guests whose names match NAME: text, a glob (web-*) or a regular "
                        "expression (^db-(pg|my)), case ignored (like kvm_stat -g)")


def _add_stream_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """--once/--batch/--json/--csv/-n/-o: the printed front end (live, and replay)."""
    out = p.add_mutually_exclusive_group()
    out.add_argument("--once", dest=prefix + "once", action="store_true", default=argparse.SUPPRESS,
                     help="print one interval as text and exit (like kvm_stat -1)")
    out.add_argument("--batch", "-b", dest=prefix + "batch", action="store_true", default=argparse.SUPPRESS,
                     help="print intervals as text (like top -b)")
    p.add_argument("-n", "--iterations", dest=prefix + "iterations", type=_positive, metavar="N",
                   default=argparse.SUPPRESS, help="with --batch/--json: stop after N intervals")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", dest=prefix + "json", action="store_true", default=argparse.SUPPRESS,
                     help="print one JSON object per line per interval (schema kvmtop.snapshot/1)")
    fmt.add_argument("--csv", dest=prefix + "csv", action="store_true", default=argparse.SUPPRESS,
                     help="print CSV, one row per VM and reason per interval, after a header line")
    p.add_argument("-o", "--output", dest=prefix + "output", metavar="FILE", default=argparse.SUPPRESS,
                   help="with --once/--batch/--json/--csv: append to FILE instead of stdout; "
                        "SIGHUP reopens it (logrotate)")


def _add_filter(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--filter", dest=prefix + "filter", metavar="REASON[,REASON...]", default=argparse.SUPPRESS,
                   help="show only these exit reasons or KVM_EXIT_* reasons, by name or regular "
                        "expression like kvm_stat -f (EPT_.*); prefix with ! to exclude them")


def _add_color(p: argparse.ArgumentParser, prefix: str = "") -> None:
    p.add_argument("--color", dest=prefix + "color", choices=COLORS, default=argparse.SUPPRESS,
                   help="colour depth of the dashboard (sudo often drops COLORTERM)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kvmtop",
        description="Live view of what KVM guests cost the host: VM exits, exit latency percentiles, "
                    "exit reasons, hypercalls, vcpu->requests bits and userspace exits.",
        epilog="commands: doctor, record, replay, report, export (kvmtop COMMAND -h for each). Options "
               "before a command apply to it where it takes them (kvmtop -p PID record ...); others are refused.",
    )
    p.add_argument("--version", action=_Version, help="print the version and the checkout kvmtop runs from")
    _add_source_options(p)
    _add_stream_options(p)
    _add_filter(p)
    _add_color(p)

    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    doc = sub.add_parser("doctor", help="check prerequisites and say what each missing piece means")
    doc.add_argument("--probe-seconds", type=_probe_seconds, default=1.0, metavar="S",
                     help="how long to watch the tracepoints fire (0: skip the probe)")
    rec = sub.add_parser("record", help="record the live stream to a compressed file")
    rec.add_argument("-o", "--output", dest=SUB + "output", default=argparse.SUPPRESS, metavar="FILE",
                     help="the recording to write (required)")
    rec.add_argument("--duration", type=_duration, metavar="S", help="stop after S seconds (default: until Ctrl-C)")
    _add_source_options(rec, SUB)
    rep = sub.add_parser("replay", help="a recording or a trace capture in the dashboard, or printed "
                                         "with --once/--batch/--json/--csv as live")
    rep.add_argument("file", metavar="FILE")
    rep.add_argument("--speed", type=_speed, default=None,
                     help=f"replay speed factor, {MIN_SPEED:g} to {MAX_SPEED:g} (default 1 in the dashboard; "
                          "printed output comes at once)")
    rep.add_argument("--window", type=_interval, default=1.0, metavar="S",
                     help="for trace captures: seconds of trace time per interval (default 1)")
    _add_filter(rep, SUB)
    _add_guest(rep, SUB)
    _add_color(rep, SUB)
    _add_stream_options(rep, SUB)
    rpt = sub.add_parser("report", help="statistics of a capture (ftrace, trace-cmd, perf script, perf.data, "
                                        "trace.dat) or of a recording")
    rpt.add_argument("file", metavar="FILE")
    rpt.add_argument("--json", dest=SUB + "json", action="store_true", default=argparse.SUPPRESS,
                     help="print one JSON object (schema kvmtop.report/1)")
    rpt.add_argument("-p", "--pid", dest=SUB + "pid", type=_non_negative, default=argparse.SUPPRESS,
                     help="only the VM with this pid (as the report lists it)")
    rpt.add_argument("-t", "--tid", type=_non_negative, help="only this thread")
    rpt.add_argument("-g", "--guest", dest=SUB + "guest", type=_guest_pattern, metavar="NAME",
                     default=argparse.SUPPRESS,
                     help="only the VM of this name, else the VMs it fits: text (contained, any case), "
                          "a glob or a regular expression")
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
    exp.add_argument("--io-top", type=_non_negative, default=None, metavar="N",
                     help=f"with --io: kvmtop_io_accesses_total has a series for the N busiest addresses of "
                          f'each VM, the rest summed in address="other" (default {DEFAULT_IO_TOP})')
    exp.add_argument("--forget-after", type=_seconds, default=DEFAULT_FORGET_AFTER_S, metavar="S",
                     help=f"drop an exited VM's series after S seconds (default {DEFAULT_FORGET_AFTER_S:g})")
    _add_source_options(exp, SUB, interval=DEFAULT_INTERVAL_S)
    return p


def _flag(p: argparse.ArgumentParser, dest: str) -> str:
    return next(("/".join(a.option_strings) for a in p._actions if a.dest == dest and a.option_strings), dest)


def _resolve(p: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.Namespace:
    """Merge global and command options (see SUB); refuse global ones the command does not take."""
    if args.command is not None:
        refused = sorted(k for k in DEFAULTS if k in vars(args) and k not in TAKES[args.command])
        if refused:
            p.error(f"{', '.join(_flag(p, k) for k in refused)} does not apply to 'kvmtop {args.command}'")
    defaults = {**DEFAULTS, **COMMAND_DEFAULTS.get(args.command, {})}
    for key, default in defaults.items():
        value = getattr(args, key, default)
        if SUB + key in vars(args):
            value = vars(args).pop(SUB + key)
        setattr(args, key, value)
    shaped = [k for k in DEMO_ONLY if getattr(args, k, None)]
    if shaped and not args.demo:
        p.error(f"{', '.join(_flag(p, k) for k in shaped)} shape the synthetic host: use with --demo")
    if (args.vms or 0) > MAX_DEMO_VMS or (args.vcpus or 0) > MAX_DEMO_VCPUS:
        p.error(f"--vms: at most {MAX_DEMO_VMS:,} guests; --vcpus: at most {MAX_DEMO_VCPUS} vCPUs per guest")
    if args.command in (None, "replay") and (args.iterations or args.output) and not (
            args.batch or args.json or args.csv):
        args.batch = True
    if args.command == "export":
        if args.io_top is not None and not args.io:
            p.error("--io-top N bounds the series of --io: use with --io")
        args.io_top = DEFAULT_IO_TOP if args.io_top is None else args.io_top
    if args.command == "record" and args.output is None:
        p.error("kvmtop record: -o/--output FILE is required")
    if args.command == "record" and args.duration is not None and args.duration < args.interval:
        p.error(f"--duration {args.duration:g} is shorter than the interval ({args.interval:g} s)")
    if args.filter is not None:
        from .filtering import FilterError, ReasonFilter

        try:
            ReasonFilter.parse(args.filter, strict=True)
        except FilterError as exc:
            p.error(str(exc))
    return args


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
    parser = build_parser()
    args = _resolve(parser, parser.parse_args(argv))
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
