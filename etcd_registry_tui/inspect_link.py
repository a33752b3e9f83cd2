"""The dashboard as an open inspect view sees it (an
:class:`~.screens.inspect_source.InspectSource`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .registry.history.timeline import earlier_registrations, key_timeline
from .registry.model import Instance
from .registry.session import RegistrySession
from .screens.inspect_source import TTL


@dataclass(slots=True, frozen=True)
class SessionInspectSource:
    """Reads the session (state, leases, ownership, history) and the prober's results."""

    session: RegistrySession
    probe_text_of: Callable[[bytes], str | None]

    def instance(self, key: bytes) -> Instance | None:
        return self.session.state.get(key)

    @property
    def revision(self) -> int:
        return self.session.state.revision

    def ttl(self, lease: int) -> TTL:
        return self.session.ttl(lease)

    def keys_on_lease(self, lease: int) -> int:
        return len(self.session.state.keys_on_lease(lease))

    def is_own(self, key: bytes) -> bool:
        return self.session.is_own(key)

    def timeline(self, instance: Instance) -> tuple[list[str], list[str]]:
        history = self.session.history
        return (
            key_timeline(history, instance.raw_key),
            earlier_registrations(history, instance.raw_key, instance.service, instance.address),
        )

    def history_mark(self) -> object:
        history = self.session.history
        last = id(history.events[-1]) if len(history) else 0
        return (len(history), last, self.session.reasons_given)

    def probe_text(self, key: bytes) -> str | None:
        return self.probe_text_of(key)
