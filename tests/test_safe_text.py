from kvmtop.safe_text import printable, safe_name


def test_escape_sequences_and_controls_become_visible():
    s = printable("vm\x1b[31mred\x07\x00\u202e")
    assert "\x1b" not in s and "\x07" not in s and "\x00" not in s and "\u202e" not in s
    assert s == "vm\\x1b[31mred\\x07\\x00\\u202e"


def test_markup_and_unicode_are_kept_literally():
    assert printable("[b]x[/b] ünï 名前") == "[b]x[/b] ünï 名前"


def test_long_names_are_cut_with_an_ellipsis():
    name = "a" * 200
    out = safe_name(name, 20)
    assert len(out) == 20 and out.endswith("…")
    assert safe_name("short", 20) == "short"
