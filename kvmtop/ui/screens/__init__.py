"""Screens: main (VM table), guest (a VM or one vCPU), filter picker, sort picker, help."""
