"""The event log's vocabulary: what kind of line (:class:`LogKind`), one line
(:class:`LogEntry`), and the line of a history event (:func:`log_entry`).

The session produces these and every view (the dashboard's event log, the CLI) shows
them; they hold display-safe text only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum

from .history.store import EventKind, HistoryEvent


class LogKind(StrEnum):
    PUT = "PUT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    DEREGISTERED = "DEREGISTERED"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"
    LEASE_ENDED = "LEASE ENDED"
    ALARM = "ALARM"
    LEADER = "LEADER"
    INFO = "INFO"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class LogEntry:
    kind: LogKind
    key: str
    detail: str = ""
    at: float = field(default_factory=time.time)
    #: The etcd revision of the change (0: not a change of a key).
    revision: int = 0
    #: Read back from etcd's history (before launch): no wall-clock time is known.
    historic: bool = False


def log_entry(event: HistoryEvent, historic: bool = False) -> LogEntry:
    """The event log's line for a history event: its kind, or the removal's reason."""
    key = event.key_text
    if event.kind is EventKind.PUT:
        kind, detail = LogKind.PUT, (event.address() or "")
    elif event.kind is EventKind.UPDATE:
        version = event.kv.version if event.kv is not None else 0
        kind, detail = LogKind.UPDATE, f"version {version}"
    else:
        kind = LogKind(event.reason.value) if event.reason is not None else LogKind.DELETE
        detail = event.detail
    at = event.at if event.at is not None else 0.0
    return LogEntry(kind, key, detail, at, event.revision, historic)
