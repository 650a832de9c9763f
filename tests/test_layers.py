"""The import directions of kvmtop's source tree: no module imports a layer above its own,
and no two top-level units (folders or modules) import each other, directly or around a loop.

Every import counts, also the ones inside functions. A new module must be given a layer here.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "kvmtop"

# Bottom to top (README, Development). A unit is a top-level module or folder of kvmtop.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(units) for units in (
    ("__init__", "errors", "units", "safe_text", "histogram", "decode", "gc_policy", "pacing", "provenance",
     "memory", "columns"),
    ("model", "history", "io_stats"),
    ("aggregate", "frame", "snapshot_views", "filtering", "identity", "tracefs", "bpf", "offline", "marks",
     "selection", "host_isa"),
    ("sources",),
    ("feed", "stepped_feed", "text", "snapshot_json", "snapshot_csv", "record_log", "exporter"),
    ("ui",),
    ("commands", "testing"),
    ("cli", "__main__"),
))
LAYER = {unit: n for n, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    """``kvmtop.sources.demo`` -> ``sources``; ``kvmtop`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """The kvmtop modules ``path`` imports (absolute names), anywhere in the file."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.add(target)
            out.update(f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}"))
    return {m for m in out if m == "kvmtop" or m.startswith("kvmtop.")}


def is_module(name: str) -> bool:
    """Whether ``name`` is a module or package of kvmtop (``from . import headers``), not
    an attribute (``from .. import __version__``)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def edges() -> set[tuple[str, str, str]]:
    """(importing module, its unit, imported unit) for every import between two units."""
    out = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        source = module_name(path)
        for target in imports(path):
            if unit_of(target) != unit_of(source):
                out.add((source, unit_of(source), unit_of(target)))
    return out


def upward(found: set[tuple[str, str, str]]) -> list[str]:
    return sorted(f"{module} ({unit}, layer {LAYER[unit]}) imports {target} (layer {LAYER[target]})"
                  for module, unit, target in found if LAYER[target] > LAYER[unit])


def cycles(found: set[tuple[str, str, str]]) -> list[list[str]]:
    """Loops in the unit graph (each found once, from its smallest unit)."""
    graph: dict[str, set[str]] = {}
    for _module, unit, target in found:
        graph.setdefault(unit, set()).add(target)
    loops = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                loops.append(path + [start])
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return loops


def test_every_unit_has_a_layer():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert not units - set(LAYER), f"give these a layer in {__file__}: {sorted(units - set(LAYER))}"


def test_no_module_imports_a_layer_above_its_own():
    assert upward(edges()) == []


def test_no_import_cycle_between_folders():
    assert cycles(edges()) == []


def test_the_checks_catch_what_they_are_for():
    assert imports(PACKAGE / "sources" / "trace.py") >= {"kvmtop.offline.trace_import", "kvmtop.errors",
                                                          "kvmtop.sources.base"}
    assert "kvmtop.bpf.headers" in imports(PACKAGE / "bpf" / "checks.py")  # ``from . import headers``
    bad = {("kvmtop.model", "model", "sources"), ("kvmtop.tracefs", "tracefs", "bpf"),
           ("kvmtop.bpf.program", "bpf", "tracefs")}
    assert upward(bad) == ["kvmtop.model (model, layer 1) imports sources (layer 3)"]
    assert cycles(bad) == [["bpf", "tracefs", "bpf"]]


@pytest.mark.parametrize("unit", ["cli", "commands", "ui"])
def test_nothing_below_imports_the_front_ends(unit):
    assert not [e for e in edges() if e[2] == unit and LAYER[e[1]] < LAYER[unit]]
