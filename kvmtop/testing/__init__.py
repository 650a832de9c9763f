"""Drivers shared by the tests and the benchmarks (never imported by kvmtop itself).

* ``kvm_guest`` — a tiny real KVM guest through raw /dev/kvm ioctls (as a child process
  or a vCPU thread in this process);
* ``bpf_testrun`` — kvmtop.bpf.c's handlers run through BPF_PROG_TEST_RUN, with
  ``kernel.bpf_stats_enabled`` timings.
"""
