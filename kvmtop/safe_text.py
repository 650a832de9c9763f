"""Untrusted text (guest names, thread names) made safe for a terminal.

A guest's name comes from whoever started the VM. Control characters (ANSI escapes
included) become visible ``\\xNN`` / ``\\uNNNN`` escapes, and long names are cut with an
ellipsis. Rich markup is not interpreted as long as callers render the result with
``rich.text.Text`` (never as a markup string).
"""

from __future__ import annotations

import json
import re
import unicodedata

MAX_NAME = 64


def printable(text: str) -> str:
    if text.isprintable():  # (no character of the categories below: the usual name, at C speed)
        return text
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


# What json.dumps(ensure_ascii=False) leaves raw and a terminal would act on: DEL and the C1
# controls (U+009B is CSI), the bidi controls (U+202E reverses the text after it) and the
# line/paragraph separators. C0 controls json.dumps escapes itself.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def json_dumps(obj, **kwargs) -> str:
    """``json.dumps`` (UTF-8 text kept) with those characters written as ``\\uXXXX`` escapes, so
    a consumer that prints the JSON is as safe as kvmtop's own screens."""
    text = json.dumps(obj, ensure_ascii=False, **kwargs)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)
