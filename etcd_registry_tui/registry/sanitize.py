"""Text that is safe to show: nothing a key or value holds reaches the terminal as control.

Every byte of a key or value comes from whoever can write to etcd. Drawn as it is, an
``ESC ] 0 ;`` retitles the operator's terminal, ``ESC ] 52`` writes their clipboard, a
``\\r`` draws over the tree's border and a right-to-left override makes one key look like
another. Before any of it is shown it goes through :func:`safe_line` (one line: keys,
names, ids, addresses) or :func:`safe_text` (a value shown over several lines), which
replace each dangerous character with a visible escape:

* C0 controls (U+0000–U+001F) and DEL by their Unicode control pictures: ESC → ``␛``,
  BEL → ``␇``, CR → ``␍``, LF → ``␊`` (kept as a line break by :func:`safe_text`);
* C1 controls (U+0080–U+009F: a terminal reads U+009B as CSI and U+009D as OSC), the bidi
  embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069), the other invisible
  format characters that can disguise text (U+061C, U+200B, U+200E, U+200F, U+2060–U+2064,
  U+206A–U+206F, U+FEFF, U+FFF9–U+FFFB) and the line and paragraph separators
  (U+2028, U+2029) as ``\\x9b`` / ``\\u202e`` text; so are lone surrogates, which JSON
  can carry (``"\\ud800"``) and no terminal encoding can print;
* the dashboard's own marks (:data:`MARKS`: ``♛ ★ ✓ ✗ …``) as ``\\u265b`` text, so that
  no key or value can forge one.

Clean text, the usual case, is returned as the very same object (one regex search).
This module is pure Python: the model computes the display text once per instance and
every renderer (TUI and ``list``) uses it.
"""

from __future__ import annotations

import re

#: Ranges (inclusive) of the code points that are never shown as they are.
UNSAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x00, 0x1F),  # C0 controls
    (0x7F, 0x9F),  # DEL and the C1 controls
    (0x061C, 0x061C),  # Arabic letter mark
    (0x200B, 0x200B),  # zero width space
    (0x200E, 0x200F),  # left-to-right / right-to-left mark
    (0x2028, 0x202E),  # line/paragraph separator, bidi embeddings and overrides
    (0x2060, 0x2064),  # word joiner, invisible operators
    (0x2066, 0x2069),  # bidi isolates
    (0x206A, 0x206F),  # deprecated format characters
    (0xD800, 0xDFFF),  # lone surrogates (JSON's "\\ud800"): no terminal can print them
    (0xFEFF, 0xFEFF),  # zero width no-break space (BOM)
    (0xFFF9, 0xFFFB),  # interlinear annotation
)

#: The marks the dashboard draws itself next to untrusted text (the tree's ``♛ leader``,
#: ``★`` own, ``✓ 12 ms`` / ``✗ refused`` probes, ``◆`` marks, ``⏸ paused``, ``↻``
#: flapping, ``⚠`` problems; the elections view's ``★`` and ``✗ lost``): in a key or value
#: they are shown escaped (``\\u265b``), so no writer of etcd can draw a mark that looks
#: like the dashboard's own.
MARKS = "♛★✓✗◆⏸↻⚠"


def _escape(code: int) -> str:
    if code < 0x20:
        return chr(0x2400 + code)  # the control pictures block: ␀ … ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _char_class(ranges: tuple[tuple[int, int], ...], keep: str = "") -> re.Pattern[str]:
    parts = []
    for low, high in ranges:
        for start, end in _split_around(low, high, {ord(c) for c in keep}):
            parts.append(f"\\U{start:08x}" if start == end else f"\\U{start:08x}-\\U{end:08x}")
    return re.compile(f"[{''.join(parts)}]")


def _split_around(low: int, high: int, holes: set[int]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    start = low
    for code in range(low, high + 1):
        if code in holes:
            if start < code:
                spans.append((start, code - 1))
            start = code + 1
    if start <= high:
        spans.append((start, high))
    return spans


_RANGES = UNSAFE_RANGES + tuple((ord(c), ord(c)) for c in MARKS)
_TABLE: dict[int, str] = {
    code: _escape(code) for low, high in _RANGES for code in range(low, high + 1)
}
_TEXT_TABLE = {**_TABLE, ord("\n"): "\n"}
_UNSAFE_LINE = _char_class(_RANGES)
_UNSAFE_TEXT = _char_class(_RANGES, keep="\n")


def _cut(text: str, limit: int | None) -> str:
    if limit is None or len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text) - limit:,} more characters)"


def safe_line(text: str, limit: int | None = None) -> str:
    """``text`` for one line of a display: every dangerous character as a visible escape.

    ``limit``: keep at most this many characters of ``text`` and say how many were cut.
    """
    text = _cut(text, limit)
    if _UNSAFE_LINE.search(text) is None:
        return text
    return text.translate(_TABLE)


def safe_text(text: str, limit: int | None = None) -> str:
    """As :func:`safe_line`, but line breaks (``\\n``) stay line breaks."""
    text = _cut(text, limit)
    if _UNSAFE_TEXT.search(text) is None:
        return text
    return text.translate(_TEXT_TABLE)


def is_safe(text: str) -> bool:
    """True when ``text`` holds no character that :func:`safe_line` would escape."""
    return _UNSAFE_LINE.search(text) is None
