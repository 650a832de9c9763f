"""Offline data: file formats and their readers and writers (no Feed, no UI, no command).

* ``trace_lines`` — lines of ftrace / trace-cmd / perf script text → event tuples;
* ``pairing`` — the per-thread state machine: events → counts and exact latencies;
* ``datafile`` — the one reader of input files, plain or gzip, tolerant of damage;
* ``trace_import`` — a capture file streamed through both, → TraceImport;
* ``report`` — a TraceImport rendered as ``kvmtop.report/1`` JSON or as text;
* ``recording`` — ``kvmtop record`` files: the format, the writer, the sniffer;
* ``recording_reader`` — a recording as a Sequence of Intervals, read as a stream.
"""
