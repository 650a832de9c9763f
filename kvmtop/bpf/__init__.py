"""kvmtop's BPF side: the C program (kvmtop.bpf.c), compiling and attaching it with BCC
(program), kernel headers for BCC (headers) and fast readers of its maps (maps).

Importing this package does not import bcc; ``Program.load()`` does.
"""
