"""Offline data: text-capture import (streaming parser, pairing, report) and recordings.

* ``trace_lines`` — lines of ftrace / trace-cmd / perf script text → event tuples;
* ``pairing`` — the per-thread state machine: events → counts and exact latencies;
* ``report`` — ``kvmtop report FILE [--json]``;
* ``recording`` — ``kvmtop record`` files: writer, reader, ``record_main``.
"""
