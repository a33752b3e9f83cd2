"""How a lease countdown reads, shared by the detail pane and the inspect view."""

from __future__ import annotations

import humanize


def describe_ttl(lease: int, remaining: float | None, granted: int | None) -> str:
    if not lease:
        return "no lease (permanent key)"
    if remaining is None:
        return "…"
    if remaining <= 0:
        return "expired"
    text = humanize.precisedelta(int(remaining + 0.999), minimum_unit="seconds")
    return f"{text} of {granted}s" if granted else text
