"""One instance's past, for the inspect view: its key's versions and earlier registrations.

Lines are display-safe (every byte from etcd goes through :func:`.sanitize.safe_line`).
"""

from __future__ import annotations

import json
from typing import Any

from ..model import parse_value
from ..sanitize import safe_line
from ..wording import lease_text
from .store import EventKind, History, HistoryEvent

#: At most this many lines of each part.
MAX_LINES = 50


def _fields(value: bytes | None) -> dict[str, Any] | None:
    if value is None:
        return None
    fields, _ = parse_value(value)
    return fields


def value_change(event: HistoryEvent) -> str:
    """What changed in the value: ``Version 1.0 → 1.1, Zone +eu-1``; ``-`` when unknown.
    A value too large to hold is compared by its digest."""
    if event.kv_held is not None or event.prev_held is not None:
        if event.kv_held is not None and event.kv_held == event.prev_held:
            return "value unchanged"
        if event.kv_held is not None:
            return f"value now {event.kv_held.describe()} (too large to hold)"
        return "value replaced (the one before was too large to hold)"
    before = _fields(event.prev.value if event.prev is not None else None)
    after = _fields(event.kv.value if event.kv is not None else None)
    if before is None or after is None:
        if event.prev is not None and event.kv is not None and event.prev.value == event.kv.value:
            return "value unchanged"
        return "value not JSON" if after is None and event.kv is not None else ""
    parts = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        if name not in before:
            parts.append(f"{name} +{json.dumps(new)}")
        elif name not in after:
            parts.append(f"{name} removed")
        else:
            parts.append(f"{name} {json.dumps(old)} → {json.dumps(new)}")
    if event.prev is not None and event.kv is not None and event.prev.lease != event.kv.lease:
        parts.append(f"lease {lease_text(event.prev.lease)} → {lease_text(event.kv.lease)}")
    return ", ".join(parts) if parts else "value unchanged"


def _line(event: HistoryEvent, text: str) -> str:
    return safe_line(f"rev {event.revision:>8,}  {event.label:<13}{text}")


def key_timeline(history: History, raw_key: bytes) -> list[str]:
    """Each revision of the key the history holds: what changed, and how it ended."""
    lines = []
    for event in history.of_key(raw_key)[-MAX_LINES:]:
        if event.kind is EventKind.PUT:
            text = f"registered, version {event.kv.version}" if event.kv else "registered"
        elif event.kind is EventKind.UPDATE:
            text = value_change(event)
        else:
            text = event.detail
        lines.append(_line(event, text))
    return lines


def earlier_registrations(
    history: History, raw_key: bytes, service: str, address: str | None
) -> list[str]:
    """Other keys of the same service and address (restarts with new ids): when each
    registered and how it ended."""
    if address is None:
        return []
    lines = []
    for event in history.of_service(service):
        if event.key == raw_key or event.kind is EventKind.UPDATE:
            continue
        if event.address() != address:
            continue
        text = f"{event.instance_id}  " + (
            "registered" if event.kind is EventKind.PUT else event.detail
        )
        lines.append(_line(event, text))
    return lines[-MAX_LINES:]
