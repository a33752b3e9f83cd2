"""How a lease countdown reads and how urgent it is: one place for every view."""

from __future__ import annotations

import math

import humanize

#: Under this many seconds left a lease is critical (red).
CRITICAL_SECONDS = 5.0
#: Under this fraction of its granted TTL left a lease is expiring (yellow).
EXPIRING_FRACTION = 1 / 3


def format_seconds(seconds: int) -> str:
    """Whole seconds for a human: "29 seconds", "1 minute 5 seconds", "2 hours 3 minutes"."""
    if seconds < 3600:
        text = humanize.precisedelta(seconds)
    elif seconds < 86400:
        text = humanize.precisedelta(seconds, minimum_unit="minutes", format="%d")
    else:
        text = humanize.precisedelta(seconds, minimum_unit="hours", format="%d")
    return text.replace(" and ", " ").replace(", ", " ")


def format_remaining(remaining: float) -> str:
    """A lease countdown: whole seconds rounded up, or "expired"."""
    if remaining <= 0:
        return "expired"
    return format_seconds(math.ceil(remaining))


def format_remaining_short(remaining: float) -> str:
    """A countdown for a narrow column: "14s", "1m 5s", "2h 3m", "3d 4h", or "expired"."""
    if remaining <= 0:
        return "expired"
    seconds = math.ceil(remaining)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        big, small, units = seconds // 60, seconds % 60, ("m", "s")
    elif seconds < 86400:
        big, small, units = seconds // 3600, seconds % 3600 // 60, ("h", "m")
    else:
        big, small, units = seconds // 86400, seconds % 86400 // 3600, ("d", "h")
    return f"{big}{units[0]} {small}{units[1]}" if small else f"{big}{units[0]}"


def lease_level(remaining: float, granted: int | None) -> str:
    """Health of a lease: "healthy", "warning" (under a third left) or "critical" (< 5 s)."""
    if remaining < CRITICAL_SECONDS:
        return "critical"
    if granted and remaining < granted * EXPIRING_FRACTION:
        return "warning"
    return "healthy"


def describe_ttl(lease: int, remaining: float | None, granted: int | None) -> str:
    if not lease:
        return "no lease (permanent key)"
    if remaining is None:
        return "…"
    text = format_remaining(remaining)
    return f"{text} of {granted}s" if granted and remaining > 0 else text
