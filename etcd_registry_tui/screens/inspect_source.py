"""What an open inspect view reads of the live dashboard: one small protocol.

The app opens :class:`~.inspect.InspectScreen` with a source and, as things change, calls
one of the screen's ``follow_*`` methods; the screen asks the source for what it shows
(the key's instance, its lease's countdown and keys, ownership, timeline, probe result).
Nothing else reaches into the screen.
"""

from __future__ import annotations

from typing import Protocol

from ..registry.model import Instance

TTL = tuple[float | None, int | None]


class InspectSource(Protocol):
    def instance(self, key: bytes) -> Instance | None:
        """The key as the dashboard holds it now (None: not held)."""

    @property
    def revision(self) -> int:
        """The revision the dashboard's state is at."""

    def ttl(self, lease: int) -> TTL:
        """(remaining seconds, granted TTL) of ``lease``, as the lease tracker has them."""

    def keys_on_lease(self, lease: int) -> int:
        """How many keys are bound to ``lease``."""

    def is_own(self, key: bytes) -> bool:
        """``key`` was registered from this dashboard."""

    def timeline(self, instance: Instance) -> tuple[list[str], list[str]]:
        """The key's versions and earlier registrations at its address (display-safe)."""

    def history_mark(self) -> object:
        """Changes whenever the history held changes (to redraw the timeline only then)."""

    def probe_text(self, key: bytes) -> str | None:
        """The last probe of the key's address, worded (None: not probed)."""
