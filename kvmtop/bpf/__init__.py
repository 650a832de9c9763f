"""kvmtop's BPF side: the C program (kvmtop.bpf.c), compiling and attaching it with BCC
(program), kernel headers for BCC (headers), fast readers of its maps (maps), the `stats`
maps swapped each poll (swapped), their sizes and kernel memory (sizing) and prerequisite checks (checks).

Importing this package does not import bcc; ``Program.load()`` does.
"""
