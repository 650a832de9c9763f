"""The guest screen's per-exit-reason table: counts, rate, share and latency percentiles."""

from __future__ import annotations

from ...model import Breakdown, ReasonStat
from .diff_table import Cells, Col
from .stat_table import StatTable, stat_cells, stat_columns

COLUMNS = stat_columns(Col("name", "EXIT REASON", 18, "left"))


def reason_key(r: ReasonStat) -> str:
    return f"{r.isa}:{r.code}"


def reason_cells(r: ReasonStat, total: int) -> Cells:
    return stat_cells(r, reason_key(r), r.name, ReasonTable.NAME_STYLE, total)


class ReasonTable(StatTable):
    COLUMNS = COLUMNS

    def key_of(self, stat: ReasonStat) -> str:
        return reason_key(stat)

    def show_breakdown(self, b: Breakdown) -> None:
        self.show(b.reasons, b.exits)
