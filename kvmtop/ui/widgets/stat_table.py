"""A table of stats by name (exit reasons, KVM_EXIT_* reasons): count, rate, share, percentiles."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ... import marks
from .. import format as fmt
from .diff_table import Cells, Col, KeyedText
from .sortable import SortableTable
from .vm_table import CUT, rate_cell


def stat_columns(name: Col) -> tuple[Col, ...]:
    return (
        name,
        Col("count", "COUNT", 8, priority=3),
        Col("rate", "RATE/s", 7),
        Col("share", "SHARE", 5, priority=4),
        Col("p50", "P50", 6, priority=2),
        Col("p90", "P90", 6, priority=5),
        Col("p99", "P99", 6, priority=1),
        Col("p999", "P99.9", 6, priority=6),
        Col("max", "MAX", 6, priority=3),
    )


def stat_cells(s: Any, key: str, name: str, name_style: str, total: int) -> Cells:
    """One row: name, count and rate (lower bounds, in red, when a full map cut them), share
    of ``total``, percentiles."""
    lat = s.latency
    d = fmt.duration
    return (
        KeyedText(name, key, style=name_style),
        fmt.cell_right(marks.at_least(fmt.count(s.count), s.lost), CUT if s.lost else ""),
        rate_cell(s.per_s, s.lost, "bold"),
        fmt.cell_right(fmt.share(s.count / total if total else 0.0)),
        fmt.cell_right(d(lat.p50)),
        fmt.cell_right(d(lat.p90)),
        fmt.cell_right(d(lat.p99), "yellow"),
        fmt.cell_right(d(lat.p999)),
        fmt.cell_right(d(lat.max)),
    )


STAT_SORTS = {
    "name": lambda s: s.name,
    "count": lambda s: s.count,
    "rate": lambda s: s.count,
    "share": lambda s: s.count,
    "p50": lambda s: s.latency.p50,
    "p90": lambda s: s.latency.p90,
    "p99": lambda s: s.latency.p99,
    "p999": lambda s: s.latency.p999,
    "max": lambda s: s.latency.max,
}


class StatTable(SortableTable):
    """Rows of ReasonStat/CodeStat; ``show(stats, total)`` with total = the events of all kinds."""

    SORTS = STAT_SORTS
    ASCENDING = frozenset({"name"})
    DEFAULT_SORT = "rate"
    NAME_STYLE = "cyan"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._total = 0

    def key_of(self, stat: Any) -> str:
        raise NotImplementedError

    def name_of(self, stat: Any) -> str:
        return stat.name

    def show(self, stats: Sequence[Any], total: int) -> None:
        self._total = total
        self.show_items(stats)

    def cells(self, s: Any) -> Cells:
        return stat_cells(s, self.key_of(s), self.name_of(s), self.NAME_STYLE, self._total)

    def rows_of(self, items: Sequence[Any]) -> list[tuple[str, Cells]]:
        return [(self.key_of(s), self.cells(s)) for s in items]
