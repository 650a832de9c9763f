"""The guest screen's table of exits to the VMM (KVM_EXIT_*) and their round trip."""

from __future__ import annotations

from ...model import Breakdown, CodeStat
from .diff_table import Col
from .stat_table import StatTable, stat_columns

COLUMNS = stat_columns(Col("name", "KVM_EXIT_", 12, "left", "exit to the VMM; latency = its round trip"))


def userspace_key(u: CodeStat) -> str:
    return f"u{u.code}"


class UserspaceTable(StatTable):
    COLUMNS = COLUMNS
    NAME_STYLE = "magenta"

    def key_of(self, stat: CodeStat) -> str:
        return userspace_key(stat)

    def name_of(self, stat: CodeStat) -> str:
        return stat.name.removeprefix("KVM_EXIT_")

    def show_breakdown(self, b: Breakdown) -> None:
        self.show(b.userspace_exits, b.userspace_count)
