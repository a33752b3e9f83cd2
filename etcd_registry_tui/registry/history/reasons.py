"""Why a key with a lease went, seen live: each reason is certain or says it is not.

etcd's watch says only that a key was deleted. A revoke, an expiry (etcd's leader revokes
a lease whose time ran out) and a plain delete all look alike in it, so the reason comes
from what can be proved:

- ``DEREGISTERED``: the lease outlived the delete (etcd still knows it when asked after
  the delete arrived; a lease that ends takes its keys with it, in the same revision), or
  this dashboard deleted the key and etcd's answer carries the revision of the delete.
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
within the watch's latency of the lease's end is taken for the lease's doing, and a
delete by someone else of the lease's last key between the dashboard's read and its
revoke (a round trip apart: a revoke cannot be made conditional on a key) is taken for
the revoke's doing.
"""

from __future__ import annotations

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


def judge(event: HistoryEvent, ttl_after: int | None, clues: Clues) -> None:
    """Set the reason of a delete of a key with a lease, from the lease's TimeToLive
    asked after the delete arrived (``ttl_after``; -1: gone, None: etcd did not say)."""
    hex_lease = lease_text(event.lease)
    window = clues.window
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
        event.reason, event.detail = Reason.DEREGISTERED, f"key deleted, lease {hex_lease} lives on"
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
    elif (
        window is not None
        and not clues.gap
        and not clues.behind
        and window.hi - window.alive_at <= FRESH
        and window.hi <= clues.arrived <= window.hi + LATE
    ):
        event.reason, event.detail = Reason.EXPIRED, f"lease {hex_lease} expired"
    elif clues.gap:
        event.reason = Reason.LEASE_ENDED
        event.detail = f"lease {hex_lease} ended while the connection was down (expired or revoked)"
    elif clues.behind:
        event.reason = Reason.LEASE_ENDED
        event.detail = (
            f"lease {hex_lease} ended (expired or revoked; its countdown was not read in time)"
        )
    elif window is not None and clues.arrived >= window.lo:
        event.reason = Reason.LEASE_ENDED
        event.detail = (
            f"lease {hex_lease} ended as its countdown ran out (expired, or revoked near its end)"
        )
    else:
        event.reason, event.detail = (
            Reason.LEASE_ENDED,
            f"lease {hex_lease} ended (expired or revoked)",
        )
