"""Decode tables: exit reasons (VMX, SVM), ``KVM_EXIT_*``, hypercalls, request bits.

The one definition of each of these facts; everything else imports from here.
"""

from .exit_reasons import (
    ISA_SVM,
    ISA_VMX,
    SVM_REASONS,
    VMX_REASONS,
    exit_reason_name,
    isa_name,
    parse_exit_reason,
)
from .hypercalls import HYPERCALLS, hypercall_name
from .requests import request_bit, request_bit_name
from .userspace_exits import (
    KVM_EXITS,
    parse_userspace_exit,
    userspace_error_code,
    userspace_exit_name,
)

__all__ = [
    "ISA_VMX", "ISA_SVM", "isa_name", "exit_reason_name", "parse_exit_reason",
    "VMX_REASONS", "SVM_REASONS",
    "KVM_EXITS", "userspace_exit_name", "userspace_error_code", "parse_userspace_exit",
    "HYPERCALLS", "hypercall_name",
    "request_bit", "request_bit_name",
]
