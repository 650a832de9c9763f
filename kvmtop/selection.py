"""Which guests to show: a name pattern (``-g`` and the dashboard's F4 filter).

Case is ignored. A pattern is read as

* a regular expression, searched in the name (like ``kvm_stat -g``), when it has any of
  ``^ $ + ( ) { } | \\`` or ``.*``: ``^db-(pg|my)``, ``web.*edge``;
* else a shell glob over the whole name when it has ``*``, ``?`` or ``[``: ``web-*``, ``vm[12]``;
* else plain text found anywhere in the name (as htop's filter): ``redis``.

An invalid regular expression is an error (``NamePattern.parse`` raises ValueError with
one line saying why).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field

REGEX_ONLY = re.compile(r"[\^$+(){}|\\]|\.[*+?]")
GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class NamePattern:
    text: str
    kind: str = field(init=False, compare=False)  # "regex", "glob" or "text"
    _re: re.Pattern = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        text = self.text
        if REGEX_ONLY.search(text):
            kind = "regex"
            try:
                compiled = re.compile(text, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {text!r} ({exc})") from None
        elif GLOB.search(text):
            kind, compiled = "glob", re.compile(fnmatch.translate(text), re.IGNORECASE)
        else:
            kind, compiled = "text", re.compile(re.escape(text), re.IGNORECASE)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "_re", compiled)

    @classmethod
    def parse(cls, text: str | None) -> NamePattern | None:
        """None for no or blank text (everything matches); ValueError for a bad regex."""
        return cls(text.strip()) if text and text.strip() else None

    def matches(self, name: str) -> bool:
        if self.kind == "glob":
            return self._re.match(name) is not None
        return self._re.search(name) is not None

    def __str__(self) -> str:
        return self.text
