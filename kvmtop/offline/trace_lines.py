"""Streaming parser of text captures of the KVM tracepoints: lines in, event tuples out.

Accepted layouts (one physical line per event; see ``TraceParser`` for wrapped lines):

* ftrace ``trace`` / ``trace_pipe``: ``comm-tid [cpu] flags ts: event: payload``, with
  4- or 5-character irq flags or none, with or without the ``( tgid)`` column; the comm
  may hold spaces and dashes (``CPU 0/KVM-1234``; the tid is the last ``-N``);
* ``trace-cmd report`` (a padded event column, ``<...>`` for an unknown comm);
* ``perf script``: ``comm tid [cpu] ts: kvm:kvm_exit: ...`` or ``comm pid/tid``,
  optionally with flags and a leading wall-clock time (``12:00:01.123456`` or
  ``2024-06-01 12:00:01.123456``), or without the ``[cpu]`` column;
* perf-prof (OpenCloudOS): a wall-clock date and time, then ``comm tid flags [cpu] ts:``
  (``2022-04-22 17:39:26.535148   <...> 126953 .... [078] 96822671.255015: kvm:kvm_exit: ...``);
* ``trace-cmd report`` of an instance's buffer: the buffer's name before the task
  (``kvm:   CPU 0/KVM-1234 [000] ...``);
* no task column at all (``[cpu] ts: ...`` or ``ts: ...``): one anonymous thread,
  tid ``ANON_TID`` (0; the idle task never fires KVM events) with an empty comm.

Events of interest (any subsystem prefix such as ``kvm:`` is dropped): ``kvm_exit`` in
every payload era (``reason X rip R [info A B]``, ``vcpu N reason X rip R info A B``,
``vcpu N reason X rip R info1 .. info2 .. intr_info .. error_code ..`` and with
``requests 0x..``), ``kvm_entry`` (``vcpu N`` with or without ``, rip ...``),
``kvm_userspace_exit``, ``kvm_hypercall``, ``kvm_pio``, ``kvm_mmio``, and the entry of
the ``KVM_RUN`` ioctl (``sys_enter_ioctl`` / ``syscalls:sys_enter_ioctl`` / ftrace's
``sys_ioctl(fd: .., cmd: ae80, ..)`` / ``raw_syscalls:sys_enter`` ``NR 16 (.., ae80, ..)``).

Every physical line is counted exactly once as an event, a skipped line (prose,
comments, tables, other events, blank lines), a bad line (a trace line that is cut short
or garbled; kept with its line number, the first ``max_bad`` of them) or a joined line
(the continuation of a wrapped event): ``lines == events + skipped + bad_count + joined``.

Timestamps become integer nanoseconds straight from the decimal string (no float):
``1404.389366`` → 1404389366000; digits past the ninth are dropped. A timestamp without
a decimal point (ftrace's counter clocks) is taken as nanoseconds.

Event tuples (``ts`` in ns, ``key`` an ``(isa, code)`` pair, ``vcpu`` KVM's vcpu_id or None)::

    (EXIT, tid, ts, key, vcpu, requests or None)
    (ENTRY, tid, ts, vcpu)
    (USERSPACE, tid, ts, code)        KVM_EXIT_* code, or decode's pseudo code for an errno
    (HYPERCALL, tid, ts, nr)
    (PIO, tid, ts, (dir, port))       dir "IN" / "OUT"
    (MMIO, tid, ts, (dir, gpa), done) dir "R" / "W"; done: a read that completes a pending one
    (RUN, tid, ts)                    KVM_RUN ioctl entry
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from .. import decode

EXIT, ENTRY, USERSPACE, HYPERCALL, PIO, MMIO, RUN = range(7)
KIND_NAMES = ("kvm_exit", "kvm_entry", "kvm_userspace_exit", "kvm_hypercall", "kvm_pio", "kvm_mmio", "KVM_RUN")

ANON_TID = 0
COMMENT = -2  # the task cache's mark for a commented-out line
GARBLED = -3  # ... and for a task column that makes no sense
KVM_RUN_CMD = 0xAE80
MAX_BAD = 100
MAX_TEXT = 300  # characters of a bad line kept
_CACHE_LIMIT = 4096

# The common layout: [task [(tgid)]] [cpu] [flags] ts: event: payload. Group 1 is the
# task with its tgid column, parsed once per distinct string (see _task). The event may
# also be followed by "(" (ftrace's syscall events) or a space (function tracer, "->").
_LINE = re.compile(
    r"([^\[]*)\[(\d+)\]\s+(?:[^\s\d]\S{3,4}\s+)?(\d{1,20})(?:\.(\d+))?:\s+([\w:]*\w)(?::\s*|\(|\s+|$)(.*)", re.A
)
# The same for a task that contains "[" (slower: the hot loop tries _LINE first).
_LINE_ANY = re.compile(
    r"(.*?)\[(\d+)\]\s+(?:[^\s\d]\S{3,4}\s+)?(\d{1,20})(?:\.(\d+))?:\s+([\w:]*\w)(?::\s*|\(|\s+|$)(.*)", re.A
)
# No task, no cpu: the author stripped them (ts: event: payload).
_BARE = re.compile(r"\s*(\d{1,20})(?:\.(\d+))?:\s+([\w:]*\w)(?::\s*|\(|\s+|$)(.*)", re.A)
# perf script without the cpu column (comm tid ts: event: payload): tried last, events of interest only.
_NOCPU = re.compile(r"(.*?\S)\s+(\d{1,20})\.(\d+):\s+([\w:]*\w)(?::\s*|\(|\s+|$)(.*)", re.A)
# Looks like the start of a trace line: a damaged one of these is a bad line, not prose.
_LOOKS = re.compile(
    r"[^\[]*\[\d{1,5}\](?:\s+(?:[^\s\d]\S{3,4}(?:\s+\d|\s*$)|\d)|\s*$)|\s*\d+\.\d+:(?:\s|$)"
)
_LOST = re.compile(r"\s*CPU:?\s*\d+\s*\[LOST (\d{1,18}) EVENTS\]", re.A)

_TGID = re.compile(r"(.*?)\s*\(\s*(\d{1,10}|-+)\s*\)$", re.A)
_WALLCLOCK = re.compile(r"(?:\d{4}-\d\d-\d\d[ T])?\d\d:\d\d:\d\d(?:\.\d+)?(?:\s+|$)", re.A)
_FTRACE_TASK = re.compile(r"(.*)-(\d{1,10})", re.A)
# perf script's "comm tid" / "comm pid/tid"; perf-prof prints the irq flags after it ("<...> 126953 d...")
_PERF_TASK = re.compile(r"(?:(.*?)\s+)?(\d{1,10})(?:/(\d{1,10}))?(?:\s+[^\s\d]\S{3,4})?", re.A)
# trace-cmd report names the buffer of an instance before the task ("kvm:   CPU 0/KVM-1234 ...")
_BUFFER = re.compile(r"[^\s:]+:\s+(?=\S)", re.A)

_HEX = r"[0-9a-fA-F]"
# Old formats end after "info A B" (or right after the rip); >= 5.10 ones must reach a complete
# error_code (and requests, when there), so a line cut short is not taken for an old one.
_EXIT = re.compile(
    r"(?:vcpu (\d{1,10}) )?reason (.+?) rip \S+"
    r"(?: info \S+ \S+"
    r"| info1 \S+ info2 \S+ intr_info \S+ error_code 0x" + _HEX + r"{8}(?: requests 0x(" + _HEX + r"{16}))?"
    r")?\s*$", re.A
)
_ENTRY = re.compile(r"vcpu (\d{1,10})(?:, rip 0x" + _HEX + r"+(?: .*)?)?\s*$", re.A)
_USERSPACE = re.compile(r"reason (\S+) \((-?\d{1,10})\)\s*$", re.A)
_HYPERCALL = re.compile(r"nr 0x(" + _HEX + r"{1,16})(?: |$)")
_PIO = re.compile(r"pio_(read|write) at 0x(" + _HEX + r"{1,8}) size \d+ count \d+")
_MMIO = re.compile(r"mmio (unsatisfied-read|read|write) len \d+ gpa 0x(" + _HEX + r"{1,16})")
_IOCTL = re.compile(r"fd: (?:0x)?" + _HEX + r"+, cmd: (?:0x)?(" + _HEX + r"{1,16})")
_RAW_ENTER = re.compile(r"NR (\d{1,6}) \((?:0x)?" + _HEX + r"+, (?:0x)?(" + _HEX + r"{1,16})", re.A)
_X86_64_IOCTL = 16
# Numbers are bounded (u32/u64 fields, at most 20 decimal digits): int() refuses huge ones.

_KINDS = {
    "kvm_exit": EXIT, "kvm_entry": ENTRY, "kvm_userspace_exit": USERSPACE,
    "kvm_hypercall": HYPERCALL, "kvm_pio": PIO, "kvm_mmio": MMIO,
    "sys_enter_ioctl": RUN, "sys_ioctl": RUN, "sys_enter": RUN,
}
_FAST = {"kvm_exit": EXIT, "kvm:kvm_exit": EXIT, "kvm_entry": ENTRY, "kvm:kvm_entry": ENTRY}
_SCALE = tuple(10 ** (9 - n) for n in range(10))
_VCPU_COMM = re.compile(r"CPU (\d{1,10})/\w+$", re.A)


class ThreadMeta:
    """What the capture tells about one thread."""

    __slots__ = ("tid", "comm", "tgid", "vcpu_id")

    def __init__(self, tid: int, comm: str, tgid: int | None):
        self.tid = tid
        self.comm = comm
        self.tgid = tgid
        self.vcpu_id: int | None = None  # KVM's vcpu_id from kvm_exit / kvm_entry

    @property
    def vcpu_index(self) -> int | None:
        """The VMM's vCPU number from a ``CPU N/KVM`` comm, else KVM's vcpu_id."""
        m = _VCPU_COMM.match(self.comm)
        return int(m.group(1)) if m else self.vcpu_id

    def __repr__(self) -> str:
        return f"ThreadMeta({self.tid}, {self.comm!r}, tgid={self.tgid}, vcpu_id={self.vcpu_id})"


def parse_ts(sec: str, frac: str | None) -> int:
    """Exact ns of ``sec.frac`` (a timestamp without a fraction is already ns)."""
    if frac is None:
        return int(sec)
    if len(frac) > 9:
        frac = frac[:9]
    return int(sec) * 1_000_000_000 + int(frac) * _SCALE[len(frac)]


_SKIP = "skip"  # results of TraceParser._process besides an event tuple
_DAMAGED = "damaged"


class TraceParser:
    """Turns lines into event tuples (see the module docstring) and keeps the summary.

    A wrapped event (a mail client broke the line: the continuation starts at column 0
    with no task prefix, or the header and the event sit on two lines) is joined when
    the first part is a damaged trace line, the next line is neither a trace line nor
    blank, and the two together parse; the continuation then counts as a joined line.
    A damaged line that no join repairs is a bad line. State is bounded: a few counters,
    one entry per thread, and the first ``max_bad`` bad lines.
    """

    def __init__(self, max_bad: int = MAX_BAD):
        self.max_bad = max_bad
        self.lines = 0
        self.events = 0
        self.skipped = 0
        self.bad_count = 0
        self.bad: list[tuple[int, str]] = []  # (line number, text), the first max_bad
        self.joined = 0
        self.lost_events = 0  # ftrace "[LOST N EVENTS]"
        self.counts = [0] * len(KIND_NAMES)  # events of each kind
        self.requests_seen = 0  # kvm_exit events that carried a requests field
        self.threads: dict[int, ThreadMeta] = {}
        self.reason_names: dict[tuple[int, int], str] = {}  # first spelling in the capture
        self.reason_spellings: dict[tuple[int, int], list[str]] = {}
        self.userspace_names: dict[int, str] = {}
        self.isa_hint: int | None = None
        self._tasks: dict[str, int] = {}
        self._reasons: dict[tuple[str, int | None], tuple[int, int] | None] = {}
        self._rcache: dict[str, tuple[int, int] | None] = {}  # name -> key under the current hint
        self._vcpu_known: set[int] = set()

    def has(self, kind: int) -> bool:
        return self.counts[kind] > 0

    # ------------------------------------------------------------------ the hot loop

    def parse(self, lines: Iterable[str]) -> Iterator[tuple]:
        """Yield event tuples; the counters are final once the iterator is exhausted."""
        carry: tuple[int, str] | None = None
        lineno = self.lines
        events = skipped = exits = entries = 0
        match_line = _LINE.match
        exit_match = _EXIT.match
        entry_match = _ENTRY.match
        kinds = _KINDS
        fast_get = _FAST.get
        tasks_get = self._tasks.get
        rcache_get = self._rcache.get
        vcpu_known = self._vcpu_known
        scale = _SCALE
        process = self._process
        try:
            for line in lines:
                lineno += 1
                if carry is not None:
                    res = self._join(carry, line)
                    carry = None
                    if res is not None:
                        if res is _SKIP:
                            skipped += 1
                        else:
                            events += 1
                            yield res
                        continue
                m = match_line(line)
                if m is not None:
                    head, _cpu, sec, frac, name, payload = m.groups()
                    # the two events that make up most of a capture, inline
                    fast = fast_get(name)
                    if fast == EXIT:
                        if tasks_get(head, -1) >= 0 and frac and len(frac) < 10:
                            e = exit_match(payload)
                            if e is not None:
                                vcpu, rname, req = e.groups()
                                key = rcache_get(rname, 0)
                                if key == 0:
                                    key = self._reason(rname)
                                if key is not None:
                                    tid = tasks_get(head, -1)  # present: checked above
                                    if vcpu is not None:
                                        vcpu = int(vcpu)
                                        if tid not in vcpu_known:
                                            self._set_vcpu(tid, vcpu)
                                    if req is not None:
                                        req = int(req, 16)
                                        self.requests_seen += 1
                                    exits += 1
                                    events += 1
                                    yield (EXIT, tid, int(sec + frac) * scale[len(frac)], key, vcpu, req)
                                    continue
                    elif fast == ENTRY:
                        tid = tasks_get(head, -1)
                        if tid >= 0 and frac and len(frac) < 10:
                            e = entry_match(payload)
                            if e is not None:
                                vcpu = int(e.group(1))
                                if tid not in vcpu_known:
                                    self._set_vcpu(tid, vcpu)
                                entries += 1
                                events += 1
                                yield (ENTRY, tid, int(sec + frac) * scale[len(frac)], vcpu)
                                continue
                    elif name not in kinds and ":" not in name:
                        skipped += 1
                        continue
                res = process(line, m)
                if res is _SKIP:
                    skipped += 1
                elif res is _DAMAGED:
                    carry = (lineno, line)
                else:
                    events += 1
                    yield res
            if carry is not None:
                self._bad(*carry)
                carry = None
        finally:
            self.lines = lineno
            self.events += events
            self.skipped += skipped
            self.counts[EXIT] += exits
            self.counts[ENTRY] += entries

    # ------------------------------------------------------------------ the general path

    def _process(self, line: str, m: re.Match | None = None):
        """One line, any layout: an event tuple, _SKIP or _DAMAGED."""
        if m is None:
            m = _LINE_ANY.match(line)
        if m is not None:
            head, _cpu, sec, frac, name, payload = m.groups()
            tid = -1
        else:
            b = _BARE.match(line)
            if b is None:
                lost = _LOST.match(line)
                if lost is not None:
                    self.lost_events += int(lost.group(1))
                    return _SKIP
                if _LOOKS.match(line):
                    return _DAMAGED
                return self._no_cpu(line)
            sec, frac, name, payload = b.groups()
            tid = ANON_TID
        kind = _kind(name)
        if kind is None:
            return _SKIP
        if tid == ANON_TID:
            if ANON_TID not in self.threads:
                self.threads[ANON_TID] = ThreadMeta(ANON_TID, "", None)
        else:
            tid = self._tasks.get(head, -1)
            if tid == -1:
                head = _without_wallclock(head)
                tid = self._tasks.get(head, -1)
                if tid == -1:
                    tid = self._task(head)
            if tid == GARBLED:
                return _DAMAGED
            if tid == COMMENT:
                return _SKIP
        return self._event(kind, tid, sec, frac, name, payload)

    def _no_cpu(self, line: str):
        """``comm tid ts: event: payload`` (perf script without the cpu column), for events of
        interest with a sensible task only; anything else is prose."""
        m = _NOCPU.match(line)
        if m is None:
            return _SKIP
        head, sec, frac, name, payload = m.groups()
        kind = _kind(name)
        if kind is None:
            return _SKIP
        tid = self._tasks.get(head, -1)
        if tid == -1:
            if _FTRACE_TASK.fullmatch(head.strip()) is None and _PERF_TASK.fullmatch(head.strip()) is None:
                return _SKIP
            tid = self._task(head)
        if tid < 0:
            return _SKIP
        return self._event(kind, tid, sec, frac, name, payload)

    def _event(self, kind: int, tid: int, sec: str, frac: str, name: str, payload: str):
        """Decode a recognised event line: the event tuple, _SKIP or _DAMAGED; counts it."""
        ev = self._decode(kind, tid, parse_ts(sec, frac), name, payload)
        if ev is None:
            return _DAMAGED
        if ev is False:
            return _SKIP
        self.counts[kind] += 1
        return ev

    def _decode(self, kind: int, tid: int, ts: int, name: str, payload: str):
        """Event tuple, None when the payload is damaged, False when it is not a KVM event after all."""
        if kind == EXIT:
            e = _EXIT.match(payload)
            if e is None:
                return None
            vcpu, rname, req = e.groups()
            key = self._rcache.get(rname, 0)
            if key == 0:
                key = self._reason(rname)
            if key is None:
                return None
            if vcpu is not None:
                vcpu = int(vcpu)
                if tid not in self._vcpu_known:
                    self._set_vcpu(tid, vcpu)
            if req is not None:
                req = int(req, 16)
                self.requests_seen += 1
            return (EXIT, tid, ts, key, vcpu, req)
        if kind == ENTRY:
            e = _ENTRY.match(payload)
            if e is None:
                return None
            vcpu = int(e.group(1))
            if tid not in self._vcpu_known:
                self._set_vcpu(tid, vcpu)
            return (ENTRY, tid, ts, vcpu)
        if kind == USERSPACE:
            u = _USERSPACE.match(payload)
            if u is None:
                return None
            label, num = u.group(1), int(u.group(2))
            if label in ("restart", "error") or num < 0:
                code = decode.userspace_error_code(-abs(num))
                label = decode.userspace_exit_name(code)
            else:
                code = num
                if label.startswith("0x"):
                    label = decode.userspace_exit_name(code)
            if len(self.userspace_names) < _CACHE_LIMIT:
                self.userspace_names.setdefault(code, label)
            return (USERSPACE, tid, ts, code)
        if kind == HYPERCALL:
            h = _HYPERCALL.match(payload)
            return None if h is None else (HYPERCALL, tid, ts, int(h.group(1), 16))
        if kind == PIO:
            p = _PIO.match(payload)
            if p is None:
                return None
            return (PIO, tid, ts, ("IN" if p.group(1) == "read" else "OUT", int(p.group(2), 16)))
        if kind == MMIO:
            p = _MMIO.match(payload)
            if p is None:
                return None
            op = p.group(1)
            return (MMIO, tid, ts, ("W" if op == "write" else "R", int(p.group(2), 16)), op == "read")
        # RUN: an ioctl or raw syscall entry; only KVM_RUN counts, anything else is another event
        if name.rpartition(":")[2] == "sys_enter":
            r = _RAW_ENTER.match(payload)
            if r is None or int(r.group(1)) != _X86_64_IOCTL:
                return False
            cmd = r.group(2)
        else:
            r = _IOCTL.match(payload)
            if r is None:
                return False
            cmd = r.group(1)
        return (RUN, tid, ts) if int(cmd, 16) == KVM_RUN_CMD else False

    def _join(self, carry: tuple[int, str], line: str):
        """``carry`` + this line as one wrapped event: the event, _SKIP, or None (carry was bad)."""
        lineno, first = carry
        text = line.strip()
        if text and text[0] not in "#>" and _LOOKS.match(line) is None and _BARE.match(line) is None \
                and _LINE_ANY.match(line) is None:
            res = self._process(first.rstrip() + " " + text)
            if res is not _DAMAGED:
                self.joined += 1
                return res
        self._bad(lineno, first)
        return None

    # ------------------------------------------------------------------ helpers

    def _bad(self, lineno: int, line: str) -> None:
        self.bad_count += 1
        if len(self.bad) < self.max_bad:
            text = line.rstrip("\r\n")
            if len(text) > MAX_TEXT:
                text = text[: MAX_TEXT - 1] + "…"
            self.bad.append((lineno, text))

    def _set_vcpu(self, tid: int, vcpu: int) -> None:
        self._vcpu_known.add(tid)
        meta = self.threads.get(tid)
        if meta is not None and meta.vcpu_id is None:
            meta.vcpu_id = vcpu

    def _task(self, head: str) -> int:
        """tid of a task column (registering the thread); GARBLED when it makes no sense, COMMENT
        for a line that starts with ``#`` (ftrace's header, a comment quoting a trace line)."""
        text = head.strip()
        if text.startswith("#"):
            self._tasks[head] = COMMENT
            return COMMENT
        while text.startswith(">"):  # quoted in a mail reply
            text = text[1:].lstrip()
        tgid: int | None = None
        m = _TGID.match(text)
        if m:
            text = m.group(1)
            tgid = None if m.group(2)[0] == "-" else int(m.group(2))
        w = _WALLCLOCK.match(text)
        if w:
            text = text[w.end():]
        b = _BUFFER.match(text)
        if b:
            text = text[b.end():]
        tid: int
        comm = ""
        if not text:
            tid = ANON_TID
        elif (f := _FTRACE_TASK.fullmatch(text)) is not None:
            comm, tid = f.group(1), int(f.group(2))
        elif (p := _PERF_TASK.fullmatch(text)) is not None:
            comm = p.group(1) or ""
            if p.group(3) is not None:
                tgid, tid = int(p.group(2)), int(p.group(3))
            else:
                tid = int(p.group(2))
        else:
            tid = GARBLED
        if tid >= 0:
            meta = self.threads.get(tid)
            if meta is None:
                self.threads[tid] = ThreadMeta(tid, comm, tgid)
            else:
                if (not meta.comm or meta.comm == "<...>") and comm:
                    meta.comm = comm
                if meta.tgid is None:
                    meta.tgid = tgid
        if len(self._tasks) >= _CACHE_LIMIT:
            self._tasks.clear()
        self._tasks[head] = tid
        return tid

    def _reason(self, name: str) -> tuple[int, int] | None:
        """(isa, code) of a reason as printed; the last named reason's ISA hints the next."""
        hint = self.isa_hint
        key: tuple[int, int] | int | None = self._reasons.get((name, hint), 0)
        if isinstance(key, int):  # 0: not looked up yet
            # no reason is spelled in more than a few dozen characters (and int() refuses
            # numbers of thousands of digits)
            key = decode.parse_exit_reason(name, hint) if len(name) <= 80 else None
            if len(self._reasons) >= _CACHE_LIMIT:
                self._reasons.clear()
            self._reasons[(name, hint)] = key
        if key is not None:
            if not name[:1].isdigit() and key[0] != hint:
                self.isa_hint = key[0]
                self._rcache.clear()  # cleared in place: the hot loop holds its get
            if len(self.reason_names) < _CACHE_LIMIT:
                self.reason_names.setdefault(key, name)
                spellings = self.reason_spellings.setdefault(key, [])
                if name not in spellings and len(spellings) < 8:
                    spellings.append(name)
        if len(self._rcache) >= _CACHE_LIMIT:
            self._rcache.clear()
        self._rcache[name] = key
        return key


def _without_wallclock(head: str) -> str:
    """A task column without its leading wall-clock time (perf-prof prints one on every line:
    the task cache is keyed by what follows it)."""
    text = head.lstrip()
    if text[:1].isdigit():
        w = _WALLCLOCK.match(text)
        if w is not None:
            return text[w.end():]
    return head


def _kind(name: str) -> int | None:
    """The event kind of ``kvm_exit`` or ``kvm:kvm_exit`` (perf's spelling); None if not ours."""
    kind = _KINDS.get(name)
    if kind is None and ":" in name:
        kind = _KINDS.get(name.rpartition(":")[2])
    return kind
