"""How numbers read on every screen: counts with the right plural, revisions, lease ids.

One place, so the status line, the event log, the history view and inspect agree:

* revisions with thousands separators (``27,994``), in every view;
* lease ids as etcdctl writes them (``%016x``: 16 lowercase hex digits, zero-padded);
* ``1 service`` / ``2 services``.
"""

from __future__ import annotations


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 service``, ``2 services`` (``many`` for irregular words: ``key shares``…)."""
    if count == 1:
        return f"{count:,} {word}"
    return f"{count:,} {many if many is not None else word + 's'}"


def revision_text(revision: int) -> str:
    """A revision as every view writes it: ``27,994``."""
    return f"{revision:,}"


def lease_text(lease: int) -> str:
    """A lease id as etcdctl writes it (``lease list``, ``lease grant``): ``0f51a2355d8eac16``."""
    return f"{lease:016x}"
