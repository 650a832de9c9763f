"""Offline data: file formats and their readers and writers (no Feed, no UI, no command).

* ``trace_lines`` — lines of ftrace / trace-cmd / perf script / perf-prof text → event tuples;
* ``pairing`` — the per-thread state machine: events → counts, exact latencies, the slowest;
* ``datafile`` — the one reader of input files, plain or gzip, tolerant of damage;
* ``capture_tools`` — perf.data and trace.dat read through ``perf script`` / ``trace-cmd report``;
* ``trace_import`` — a capture file streamed through both, → TraceImport;
* ``vm_groups`` — which threads of a capture make up one VM;
* ``capture_advice`` — why a figure is missing, and the command lines that record it;
* ``report_model`` — a capture or a recording as per-thread totals grouped into VMs (ReportData);
* ``report`` — a ReportData rendered as ``kvmtop.report/1`` JSON or as text;
* ``recording`` — ``kvmtop record`` files: the format, the writer, the sniffer;
* ``recording_reader`` — a recording as a Sequence of Intervals, read as a stream.
"""
