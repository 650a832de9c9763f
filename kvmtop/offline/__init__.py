"""Offline data: file formats and their readers and writers (no Feed, no UI, no command).

* ``trace_lines`` — lines of ftrace / trace-cmd / perf script text → event tuples;
* ``pairing`` — the per-thread state machine: events → counts and exact latencies;
* ``trace_import`` — a capture file (plain or gzip), streamed through both, → TraceImport;
* ``report`` — a TraceImport rendered as ``kvmtop.report/1`` JSON or as text;
* ``recording`` — ``kvmtop record`` files: writer and reader.
"""
