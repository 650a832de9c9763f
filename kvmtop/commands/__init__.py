"""Front ends, one module per command: each turns parsed arguments into a run (``run(args)``).

``kvmtop.cli`` only parses the command line and dispatches here; formats, readers and
sources stay in the layers below.
"""
