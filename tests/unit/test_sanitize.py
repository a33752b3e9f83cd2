"""The display sanitiser: no character of a key or value reaches the terminal as control."""

from __future__ import annotations

import json
import sys
import unicodedata

import pytest

from etcd_registry_tui.registry.sanitize import is_safe, safe_line, safe_text

BIDI = [chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A))]
INVISIBLE = ["\u061c", "\u200b", "\u200e", "\u200f", "\ufeff", "\u2028", "\u2029", "\u2060"]
EVERY_CHAR = "".join(chr(c) for c in range(sys.maxunicode + 1))


def dangerous(char: str) -> bool:
    return (
        unicodedata.category(char) in ("Cc", "Cs")  # C0, DEL, C1, lone surrogates
        or char in BIDI
        or char in INVISIBLE
    )


def test_terminal_sequences_become_visible_escapes() -> None:
    assert safe_line("id\x1b]0;PWN\x07") == "id␛]0;PWN␇"
    assert safe_line("\x1b]52;c;cHduZWQ=\x1b\\") == "␛]52;c;cHduZWQ=␛\\"
    assert safe_line("abc\rXXXX") == "abc␍XXXX"
    assert safe_line("a\nb\tc\0d\x7f") == "a␊b␉c␀d␡"
    assert safe_line("\x9b31m\x9d0;PWN\x9c") == "\\x9b31m\\x9d0;PWN\\x9c"
    assert safe_line("user\u202eexe.txt") == "user\\u202eexe.txt"
    assert safe_line("\u2066x\u2069\u200e\u061c\ufeff") == "\\u2066x\\u2069\\u200e\\u061c\\ufeff"
    assert safe_line(json.loads('"http://x/\\ud800"')) == "http://x/\\ud800"


def test_multiline_text_keeps_line_breaks_and_nothing_else() -> None:
    assert safe_text('{\n  "a": "\x1b[31m"\r\n}') == '{\n  "a": "␛[31m"␍\n}'
    assert safe_text("\u2028\x85") == "\\u2028\\x85"


def test_clean_text_is_returned_as_is() -> None:
    for text in ("http://10.0.0.1:5000", "Bestellungen/äöü", "注文サービス", "👩‍💻 dev", "[/]"):
        assert safe_line(text) is text
        assert safe_text(text) is text
        assert is_safe(text)


@pytest.mark.parametrize("sanitise", [safe_line, safe_text])
def test_no_code_point_gets_through(sanitise) -> None:
    shown = sanitise(EVERY_CHAR)
    leaked = {c for c in shown if dangerous(c) and not (c == "\n" and sanitise is safe_text)}
    assert not leaked, sorted(f"U+{ord(c):04X}" for c in leaked)
    assert not is_safe(EVERY_CHAR)
    shown.encode("utf-8")  # printable on any UTF-8 terminal


def test_every_escape_is_distinct_so_nothing_is_disguised() -> None:
    escaped = [safe_line(chr(c)) for c in range(0x110000) if dangerous(chr(c)) and c < 0x10000]
    assert len(set(escaped)) == len(escaped)


def test_long_text_is_cut_with_a_count() -> None:
    assert safe_line("x" * 10, limit=4) == "xxxx… (6 more characters)"
    assert safe_line("x" * 4, limit=4) == "xxxx"
    assert safe_text("a\x1b" * 3, limit=2) == "a␛… (4 more characters)"
