"""Flapping instances and the mass-expiry alarm, from the events seen live.

Only events seen live count: etcd's history carries no wall-clock time, so "within 5
minutes" or "in the last 60 s" cannot be said of what happened before launch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..model import RegistryState
from ..sanitize import safe_line
from .store import EventKind, HistoryEvent, Reason


@dataclass(slots=True)
class FlapDetector:
    """An instance (same service and address) registered ``threshold`` times or more
    within ``window`` seconds is flapping (restarts with new ids count)."""

    threshold: int = 3
    window: float = 300.0
    max_tracked: int = 10_000
    _puts: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    def observe(self, events: Iterable[HistoryEvent], now: float) -> None:
        for event in events:
            if event.kind is not EventKind.PUT:
                continue
            address = event.address()
            if address is None:
                continue
            seen = self._puts.setdefault((event.service, address), deque(maxlen=64))
            seen.append(event.at if event.at is not None else now)
        if len(self._puts) > self.max_tracked:
            self._forget(now)

    def _forget(self, now: float) -> None:
        """Drop addresses not seen within the window; if still too many, those seen
        longest ago (memory stays bounded however the addresses churn)."""
        limit = now - self.window
        kept = {k: v for k, v in self._puts.items() if v and v[-1] >= limit}
        if len(kept) > self.max_tracked // 2:
            newest = sorted(kept.items(), key=lambda kv: kv[1][-1])[-(self.max_tracked // 2) :]
            kept = dict(newest)
        self._puts = kept

    def counts(self, now: float) -> dict[tuple[str, str], int]:
        """(service, address) -> registrations within the window, for the flapping ones."""
        limit = now - self.window
        found: dict[tuple[str, str], int] = {}
        for where, seen in self._puts.items():
            while seen and seen[0] < limit:
                seen.popleft()
            if len(seen) >= self.threshold:
                found[where] = len(seen)
        return found

    def flapping_keys(self, state: RegistryState, now: float) -> dict[bytes, int]:
        """Keys of the instances now registered that are flapping -> the count."""
        keys: dict[bytes, int] = {}
        for (service, address), count in self.counts(now).items():
            group = state.groups.get(service)
            if group is None:
                continue
            for key, inst in group.instances.items():
                if inst.address == address:
                    keys[key] = count
        return keys


@dataclass(slots=True)
class MassExpiryAlarm:
    """Raised when at least ``fraction`` of a service's instances (and at least
    ``minimum``) — or of the whole registry — go within ``window`` seconds as their leases
    run out; it stays until no such removal for ``quiet`` seconds.

    It counts deletes with :attr:`HistoryEvent.ran_out`: certain expiries, and leases that
    ended just as their countdowns ran out (an expiry, or a revoke at that moment: from
    outside, etcd cannot tell them apart). The text says "expired" only when every one
    counted is a certain expiry. A lease that ended while the dashboard was cut off, or
    with time left, is not counted."""

    fraction: float = 0.2
    minimum: int = 3
    window: float = 60.0
    quiet: float = 60.0
    #: (when, service, a certain expiry) of each removal counted, within the window.
    _expired: deque[tuple[float, str, bool]] = field(default_factory=lambda: deque(maxlen=100_000))
    _text: str | None = None
    _last_expiry: float = 0.0

    @property
    def active(self) -> bool:
        return self._text is not None

    def observe(
        self, events: Iterable[HistoryEvent], state: RegistryState, now: float
    ) -> list[str]:
        """Take in live events; returns the alarm's text when it is raised (or grows to
        more services), for the event log."""
        fresh = [e for e in events if e.kind is EventKind.DELETE and e.ran_out]
        if not fresh:
            return []
        for event in fresh:
            at = event.at if event.at is not None else now
            self._expired.append((at, event.service, event.reason is Reason.EXPIRED))
        self._last_expiry = now
        limit = now - self.window
        while self._expired and self._expired[0][0] < limit:
            self._expired.popleft()
        per_service: dict[str, int] = {}
        for _, service, _ in self._expired:
            per_service[service] = per_service.get(service, 0) + 1
        total = len(self._expired)
        certain = sum(1 for _, _, sure in self._expired if sure)

        def alarming(expired: int, remaining: int) -> bool:
            return expired >= self.minimum and expired >= self.fraction * (expired + remaining)

        hit = {
            name: (
                count,
                count + len(state.groups[name].instances) if name in state.groups else count,
            )
            for name, count in per_service.items()
            if alarming(count, len(state.groups[name].instances) if name in state.groups else 0)
        }
        whole = alarming(total, len(state))
        if not hit and not whole:
            return []
        parts = ", ".join(
            f"{safe_line(name)} {count}/{of}"
            for name, (count, of) in sorted(hit.items(), key=lambda kv: -kv[1][0])
        )
        # Every one a certain expiry, or some may be revokes made just as time ran out.
        went = "expired" if certain == total else "ran out of lease"
        text = (
            f"MASS EXPIRY: {total} of {total + len(state)} instances {went} in the last"
            f" {self.window:.0f} s"
        )
        if parts:
            text += f" — {parts}"
        raised = self._text is None or self._text.split(" — ")[-1] != text.split(" — ")[-1]
        self._text = text
        return [text] if raised else []

    def banner(self, now: float) -> str | None:
        """The banner's text while the alarm lasts, else ``None``."""
        if self._text is not None and now - self._last_expiry >= self.quiet:
            self._text = None
        return self._text
