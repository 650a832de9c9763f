"""Filter a snapshot by exit reason (the `f` picker and ``--filter``).

A filter is a set of reason names, included or excluded. Names of ``KVM_EXIT_*``
reasons (and ``restart``/``error(N)``) select userspace exits; any other name selects
VM exit reasons (``HLT``, ``EPT_VIOLATION``, ``npf``…, case-insensitive, flag suffixes
such as ``FAILED_VMENTRY`` ignored). A category the filter names nothing of is left whole,
so ``--filter HLT`` narrows exits without hiding userspace exits. Request bits and
hypercalls are counted per exit, not per reason, and are never filtered.

``--filter`` is strict (``parse(text, strict=True)``): a name no kernel uses is an error
that lists the close matches, since a typo would otherwise show every guest at 0/s.
Aliases (``EXIT_REASON_HLT``, ``EXIT_NPF``, a number, ``IO`` for ``KVM_EXIT_IO``) are
turned into the names the tables show.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass

from . import decode
from .model import Breakdown, ReasonKey, Snapshot, VmStat


def _norm(name: str) -> str:
    return " ".join(name.split()).upper()


def is_userspace_name(name: str) -> bool:
    n = _norm(name)
    return n.startswith("KVM_EXIT_") or n == "RESTART" or n.startswith("ERROR(")


def _base(name: str) -> str:
    """A VMX name without its flag words ("EPT_VIOLATION FAILED_VMENTRY" → "EPT_VIOLATION")."""
    n = _norm(name)
    return n.split(" ", 1)[0] if " " in n and not n.endswith(" EXCP") else n


class FilterError(ValueError):
    """A --filter names something that is no exit reason; the message is one line."""


@functools.lru_cache(maxsize=1)
def known_names() -> tuple[str, ...]:
    """Every exit reason and KVM_EXIT_* name, as the tables show them."""
    names = set(decode.VMX_REASONS.values()) | set(decode.SVM_REASONS.values())
    names |= set(decode.KVM_EXITS.values()) | {"restart"}
    return tuple(sorted(names))


def canonical(term: str) -> str | None:
    """The shown name ``term`` stands for (normalised), or None when it names nothing."""
    key = None if is_userspace_name(term) else decode.parse_exit_reason(term)
    if key is not None:
        return _norm(decode.exit_reason_name(*key))
    code = decode.parse_userspace_exit(term)
    return None if code is None else _norm(decode.userspace_exit_name(code))


def _unknown(term: str) -> str:
    by_upper: dict[str, str] = {}
    for n in known_names():
        by_upper.setdefault(n.upper(), n)
    close = difflib.get_close_matches(term.upper(), list(by_upper), n=4, cutoff=0.6)
    hint = f" (close: {', '.join(by_upper[c] for c in close)})" if close else ""
    return f"--filter: unknown exit reason {term!r}{hint}"


@dataclass(frozen=True)
class ReasonFilter:
    terms: frozenset[str]
    exclude: bool = False

    @classmethod
    def parse(cls, text: str | None, strict: bool = False) -> ReasonFilter | None:
        """``"HLT,EPT_VIOLATION"`` includes; ``"!HLT,PAUSE_INSTRUCTION"`` excludes. ``strict``:
        every name must be known (FilterError otherwise) and aliases become shown names."""
        if text is None:
            return None
        text = text.strip()
        exclude = text.startswith(("!", "-"))
        raw = [t.strip() for t in text.lstrip("!-").split(",") if t.strip()]
        if strict and not raw:
            raise FilterError("--filter: no exit reason given")
        if strict:
            names = [canonical(t) for t in raw]
            bad = [t for t, n in zip(raw, names) if n is None]
            if bad:
                raise FilterError(_unknown(bad[0]))
            raw = [n for n in names if n is not None]
        terms = frozenset(_norm(t) for t in raw)
        return cls(terms, exclude) if terms else None

    @classmethod
    def of(cls, names, exclude: bool = False) -> ReasonFilter | None:
        terms = frozenset(_norm(n) for n in names if n and n.strip())
        return cls(terms, exclude) if terms else None

    def describe(self) -> str:
        return ("not " if self.exclude else "") + ",".join(sorted(self.terms))

    @property
    def exit_terms(self) -> frozenset[str]:
        return frozenset(t for t in self.terms if not is_userspace_name(t))

    @property
    def userspace_terms(self) -> frozenset[str]:
        return frozenset(t for t in self.terms if is_userspace_name(t))

    def admits_reason(self, key: ReasonKey) -> bool:
        terms = self.exit_terms
        if not terms:
            return True
        name = decode.exit_reason_name(*key)
        hit = _norm(name) in terms or _base(name) in terms
        return hit != self.exclude

    def admits_userspace(self, code: int) -> bool:
        terms = self.userspace_terms
        if not terms:
            return True
        return (_norm(decode.userspace_exit_name(code)) in terms) != self.exclude

    def apply_breakdown(self, b: Breakdown) -> Breakdown:
        """A copy of a VM, vCPU or host breakdown narrowed to what the filter admits."""
        changes: dict[str, object] = {}
        if self.exit_terms:
            changes["reasons"] = tuple(r for r in b.reasons if self.admits_reason(r.key))
            changes["admit_reason"] = self.admits_reason
        if self.userspace_terms:
            changes["userspace_exits"] = tuple(u for u in b.userspace_exits if self.admits_userspace(u.code))
            changes["admit_userspace"] = self.admits_userspace
        if isinstance(b, VmStat):
            changes["vcpus"] = tuple(self.apply_breakdown(v) for v in b.vcpus)
        return b.replace(**changes)

    def apply(self, snap: Snapshot) -> Snapshot:
        return snap.replace(host=self.apply_breakdown(snap.host),
                            vms=tuple(self.apply_breakdown(v) for v in snap.vms))

