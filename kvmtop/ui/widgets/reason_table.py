"""The guest screen's per-exit-reason table: counts, rate, share and latency percentiles."""

from __future__ import annotations

from ... import marks
from ...model import Breakdown, ReasonStat
from .. import format as fmt
from .diff_table import Cells, Col, DiffTable, KeyedText

COLUMNS: tuple[Col, ...] = (
    Col("reason", "EXIT REASON", 18, "left"),
    Col("count", "COUNT", 8),
    Col("rate", "RATE/s", 7),
    Col("share", "SHARE", 5),
    Col("p50", "P50", 6),
    Col("p90", "P90", 6),
    Col("p99", "P99", 6),
    Col("p999", "P99.9", 6),
    Col("max", "MAX", 6),
)


def reason_key(r: ReasonStat) -> str:
    return f"{r.isa}:{r.code}"


def reason_cells(r: ReasonStat, total: int) -> Cells:
    lat = r.latency
    d = fmt.duration
    return (
        KeyedText(r.name, reason_key(r), style="cyan"),
        fmt.cell_right(marks.at_least(fmt.count(r.count), r.lost), "bold red" if r.lost else ""),
        fmt.cell_right(fmt.rate(r.per_s), "bold"),
        fmt.cell_right(fmt.share(r.count / total if total else 0.0)),
        fmt.cell_right(d(lat.p50)),
        fmt.cell_right(d(lat.p90)),
        fmt.cell_right(d(lat.p99), "yellow"),
        fmt.cell_right(d(lat.p999)),
        fmt.cell_right(d(lat.max)),
    )


class ReasonTable(DiffTable):
    COLUMNS = COLUMNS

    def show(self, b: Breakdown) -> None:
        total = b.exits
        self.sync([(reason_key(r), reason_cells(r, total)) for r in b.reasons])
