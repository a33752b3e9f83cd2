"""Small words shared by every screen and command, so that each says a thing one way.

- :func:`lease_text`: a lease id as etcdctl writes it (16 hex digits, ``0f51a2355d8eac16``),
  for people. Keys that carry a lease id (an election's ``PREFIX/<lease>``) keep etcd's own
  unpadded ``%x``: that is a key's spelling, not a display.
- :func:`plural`: ``1 key``, ``2 keys``, ``1 service``.
- :func:`revision_text`: a revision with thousands separators (``27,994``), everywhere on
  screen.
"""

from __future__ import annotations


def lease_text(lease: int | None) -> str:
    """``0f51a2355d8eac16``: as ``etcdctl lease grant`` / ``lease list`` print it (``0``: no
    lease, etcd's own value for a key without one)."""
    return format(lease, "016x") if lease else "0"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 key``, ``0 keys``, ``2 keys`` (``many``: an irregular plural)."""
    word = noun if count == 1 else many or noun + "s"
    return f"{count:,} {word}"


def revision_text(revision: int) -> str:
    return f"{revision:,}"
