"""Why a key with a lease went, seen live: each reason is certain or says it is not.

etcd's watch says only that a key was deleted. A revoke, an expiry (etcd's leader revokes
a lease whose time ran out) and a plain delete all look alike in it, so the reason comes
from what can be proved:

- ``DEREGISTERED``: the lease outlived the delete (etcd still knows it when asked after
  the delete arrived; a lease that ends takes its keys with it, in the same revision), or
  this dashboard deleted the key and etcd's answer carries the revision of the delete.
  A lease etcd knows after the delete may also be a new one granted with the same id
  (clients may choose the id): when its granted TTL differs from the one read before,
  it is, and the lease is judged as ended; otherwise the detail says it may be.
- ``REVOKED``: this dashboard revoked the lease, a read just before the revoke found the
  key on the lease (at revision P), and etcd's answer to the revoke carries a later
  revision that is that of the key's delete. The answer alone proves nothing: a revoke
  that removes no keys answers with the *current* revision, which may be that of someone
  else's delete of the lease's last key; only a revoke that removed keys makes a new one.
  A key the read found already gone was deleted while the lease lived on (``DEREGISTERED``:
  the revoke, later, found the lease); otherwise a revoke from here is ``LEASE ENDED``.
- ``EXPIRED``: the lease's deadline, as last read from etcd while connected, had passed
  when the delete arrived, a little later, with no connection loss in between and no
  reading of the lease overdue (a starved tracker could miss a renewal): the
  reading was taken within :data:`FRESH` seconds of that deadline and the delete came at
  most :data:`LATE` seconds after it (etcd revokes an expired lease within about a
  second). A delete that arrives later than that was held up and may have been a revoke.
- ``LEASE ENDED`` otherwise (not certain), with what is known: a lease that ended while
  it certainly still had time (the delete arrived before the earliest deadline its
  readings allow) was revoked, but whether the key went with it or was deleted just
  before ("delete, then revoke": Go's Resign then Session.Close) cannot be told. When
  removals come faster than their leases can be looked up, those beyond a bound are
  not looked up, and say so.

What remains unprovable from outside: an owner renewing its lease after the last reading
and revoking it at about its old deadline is taken for an expiry, a delete made
within the watch's latency of the lease's end is taken for the lease's doing, a lease
that ended and was granted again with the same id and TTL before the lookup looks like
one that lived on (the detail of such a ``DEREGISTERED`` says so), and a delete by
someone else of the lease's last key between the dashboard's read and its revoke (a
round trip apart: a revoke cannot be made conditional on a key) is taken for the
revoke's doing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..leases import LeaseWindow
from ..wording import lease_text
from .store import HistoryEvent, Reason

#: The last reading that found the lease came at most this long before its deadline
#: (the tracker reads a lease under its floor about every second while connected).
FRESH = 2.5
#: etcd removes an expired lease's keys within this long after its deadline.
LATE = 3.0


@dataclass(frozen=True, slots=True)
class Clues:
    """What was known of a deleted key's lease when its delete arrived."""

    #: When the delete arrived (the tracker's monotonic clock).
    arrived: float
    #: The deadline's bounds from the last reading that found the lease (None: none).
    window: LeaseWindow | None = None
    #: The connection was lost, or the state reloaded, since that reading.
    gap: bool = False
    #: The tracker's readings came back late (or failed) since that reading, while the
    #: connection stayed up: a renewal could have gone unseen.
    slow: bool = False
    #: How long the link may have held the delete up (since a reading last came back
    #: promptly): when readings were late or not taken, it may have happened that long
    #: before it arrived.
    held_up: float = 0.0
    #: The lease's granted TTL as last read (None: not known).
    granted: int | None = None
    #: The revision etcd gave this dashboard's revoke of the lease (None: not revoked here).
    revoked_at: int | None = None
    #: The revision of the read of the key just before that revoke (None: not read).
    read_before: int | None = None
    #: That read found the key on the lease.
    on_lease_before: bool = False
    #: The revision etcd gave this dashboard's delete of the key (None: not deleted here).
    deleted_at: int | None = None
    #: A reading of the lease was due and not taken (the tracker fell behind): an owner's
    #: renewal since the last reading could have gone unseen.
    behind: bool = False
    #: The lease was not looked up (too many removals were waiting for lookups already).
    unchecked: bool = False


def judge(
    event: HistoryEvent, ttl_after: int | None, clues: Clues, granted_after: int | None = None
) -> None:
    """Set the reason of a delete of a key with a lease, from the lease's TimeToLive
    asked after the delete arrived (``ttl_after``; -1: gone, None: etcd did not say;
    ``granted_after``: the granted TTL that answer carried)."""
    hex_lease = lease_text(event.lease)
    window = clues.window
    again = ""
    if (
        ttl_after is not None
        and ttl_after >= 0
        and clues.granted is not None
        and granted_after is not None
        and granted_after != clues.granted
    ):
        # A lease's granted TTL never changes: this is another lease with the same id, so
        # the one the key had ended.
        again = (
            f"; a lease with the same id was granted again since"
            f" ({granted_after}s TTL, was {clues.granted}s)"
        )
        ttl_after = -1
    event.ran_out = False
    if clues.deleted_at is not None and clues.deleted_at == event.revision:
        event.reason, event.detail = Reason.DEREGISTERED, "deleted from the dashboard"
    elif (
        clues.revoked_at is not None
        and clues.read_before is not None
        and clues.on_lease_before
        and clues.revoked_at > clues.read_before
        and clues.revoked_at == event.revision
    ):
        event.reason, event.detail = Reason.REVOKED, f"lease {hex_lease} revoked from the dashboard"
    elif ttl_after is not None and ttl_after >= 0:
        event.reason = Reason.DEREGISTERED
        event.detail = (
            f"key deleted, lease {hex_lease} lives on"
            " (unless it ended and was granted again with the same id)"
        )
    elif (
        clues.revoked_at is not None
        and clues.read_before is not None
        and event.revision <= clues.read_before
    ):
        event.reason = Reason.DEREGISTERED
        event.detail = f"key deleted, lease {hex_lease} lived on (revoked from the dashboard after)"
    elif clues.revoked_at is not None:
        event.reason = Reason.LEASE_ENDED
        event.detail = (
            f"lease {hex_lease} revoked from the dashboard; the key went with it"
            " or was deleted just before"
        )
    elif ttl_after is None and clues.unchecked:
        event.reason = Reason.LEASE_ENDED
        event.detail = (
            f"gone; whether lease {hex_lease} lives on was not checked (too many removals at once)"
        )
    elif ttl_after is None:
        event.reason = Reason.LEASE_ENDED
        event.detail = f"gone; whether lease {hex_lease} lives on is not known (etcd did not say)"
    elif window is not None and clues.arrived < window.lo:
        left = window.lo - clues.arrived
        event.reason = Reason.LEASE_ENDED
        event.detail = (
            f"lease {hex_lease} revoked with {left:.1f}s+ left; the key went with it"
            " or was deleted just before"
        )
    else:
        _ended(event, hex_lease, clues)
    event.detail += again


def _ended(event: HistoryEvent, hex_lease: str, clues: Clues) -> None:
    """The reason of a key whose lease ended without certainly having time left."""
    window = clues.window
    if (
        window is not None
        and not clues.gap
        and not clues.slow
        and not clues.behind
        and window.hi - window.alive_at <= FRESH
        and window.hi <= clues.arrived <= window.hi + LATE
    ):
        event.reason, event.detail = Reason.EXPIRED, f"lease {hex_lease} expired"
        event.ran_out = True
        return
    event.reason = Reason.LEASE_ENDED
    # The delete arrived once the countdown had run out (``arrived >= lo``). Across an
    # outage it may have happened long before, with time left; with readings late or not
    # taken, it may have waited in the link since a reading last came back promptly.
    unsure_link = clues.slow or clues.behind
    event.ran_out = not clues.gap and (
        not unsure_link or window is None or clues.arrived - clues.held_up >= window.lo
    )
    late = f"up to {clues.held_up:.1f}s late" if math.isfinite(clues.held_up) else "late"
    if clues.gap:
        event.detail = f"lease {hex_lease} ended while the connection was down (expired or revoked)"
    elif clues.slow and event.ran_out:
        event.detail = (
            f"lease {hex_lease} ended as its countdown ran out (expired, or revoked near its"
            f" end; etcd answered the dashboard {late})"
        )
    elif clues.slow:
        event.detail = (
            f"lease {hex_lease} ended while etcd answered the dashboard slowly ({late};"
            " expired or revoked, a renewal may have gone unseen)"
        )
    elif clues.behind:
        event.detail = (
            f"lease {hex_lease} ended (expired or revoked; its countdown was not read in time)"
        )
    elif window is not None:
        event.detail = (
            f"lease {hex_lease} ended as its countdown ran out (expired, or revoked near its end)"
        )
    else:
        event.detail = f"lease {hex_lease} ended (expired or revoked)"
