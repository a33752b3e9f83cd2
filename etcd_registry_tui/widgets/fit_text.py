"""Shortening text to a width without losing what tells rows apart (no Textual in here).

* :func:`elide_middle`: ``head…tail``, for keys and details whose end matters;
* :func:`fit_address`: a URL that keeps its port (the path goes first, then the scheme,
  then the middle of the host);
* :class:`IdForms`: the shortest form of each instance id of one service that still tells
  them apart (``orders-api…-1`` / ``orders-api…-2``), wider when there is room.

Widths are in characters: every text here has gone through the sanitiser first, and the
row that holds it is cropped to its cells in the end anyway.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import urlsplit

ELLIPSIS = "…"


def elide_end(text: str, width: int) -> str:
    """``text`` cut to ``width`` with a visible ``…`` when it is longer."""
    if len(text) <= width:
        return text
    if width <= 0:
        return ""
    return text[: width - 1] + ELLIPSIS


def elide_middle(text: str, width: int, tail: int | None = None) -> str:
    """``text`` in ``width`` characters: its start, ``…``, its end (``tail`` characters of
    it; by default about half of what is left)."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    room = width - 1
    keep_tail = room // 2 if tail is None else max(0, min(tail, room))
    head = room - keep_tail
    return text[:head] + ELLIPSIS + (text[-keep_tail:] if keep_tail else "")


def fit_address(address: str, width: int) -> str:
    """An address in ``width`` characters, its port kept as long as anything can be:
    first the path goes (``…``), then the scheme, then the middle of the host."""
    if len(address) <= width:
        return address
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:
        port = None
        parts = None
    if parts is None or not parts.scheme or not parts.hostname or "//" not in address:
        return elide_middle(address, width, tail=max(0, width // 2))
    scheme = f"{parts.scheme}://"
    netloc = parts.netloc.rsplit("@", 1)[-1]  # never show credentials in a narrow row
    host, sep, port_text = netloc.rpartition(":") if port is not None else (netloc, "", "")
    port_part = f"{sep}{port_text}"
    more = ELLIPSIS if (parts.path not in ("", "/") or parts.query or parts.fragment) else ""
    candidates = [f"{scheme}{netloc}{more}", f"{netloc}{more}"]
    room = width - len(scheme) - len(port_part) - len(more)
    if room >= 6:
        candidates.append(f"{scheme}{elide_middle(host, room)}{port_part}{more}")
    room = width - len(port_part) - len(more)
    if room >= 3:
        candidates.append(f"{elide_middle(host, room)}{port_part}{more}")
    for candidate in candidates:
        if len(candidate) <= width:
            return candidate
    return elide_middle(f"{netloc}", width, tail=min(len(port_part) + 1, width - 1))


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


@dataclass(slots=True, frozen=True)
class IdForms:
    """How the ids of one service are shortened: all to one column width.

    ``prefix``: characters from the start that tell every two ids apart; ``suffix``: the
    same from the end; ``longest``: the longest id.
    """

    prefix: int
    suffix: int
    longest: int

    @classmethod
    def of(cls, ids: Iterable[str]) -> IdForms:
        forward = sorted(set(ids))
        if not forward:
            return cls(0, 0, 0)
        backward = sorted(text[::-1] for text in forward)
        prefix = max((_common_prefix(a, b) + 1 for a, b in pairwise(forward)), default=1)
        suffix = max((_common_prefix(a, b) + 1 for a, b in pairwise(backward)), default=1)
        return cls(prefix, suffix, max(len(text) for text in forward))

    @property
    def shortest(self) -> int:
        """The narrowest column in which every id still reads differently."""
        if self.longest <= 1:
            return self.longest
        # head… needs the prefix and the ellipsis; h…tail one head character more.
        return min(self.longest, self.prefix + 1, self.suffix + 2)

    def column(self, room: int, at_least: int = 8) -> int:
        """The column for these ids given ``room``: all of each id when it fits, never
        narrower than :attr:`shortest`, nor than ``at_least`` (as 8 characters of a uuid
        read)."""
        return max(self.shortest, min(self.longest, max(room, at_least)))

    def form(self, text: str, column: int) -> str:
        """``text`` in ``column`` characters, told apart from the service's other ids."""
        if len(text) <= column:
            return text
        if column - 1 >= self.prefix:
            return text[: column - 1] + ELLIPSIS
        if column - 2 >= self.suffix:
            return elide_middle(text, column, tail=self.suffix)
        return elide_middle(text, column, tail=min(self.suffix, (column - 1) // 2))
