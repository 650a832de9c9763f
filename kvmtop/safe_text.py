"""Untrusted text (guest names, thread names) made safe for a terminal.

A guest's name comes from whoever started the VM. Control characters (ANSI escapes
included) become visible ``\\xNN`` / ``\\uNNNN`` escapes, and long names are cut with an
ellipsis. Rich markup is not interpreted as long as callers render the result with
``rich.text.Text`` (never as a markup string).
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 64


def printable(text: str) -> str:
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def safe_name(text: str, limit: int = MAX_NAME) -> str:
    """Printable, at most ``limit`` characters (ending in an ellipsis when cut)."""
    s = printable(text)
    return s if len(s) <= limit else s[: max(0, limit - 1)] + "…"
