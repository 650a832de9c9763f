"""Filter a snapshot by exit reason (the `f` picker and ``--filter``).

A filter is a set of terms, included or excluded. A term is a reason name or, as with
``kvm_stat -f``, a regular expression over the names (``EPT_.*``, ``(HLT|PAUSE).*``; the
whole name, case ignored). Names of ``KVM_EXIT_*`` reasons (and ``restart``/``error(N)``)
select userspace exits; any other name selects VM exit reasons (``HLT``, ``EPT_VIOLATION``,
``npf``…, case-insensitive, flag suffixes such as ``FAILED_VMENTRY`` ignored); a regular
expression selects whichever it matches names of. A category the filter names nothing of
is left whole, so ``--filter HLT`` narrows exits without hiding userspace exits. Request
bits and hypercalls are counted per exit, not per reason, and are never filtered.

``--filter`` is strict (``parse(text, strict=True)``): a name no kernel uses, or a regular
expression that matches none, is an error that lists the close matches, since a typo would
otherwise show every guest at 0/s. Aliases (``EXIT_REASON_HLT``, ``EXIT_NPF``, a number,
``IO`` for ``KVM_EXIT_IO``) are turned into the names the tables show.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass

from . import decode
from .model import Breakdown, ReasonKey, Snapshot, VmStat
from .snapshot_views import ColumnSnapshot, LazyBreakdown, view_of

_REGEX = re.compile(r"[.*+?\[\](){}|^$\\]")
_PSEUDO = re.compile(r"(restart|error\(-?\d+\))$", re.IGNORECASE)  # userspace pseudo reasons


def is_regex(term: str) -> bool:
    """Whether a filter term is a regular expression rather than a name."""
    return bool(_REGEX.search(term)) and not _PSEUDO.match(term.strip())


def exit_reason_names(isa: int | None = None) -> tuple[str, ...]:
    """Every exit reason name of ``isa`` (both ISAs when None), in code order."""
    names: list[str] = []
    if isa in (None, decode.ISA_VMX):
        names += [decode.VMX_REASONS[c] for c in sorted(decode.VMX_REASONS)]
    if isa in (None, decode.ISA_SVM):
        names += [decode.SVM_REASONS[c] for c in sorted(decode.SVM_REASONS)]
    return tuple(dict.fromkeys(names))


def userspace_names() -> tuple[str, ...]:
    """Every KVM_EXIT_* name, in code order."""
    return tuple(decode.KVM_EXITS[c] for c in sorted(decode.KVM_EXITS))


@functools.lru_cache(maxsize=256)
def _compiled(term: str) -> re.Pattern:
    return re.compile(term, re.IGNORECASE)


def _valid_regex(term: str) -> bool:
    if not is_regex(term):
        return False
    try:
        _compiled(term)
    except re.error:
        return False
    return True


@functools.lru_cache(maxsize=256)
def _regex_categories(term: str) -> tuple[bool, bool]:
    """(matches an exit reason name, matches a KVM_EXIT_* name) of a regex term."""
    rx = _compiled(term)
    return (any(rx.fullmatch(n) for n in exit_reason_names()),
            any(rx.fullmatch(n) for n in (*userspace_names(), "restart")))


def _term_matches(term: str, norm: str, base: str) -> bool:
    """A term against a reason's normalised name and its name without flag words."""
    if _valid_regex(term):
        rx = _compiled(term)
        return bool(rx.fullmatch(norm) or rx.fullmatch(base))
    return term in (norm, base)


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


def _checked(term: str) -> str:
    """A --filter term as the filter keeps it: a name made canonical, or a regular expression
    that compiles and matches some name; FilterError (one line) otherwise."""
    if is_regex(term):
        try:
            _compiled(term)
        except re.error as exc:
            raise FilterError(f"--filter: not a valid regular expression: {term!r} ({exc})") from None
        if not any(_regex_categories(term)):
            raise FilterError(f"--filter: {term!r} matches no exit reason")
        return term
    name = canonical(term)
    if name is None:
        raise FilterError(_unknown(term))
    return name


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
            raw = [_checked(t) for t in raw]
        return cls.of(raw, exclude)

    @classmethod
    def of(cls, names, exclude: bool = False) -> ReasonFilter | None:
        """Names are normalised (case, spaces); regular expressions are kept as written."""
        terms = frozenset(n.strip() if is_regex(n) else _norm(n) for n in names if n and n.strip())
        return cls(terms, exclude) if terms else None

    def describe(self) -> str:
        return ("not " if self.exclude else "") + ",".join(sorted(self.terms))

    @property
    def exit_terms(self) -> frozenset[str]:
        return frozenset(t for t in self.terms
                         if (_regex_categories(t)[0] if _valid_regex(t) else not is_userspace_name(t)))

    @property
    def userspace_terms(self) -> frozenset[str]:
        return frozenset(t for t in self.terms
                         if (_regex_categories(t)[1] if _valid_regex(t) else is_userspace_name(t)))

    def admits_reason(self, key: ReasonKey) -> bool:
        terms = self.exit_terms
        if not terms:
            return True
        name = decode.exit_reason_name(*key)
        norm, base = _norm(name), _base(name)
        hit = any(_term_matches(t, norm, base) for t in terms)
        return hit != self.exclude

    def admits_userspace(self, code: int) -> bool:
        terms = self.userspace_terms
        if not terms:
            return True
        norm = _norm(decode.userspace_exit_name(code))
        return any(_term_matches(t, norm, norm) for t in terms) != self.exclude

    def _admits(self) -> tuple:
        return (self.admits_reason if self.exit_terms else None,
                self.admits_userspace if self.userspace_terms else None)

    def apply_breakdown(self, b: Breakdown) -> Breakdown:
        """A copy of a VM, vCPU or host breakdown narrowed to what the filter admits."""
        if isinstance(b, LazyBreakdown):  # a view of a snapshot's columns: the same view of the filtered columns
            return view_of(b, b._frame.filtered(*self._admits()))
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
        if isinstance(snap, ColumnSnapshot):  # the columns, narrowed: their totals are reduced again
            return snap.filtered(*self._admits())
        return snap.replace(host=self.apply_breakdown(snap.host),
                            vms=tuple(self.apply_breakdown(v) for v in snap.vms))

