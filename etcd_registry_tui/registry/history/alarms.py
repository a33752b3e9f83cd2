"""Flapping instances and the mass-expiry alarm, from the events seen live.

Only events seen live count: etcd's history carries no wall-clock time, so "within 5
minutes" or "in the last 60 s" cannot be said of what happened before launch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
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
    ``minimum``) — or of the whole registry — expire within ``window`` seconds; it stays
    until no instance expired for ``quiet`` seconds.

    Certain expiries (``EXPIRED``, :mod:`.reasons`) raise ``MASS EXPIRY``. A lease that
    ended as its countdown ran out, or with its countdown unread, may have expired or been
    revoked by its owner just then (``LEASE ENDED`` with :attr:`HistoryEvent.ran_out`):
    when the certain ones are too few and these make up the rest, the alarm is raised as
    ``POSSIBLE MASS EXPIRY`` and says how many are not certain. A lease that may have been
    revoked with time left (certainly, or across an outage) never counts. The share is of
    the instances that existed in the window: those held now, every removal seen in it,
    and those removed whose reason is still being looked up (``waiting``)."""

    fraction: float = 0.2
    minimum: int = 3
    window: float = 60.0
    quiet: float = 60.0
    #: (when, service) of each certain expiry within the window.
    _expired: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=100_000))
    #: (when, service) of each removal whose lease may have expired (not certain).
    _unsure: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=100_000))
    #: (when, service) of every removal within the window (the share's denominator).
    _removed: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=100_000))
    #: The services named when the alarm was last logged (it logs again only for more).
    _named: frozenset[str] = frozenset()
    _text: str | None = None
    #: The alarm shown is certain (MASS EXPIRY), not only possible.
    _certain: bool = False
    _last_expiry: float = 0.0

    @property
    def active(self) -> bool:
        return self._text is not None

    def observe(
        self,
        events: Iterable[HistoryEvent],
        state: RegistryState,
        now: float,
        waiting: Mapping[str, int] | None = None,
    ) -> list[str]:
        """Take in live events; returns the alarm's text when it is raised (or grows to
        more services, or becomes certain), for the event log. ``waiting``: removals not
        yet passed on, per service (:meth:`RegistrySession.waiting_removals`)."""
        removed = [e for e in events if e.kind is EventKind.DELETE]
        if not removed:
            return []
        for event in removed:
            at = event.at if event.at is not None else now
            self._removed.append((at, event.service))
            if event.reason is Reason.EXPIRED:
                self._expired.append((at, event.service))
            elif event.ran_out and event.reason is Reason.LEASE_ENDED:
                self._unsure.append((at, event.service))
        limit = now - self.window
        for seen in (self._expired, self._unsure, self._removed):
            while seen and seen[0][0] < limit:
                seen.popleft()
        if not any(
            e.reason is Reason.EXPIRED or (e.ran_out and e.reason is Reason.LEASE_ENDED)
            for e in removed
        ):
            return []
        self._last_expiry = now
        waiting = waiting or {}
        expired, unsure, gone = (
            _per_service(self._expired),
            _per_service(self._unsure),
            _per_service(self._removed),
        )

        def existed(name: str) -> int:
            """Instances of ``name`` in the window: held now, plus those removed in it."""
            group = state.groups.get(name)
            held = len(group.instances) if group is not None else 0
            return held + gone.get(name, 0) + waiting.get(name, 0)

        def alarming(count: int, of: int) -> bool:
            return count >= self.minimum and count >= self.fraction * of

        of_all = len(state) + len(self._removed) + sum(waiting.values())
        certain = len(self._expired)
        hit = {
            name: (count, existed(name))
            for name, count in expired.items()
            if alarming(count, existed(name))
        }
        if hit or alarming(certain, of_all):
            parts = ", ".join(
                f"{safe_line(name)} {count:,}/{of:,}"
                for name, (count, of) in sorted(hit.items(), key=lambda kv: -kv[1][0])
            )
            text = (
                f"MASS EXPIRY: {certain:,} of {of_all:,} instances expired"
                f" in the last {self.window:.0f} s"
            )
        else:
            both = {n: expired.get(n, 0) + unsure.get(n, 0) for n in expired.keys() | unsure}
            hit = {
                name: (count, existed(name))
                for name, count in both.items()
                if alarming(count, existed(name))
            }
            total = certain + len(self._unsure)
            if not hit and not alarming(total, of_all):
                return []
            parts = ", ".join(
                f"{safe_line(name)} {count:,}/{of:,}"
                for name, (count, of) in sorted(hit.items(), key=lambda kv: -kv[1][0])
            )
            text = (
                f"POSSIBLE MASS EXPIRY: {total:,} of {of_all:,} instances' leases ended"
                f" in the last {self.window:.0f} s — {certain:,} certainly expired,"
                f" {len(self._unsure):,} not certain (expired, or revoked near their end)"
            )
        if parts:
            text += f" — {parts}"
        now_certain = text.startswith("MASS")
        # Logged when raised, again when it spreads to more services or becomes certain.
        raised = (
            self._text is None or not set(hit) <= self._named or (now_certain and not self._certain)
        )
        self._named = (self._named if self._text is not None else frozenset()) | set(hit)
        self._text, self._certain = text, now_certain
        return [text] if raised else []

    def banner(self, now: float) -> str | None:
        """The banner's text while the alarm lasts, else ``None``."""
        if self._text is not None and now - self._last_expiry >= self.quiet:
            self._text, self._named, self._certain = None, frozenset(), False
        return self._text


def _per_service(seen: Iterable[tuple[float, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, service in seen:
        counts[service] = counts.get(service, 0) + 1
    return counts
