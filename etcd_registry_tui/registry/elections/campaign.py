"""Campaign in an etcd election the way Go's ``concurrency.Election`` and ``etcdctl elect`` do.

The candidate key is ``NAME/<lease id in %x>`` bound to the candidate's lease and put
only if absent; the candidate leads once every key under ``NAME/`` with a lower
CreateRevision is gone. So a Python service, an ``etcdctl elect`` and a Go program can
stand in the same election::

    election = Election(conn, "/elections/migrations")
    async with election.campaign("instance-1") as leadership:
        await run_migrations(stop=leadership.lost)

The deadline rule. etcd expires a lease TTL seconds after it *received* the last
keep-alive, on its own clock; no other candidate can lead before that. So a candidate
keeps a local deadline: the *send* time of the last acknowledged keep-alive (or of the
grant) plus the TTL etcd granted. That is never later than etcd's expiry (with clocks
that run at the same rate; a new etcd leader only extends leases). When it passes
without a newer acknowledgement (a frozen link, a partition, a paused candidate), the
candidacy is lost at once: ``lost`` is set, ``is_leader`` is False,
heartbeats stop and the lease is revoked if etcd can still be reached, as clientv3's
``Session.Done()`` ends a session. A leader therefore never thinks it leads after its
lease could have expired. Transient faults shorter than that (a refused endpoint, a
broken watch, a failover to another endpoint) are retried; a waiting candidate keeps
its place.

The confirmation rule. A keep-alive ack says the lease lives, not that our key does: the
key may have been deleted while the watch of it stalls (a frozen link the keep-alives
avoid on another endpoint). So once per keep-alive interval (TTL/3, at least 0.5 s) the
candidate reads its key (a linearizable read, timeout min(command timeout, TTL/4, at
least 0.5 s), retried on the next endpoint); a read that finds it, with our
CreateRevision and lease, confirms leadership as of the read's *send* time. Leadership
is certain only for :func:`confirm_window` seconds after the newest confirmation (the
interval plus twice the read timeout: 2.5 s for TTL 3, 30 s for TTL 60 with the default
5 s command timeout; always under the TTL from TTL 2). Past it ``is_leader`` is False
and a leader's candidacy is lost ("not certain"). A key deleted behind a stalled watch
is therefore claimed at most that long (the watch still reports it at once when alive).

On a lease someone else keeps alive (``lease=``) nothing is granted, renewed or revoked
here; ``start()`` asks etcd the lease's TTL and each confirmation asks it again, so the
deadline is the send time of that question plus the remaining TTL etcd answered (whole
seconds, rounded down), and the confirmation rule applies as above. The deadline only moves
forward (a lower reading is the rounding, not news); 0 at ``start()`` (under a second
left) is a deadline of now: lost. When the deadline comes within a read timeout the TTL is
re-read sooner than the interval (every 0.25 s), so an owner that renews every TTL-2 s
keeps its leader. A candidacy lost on such a lease deletes its key in the background,
retried with backoff until done or the lease is gone, so no orphan leads on the owner's
live lease; bounded (the later of the lease's known deadline and a minute, at most ten),
cancelled when the connection closes, and when it gives up (or leaves a key not provably
its own) it says so in ``cleanup_error`` and the log. ``resign()`` after such a loss still
deletes it (or raises :class:`ResignFailed`).

Every delete of our key is guarded on its CreateRevision *and* ModRevision as we last
wrote or read them. A newer candidacy on the same lease (the same key name) adopts a key
it finds by putting it again, which moves the ModRevision: an older candidacy's delete,
even one delivered late, can never take the newer one's key. ``resign()`` waits up to a
command timeout for a channel that is reconnecting (a link that just healed), so the
first resign after a heal resigns. ``proclaim()`` on a lost or resigning
candidacy raises :class:`LeadershipLost` and writes nothing (Go's ErrElectionNotLeader).

A ``start()`` that fails after its put may have gone through looks the key up by its name
and deletes it (a caller's lease) or revokes our own lease; when etcd does not answer, its
error names the key and the clean-up goes on in the background (on our own lease bounded by
the TTL: it expires unrenewed anyway). The look-up by name counts only while no newer
candidacy on the lease has stood up in this process since; after that the key is left
alone (it may be the newer one's) and ``cleanup_error`` says so.

One lease stands at most once in one election per process: a second candidacy on it
(which would share the one key and both think they lead) is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from aetcd import rpc, utils

from ..etcd.backoff import Backoff
from ..etcd.connection import EtcdConnection
from ..etcd.errors import (
    EtcdUnavailable,
    LeaseNotFound,
    RegistryError,
    RevisionCompacted,
    WatchRejected,
)
from ..registration import validate_ttl

T = TypeVar("T")

log = logging.getLogger(__name__)

#: Delay before retrying a failed confirmation read (doubled per failure, up to the interval).
_CONFIRM_RETRY = 0.1

#: Shortest pause between re-reads of an external lease's TTL when its deadline is near.
_SHORT_RECHECK = 0.25

#: The background deletion of a lost candidacy's key on someone else's lease keeps trying
#: until the later of the lease's known deadline and this many seconds from its start...
_CLEAR_KEY_PATIENCE = 60.0
#: ... but never longer than this (the lease's owner may keep it alive for ever).
_CLEAR_KEY_MAX = 600.0


def _interval(ttl: int) -> float:
    """Seconds between keep-alives, and between confirmations of the key."""
    return max(0.5, ttl / 3)


def _read_timeout(ttl: int, command_timeout: float) -> float:
    """A renewal or confirmation stuck on a silent endpoint gives up this soon."""
    return min(command_timeout, max(0.5, ttl / 4))


def confirm_window(ttl: int, command_timeout: float) -> float:
    """Seconds a confirmation that the key is ours keeps leadership certain (see the
    module docstring): the interval plus two read timeouts, so one read stuck on a frozen
    endpoint and its retry on the next still come in time."""
    return _interval(ttl) + 2 * _read_timeout(ttl, command_timeout)


_DELETE = 1  # mvccpb.Event.DELETE

#: Faults a waiting candidate rides out (its lease's deadline still applies).
_RETRYABLE = (EtcdUnavailable, WatchRejected, RevisionCompacted)

#: (election name, lease id) -> the candidacy standing on it in this process (not keyed
#: on the endpoints as typed: two spellings of one etcd would both lead on one key).
_standing: dict[tuple[str, int], Candidacy] = {}

#: (election name, lease id) -> candidacies that no longer stand on it but may still delete
#: their key there in the background; a new candidacy on it marks them superseded.
_clearing: dict[tuple[str, int], set[Candidacy]] = {}


class LeadershipLost(RegistryError):
    hint = "the candidate's lease ended or its key was deleted"


class ResignFailed(RegistryError):
    hint = "its key may still lead until its lease ends: try again, or revoke the lease"


async def _retried(conn: EtcdConnection, op: Callable[[], Awaitable[T]]) -> T:
    """``op``, retried on transient faults (:class:`EtcdUnavailable`) with a short backoff
    for about one command timeout of ``conn``; then the fault is raised."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + conn.config.command_timeout
    backoff = Backoff(initial=0.2, maximum=1.0)
    while True:
        try:
            return await op()
        except EtcdUnavailable:
            delay = backoff.failed()
            if loop.time() + delay >= give_up:
                raise
            await asyncio.sleep(delay)


class Candidacy:
    """One candidate in an election: its lease, its key, and whether it leads.

    ``elected`` is set once it leads; ``lost`` when its lease ends or may have ended (the
    deadline rule, see the module docstring), its key goes, or a leader's key went
    unconfirmed for :func:`confirm_window` seconds (the confirmation rule); ``reason``
    says why. ``is_leader`` is True only while none of these holds.
    ``pause()`` stops the heartbeats (the lease runs out: a failover demo).

    With ``lease`` the candidate stands on a lease someone else keeps alive (say the
    instance's registration lease, so the instance and its candidacy end together): no
    lease is granted, kept alive or revoked here.
    """

    def __init__(self, election: Election, value: bytes, ttl: int, lease: int = 0) -> None:
        self.election = election
        self.value = value
        self.ttl = validate_ttl(ttl)
        self.external_lease = bool(lease)
        self.lease = lease
        self.key = b""
        self.create_revision = 0
        self.paused = False
        self.elected = asyncio.Event()
        self.lost = asyncio.Event()
        self.reason: str | None = None
        #: Event-loop time after which our own lease may have expired (None: not ours).
        self.deadline: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: Event-loop time until which the newest confirmation keeps leadership certain.
        self.confirmed_until: float | None = None
        self._confirm_timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # whose clock the deadline is on
        self._ending: asyncio.Task[None] | None = None
        self._quiet = False  # abandoned: write nothing any more
        self._slot: tuple[str, int] | None = None
        self._stepped_down = False  # resigning or abandoned: never reports leading again
        self._tasks: list[asyncio.Task[None]] = []
        self._stream: Any = None
        self._revoked = False  # our own lease: revoked (or found gone) by us
        self._key_cleared = False  # lost on an external lease: our key is known gone
        #: The ModRevision of our key as we last wrote (or, before knowing it, read) it;
        #: every delete of our key is guarded on it as well as on the CreateRevision.
        self.mod_revision = 0
        #: A newer candidacy on our lease stood up in this election in this process after
        #: ours stepped down: a key by our name is no longer provably ours.
        self._superseded = False
        #: Why a background clean-up gave up with a key of ours possibly left standing
        #: (or left it alone, not provably ours); None when none did. Also logged.
        self.cleanup_error: str | None = None

    @property
    def is_leader(self) -> bool:
        return (
            self.elected.is_set()
            and not self._stepped_down
            and not self.lost.is_set()
            and not self._past_deadline()
            and self._confirmed()
        )

    @property
    def ended(self) -> bool:
        """Lost, and done stopping its heartbeats and letting its lease go."""
        return self.lost.is_set() and (self._ending is None or self._ending.done())

    def _past_deadline(self) -> bool:
        return (
            self._loop is not None
            and self.deadline is not None
            and (self._loop.time() >= self.deadline)
        )

    def _resigning(self) -> bool:
        """resign() started (and may have failed, to be retried); not abandoned."""
        return self._stepped_down and not self._quiet

    def _confirmed(self) -> bool:
        loop = self._loop
        return (
            loop is not None
            and self.confirmed_until is not None
            and loop.time() < self.confirmed_until
        )

    def _window(self) -> float:
        return confirm_window(self.ttl, self.election.conn.config.command_timeout)

    def _confirm(self, sent: float) -> None:
        """A read sent at ``sent`` found our key (our CreateRevision, our lease)."""
        loop = self._loop = asyncio.get_running_loop()
        self.confirmed_until = sent + self._window()
        if self._confirm_timer is not None:
            self._confirm_timer.cancel()
        self._confirm_timer = loop.call_at(self.confirmed_until, self._unconfirmed)

    def _unconfirmed(self) -> None:
        self._confirm_timer = None
        if self._resigning():
            return  # not leading already; "lost" would make a retried resign() do nothing
        if self.elected.is_set():  # a waiting candidate claims nothing: it keeps its place
            self._lose(
                f"could not confirm within {self._window():.1f} s that the candidate key is"
                " still ours: leadership is not certain"
            )

    def _extend(self, sent: float, ttl: int) -> None:
        """A keep-alive (or the grant) sent at ``sent`` was acknowledged with ``ttl``."""
        loop = self._loop = asyncio.get_running_loop()
        self.deadline = sent + ttl
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(self.deadline, self._expired)

    def _expired(self) -> None:
        self._timer = None
        if self.external_lease:
            if self._resigning():
                return  # its owner may keep it alive: the key may stand, resign() may retry
            self._lose("the lease's remaining TTL ran out unconfirmed: the lease may have expired")
            return
        self._lose(
            f"no keep-alive acknowledged within the lease's {self.ttl} s TTL:"
            " the lease may have expired"
        )

    def _lose(self, reason: str, end: bool = True) -> None:
        if self.lost.is_set():
            return
        self.reason = reason
        log.info("candidacy in %s lost: %s", self.election.name, reason)
        self.lost.set()
        self._release_slot()
        for timer in (self._timer, self._confirm_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._confirm_timer = None
        if end and not self._quiet and self._ending is None:
            if self.external_lease:
                self._clearing_add()
            self._ending = self._background(self._end, f"end {self.election.name}")

    def _background(self, cleanup: Callable[[], Awaitable[None]], name: str) -> asyncio.Task[None]:
        """A clean-up task: held by the connection (cancelled when it closes) and logged
        if it fails, so none is left running or unretrieved. Cut short with our key on
        someone else's lease maybe standing, it says so in :attr:`cleanup_error`."""

        async def run() -> None:
            try:
                await cleanup()
            except asyncio.CancelledError:
                if self.external_lease and self.key and not self._key_cleared:
                    if self.cleanup_error is None:
                        key = self.key.decode("utf-8", "backslashreplace")
                        self._cleanup_failed(
                            f"deleting {key} was cut short (the connection closed): it may"
                            f" still stand on lease {self.lease:x} until that ends"
                        )
                self._clearing_done()
                raise

        task = asyncio.create_task(run(), name=name)
        self.election.conn.background(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "clean-up of a candidacy in %s failed: %r", self.election.name, task.exception()
            )

    def _clearing_add(self) -> None:
        _clearing.setdefault((self.election.name, self.lease), set()).add(self)

    def _clearing_done(self) -> None:
        slot = (self.election.name, self.lease)
        others = _clearing.get(slot)
        if others is not None:
            others.discard(self)
            if not others:
                del _clearing[slot]

    def _cleanup_failed(self, message: str) -> None:
        self.cleanup_error = message
        log.warning("candidacy in %s: %s", self.election.name, message)

    async def _end(self) -> None:
        """A lost candidacy: stop the heartbeats and let the lease go (if ours); on
        someone else's lease, which may live on, delete our key (see :meth:`_clear_key`)."""
        await self._stop_tasks()
        if self.external_lease:
            await self._clear_key()
        elif self.lease:
            try:
                await self.election.conn.revoke(self.lease)
                self._revoked = True
            except RegistryError as exc:  # gone already, or out of reach: it expires unrenewed
                log.info("revoking the lost lease %x: %s", self.lease, exc)

    async def _clear_key(self) -> None:
        """Delete our key from someone else's lease (guarded on its CreateRevision and
        ModRevision; the CreateRevision found by the key's name when unknown, only while no
        newer candidacy stands on the lease here), retried with backoff until done (deleted,
        no longer ours, or gone with the lease), until the later of the lease's known
        deadline and ``_CLEAR_KEY_PATIENCE`` (at most ``_CLEAR_KEY_MAX``), or until the
        connection closes. Giving up with the key possibly standing, or leaving a key not
        provably ours, is said in :attr:`cleanup_error` (and logged)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        known = self.deadline if self.deadline is not None else now
        give_up = min(max(known, now + _CLEAR_KEY_PATIENCE), now + _CLEAR_KEY_MAX)
        backoff = Backoff(initial=0.2, maximum=2.0)
        key = self.key.decode("utf-8", "backslashreplace")
        try:
            while not self._key_cleared and self.key:
                try:
                    if not self.create_revision:
                        if not self._superseded:
                            await self._find_own_key()
                        if self._superseded and not self.create_revision:
                            self._cleanup_failed(
                                f"left {key} alone: a newer candidacy on lease {self.lease:x}"
                                " stands in this election (the key may be its own)"
                            )
                            return
                        if not self.create_revision:  # not there, or not on our lease
                            self._key_cleared = True
                            return
                    await self._delete_guarded()
                    return
                except EtcdUnavailable as exc:
                    log.info(
                        "deleting the key of a lost candidacy in %s: %s", self.election.name, exc
                    )
                    delay = backoff.failed()
                    if loop.time() + delay >= give_up:
                        self._cleanup_failed(
                            f"gave up deleting {key} (it may still stand on lease"
                            f" {self.lease:x} until that ends): {exc}"
                        )
                        return
                    await asyncio.sleep(delay)
                except RegistryError as exc:
                    self._cleanup_failed(f"could not delete {key}: {exc}")
                    return
        finally:
            self._clearing_done()

    async def _delete_guarded(self, patience: float = 0.0) -> None:
        """One guarded delete of our key (CreateRevision and ModRevision): deleted, gone,
        or no longer ours, then ``_key_cleared``. A key rewritten since (its ModRevision
        moved) is deleted anyway only while this candidacy still stands on the lease here
        (nobody else's adoption can have moved it); otherwise it is left alone and said
        so in :attr:`cleanup_error`. Transient faults are raised."""
        for _ in range(3):
            response = await self.election._txn_raw(
                [
                    _compare_create(self.key, self.create_revision),
                    _compare_mod(self.key, self.mod_revision),
                ],
                [rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=self.key))],
                [rpc.RequestOp(request_range=rpc.RangeRequest(key=self.key))],
                patience=patience,
            )
            kvs = [] if response.succeeded else response.responses[0].response_range.kvs
            if not kvs or kvs[0].create_revision != self.create_revision:
                self._key_cleared = True  # deleted, or gone (with the lease) or replaced
                return
            if self._slot is None or _standing.get(self._slot) is not self:
                key = self.key.decode("utf-8", "backslashreplace")
                self._cleanup_failed(
                    f"left {key} alone: it was rewritten since this candidacy stepped"
                    " down (perhaps adopted by a newer candidacy on its lease)"
                )
                self._key_cleared = True  # nothing more we may do to it
                return
            self.mod_revision = int(kvs[0].mod_revision)  # someone wrote it: still ours
        raise RegistryError(f"the key of {self.election.name} kept changing under its delete")

    async def _revoke_soon(self) -> None:
        """Our own lease after a failed start: revoke it, retried with backoff until done
        or until it has surely expired unrenewed (bounded)."""
        loop = asyncio.get_running_loop()
        give_up = (self.deadline or loop.time()) + self.ttl + 1
        backoff = Backoff(initial=0.2, maximum=2.0)
        while not self._revoked and loop.time() < give_up:
            try:
                await self.election.conn.revoke(self.lease)
                self._revoked = True
            except LeaseNotFound:
                self._revoked = True  # expired already: so did the key
            except EtcdUnavailable as exc:
                log.info("revoking lease %x after a failed start: %s", self.lease, exc)
                await asyncio.sleep(min(backoff.failed(), max(0.0, give_up - loop.time())))
            except RegistryError as exc:
                log.info("revoking lease %x after a failed start: %s", self.lease, exc)
                return

    def _claim_slot(self) -> None:
        slot = (self.election.name, self.lease)
        other = _standing.get(slot)
        if other is not None and other is not self:
            raise RegistryError(
                f"lease {self.lease:x} already stands in election {self.election.name}"
                " in this process",
                "use that candidacy, or resign it first",
            )
        _standing[slot] = self
        self._slot = slot
        for older in _clearing.pop(slot, set()):
            older._superseded = True

    def _release_slot(self) -> None:
        if self._slot is not None and _standing.get(self._slot) is self:
            del _standing[self._slot]
        self._slot = None

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    async def start(self) -> None:
        """Grant the lease, put the key if absent, start heartbeats and watching the key."""
        election = self.election
        if self.external_lease:
            self._claim_slot()
            try:
                await self._lease_deadline(self._read_timeout())
            except BaseException:
                self._release_slot()
                raise
        else:
            sent = asyncio.get_running_loop().time()
            self.lease, granted = await election.conn.grant(self.ttl)
            self.ttl = granted
            self._extend(sent, granted)
            self._claim_slot()
            self._stream = election.conn.keepalive_stream()
            self._tasks.append(
                asyncio.create_task(self._keep_alive(), name=f"candidate {election.name}")
            )
        try:
            await self._enter()
        except BaseException as exc:
            unsure = False  # whether a key of ours may be left standing
            if not self.key and self.lease:
                # the put may have gone through with its reply lost: find the key by its
                # name and take it away, or it would stand on the caller's lease for ever
                # (on our own lease, revoking it takes the key)
                self.key = election.key_for(self.lease)
                if self.external_lease:
                    try:
                        await self._find_own_key_retried()
                    except RegistryError:
                        unsure = True
            try:
                await self.resign()
            except RegistryError:
                unsure = True
            if self.lease and not self.external_lease and not self._revoked:
                unsure = True
            self._release_slot()
            if unsure and self.lease and (self._ending is None or self._ending.done()):
                # keep trying in the background: delete the key (a caller's lease) or
                # revoke our lease (bounded: it expires unrenewed anyway)
                if self.external_lease:
                    self._clearing_add()
                cleanup = self._clear_key if self.external_lease else self._revoke_soon
                self._ending = self._background(cleanup, f"clean up {election.name}")
            if unsure and isinstance(exc, EtcdUnavailable):
                key = self.key.decode("utf-8", "backslashreplace")
                what = "deleting it" if self.external_lease else "revoking the lease"
                raise EtcdUnavailable(
                    f"{exc}; its key {key} may still stand on lease {self.lease:x}:"
                    f" {what} in the background once etcd answers"
                ) from exc
            raise
        self._tasks.append(asyncio.create_task(self._watch_own(), name=f"own key {election.name}"))
        self._tasks.append(
            asyncio.create_task(self._confirm_own(), name=f"confirm key {election.name}")
        )

    async def _enter(self) -> None:
        """Put our key if absent, retried for about one command timeout on a transient
        fault: a retry finds the key a lost reply put there (the same name) and adopts it."""
        election = self.election
        loop = asyncio.get_running_loop()
        sent = loop.time()

        async def put() -> None:
            nonlocal sent
            sent = loop.time()
            self.key, self.create_revision, self.mod_revision = await election._enter(
                self.value, self.lease
            )

        await _retried(election.conn, put)
        self._confirm(sent)

    async def _find_own_key_retried(self) -> None:
        """:meth:`_find_own_key`, retried on transient faults for about one command timeout."""
        await _retried(self.election.conn, self._find_own_key)

    async def _find_own_key(self) -> None:
        """Learn the CreateRevision (and ModRevision) of our key, by its name, if it stands
        on our lease and no newer candidacy on the lease stood up here meanwhile (a key by
        that name might then be its own)."""
        kv = await self.election._read_key(self.key, self._read_timeout())
        if kv is not None and kv.lease == self.lease and not self._superseded:
            self.create_revision = int(kv.create_revision)
            self.mod_revision = int(kv.mod_revision)

    def _read_timeout(self) -> float:
        return _read_timeout(self.ttl, self.election.conn.config.command_timeout)

    async def _lease_deadline(self, timeout: float) -> None:
        """An external lease: ask etcd its TTL; the deadline is the question's send time
        plus the remaining TTL. etcd truncates it to whole seconds (the true remaining lies
        in [remaining, remaining + 1)), so that is never later than the expiry, and one
        earlier than the deadline already held says nothing new: the deadline only moves
        forward. 0 (under a second left) at start is a deadline of now: lost, not certain.
        Raises LeadershipLost if the candidacy is lost."""
        sent = asyncio.get_running_loop().time()
        remaining, granted = await self.election._lease_ttl(self.lease, timeout)
        if remaining < 0:  # etcd's answer for a lease it does not know
            self._lose("the lease ended")
            raise LeadershipLost(f"lease {self.lease:x} has ended (expired or revoked)")
        self.ttl = max(granted, 1)
        if self._past_deadline():
            self._expired()
        if not self.lost.is_set() and (self.deadline is None or sent + remaining > self.deadline):
            self._extend(sent, remaining)
            if self._past_deadline():  # under a second left, from no deadline: now
                self._expired()
        if self.lost.is_set():
            raise LeadershipLost(f"candidacy in {self.election.name} ended: {self.reason}")

    def _next_check(self, interval: float, timeout: float) -> float:
        """Seconds until the next confirmation: the interval, or sooner on an external
        lease whose deadline comes within a read timeout of it (its owner may have renewed
        the lease since: a re-read then moves the deadline on)."""
        if not self.external_lease or self.deadline is None or self._loop is None:
            return interval
        left = self.deadline - self._loop.time() - timeout
        return min(interval, max(_SHORT_RECHECK, left))

    async def wait_elected(self) -> None:
        """Wait until every earlier candidate is gone, riding out transient faults; raise
        LeadershipLost if the candidacy ended first."""
        waiting = asyncio.ensure_future(self.election._wait_deletes(self.create_revision))
        lost = asyncio.ensure_future(self.lost.wait())
        try:
            await asyncio.wait({waiting, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (waiting, lost):
                fut.cancel()
            await asyncio.gather(waiting, lost, return_exceptions=True)
        if self._past_deadline():
            self._expired()  # the timer may not have run yet on a busy loop
        if self.lost.is_set():
            raise LeadershipLost(f"candidacy in {self.election.name} ended: {self.reason}")
        waiting.result()
        self.elected.set()
        if not self._confirmed():  # waited through faults: lead only once confirmed again
            with contextlib.suppress(EtcdUnavailable):
                await self._check_key(self._read_timeout())
            if not self._confirmed():
                self._unconfirmed()
                raise LeadershipLost(f"candidacy in {self.election.name} ended: {self.reason}")

    async def proclaim(self, value: str | bytes) -> None:
        """Change the leader's value, guarded on still being the same candidate key."""
        data = value.encode() if isinstance(value, str) else value
        if self.lost.is_set() or self._stepped_down or not self.create_revision:
            # as Go's ErrElectionNotLeader: a candidacy that lost (or resigned) writes nothing
            raise LeadershipLost(
                f"cannot proclaim in {self.election.name}: no longer a candidate"
                f" ({self.reason or 'resigning'})"
            )
        response = await self.election._txn_raw(
            [_compare_create(self.key, self.create_revision)],
            [rpc.RequestOp(request_put=rpc.PutRequest(key=self.key, value=data, lease=self.lease))],
            [],
        )
        if not response.succeeded:
            self._lose("the candidate key was replaced or deleted")
            raise LeadershipLost(f"cannot proclaim in {self.election.name}: no longer a candidate")
        self.value = data
        self.mod_revision = int(response.header.revision)

    async def _stop_tasks(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        self._tasks = []
        for task in tasks:
            task.cancel()
        if self._stream is not None:
            self._stream.close()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def abandon(self) -> None:
        """Stop our tasks and write nothing (a crash: etcd ends the candidacy with the lease).

        The deadline still runs: once it passes, ``lost`` is set (and nothing written)."""
        self._quiet = True
        self._stepped_down = True
        self._release_slot()
        await self._stop_tasks()
        ending = self._ending
        if ending is not None and not ending.done():
            ending.cancel()
            await asyncio.gather(ending, return_exceptions=True)

    async def resign(self) -> None:
        """Stop heartbeats, delete the key (guarded on its CreateRevision), revoke the lease
        (unless the lease is someone else's).

        A delete that failed on a transient fault (a timeout: it may have gone through) is
        followed by a re-read of the key, retried for about one command timeout: resigned
        only when etcd confirms the key is gone.

        Raises :class:`ResignFailed` when the key may still stand (neither the delete nor,
        on our own lease, the revoke went through; its message says when the key's state
        is unknown because it could not be re-read); the candidacy is then not ``lost`` and
        ``resign()`` may be called again (it no longer reports leading, though: from the
        moment resign starts ``is_leader`` is False). A candidacy already lost has nothing
        to resign."""
        self._stepped_down = True
        await self._stop_tasks()
        if self.lost.is_set():
            if not self.external_lease or self._key_cleared:
                if self._ending is not None:
                    await asyncio.gather(self._ending, return_exceptions=True)
                return
            # lost on a lease its owner may keep alive: our key may still stand there (its
            # background deletion may still be retrying): delete it now, or say it stands
        error: RegistryError | None = None
        unknown = standing = False
        if self.key and self.create_revision:
            try:
                await self._delete_key()
            except RegistryError as exc:
                error = exc
                if isinstance(exc, EtcdUnavailable):  # it may have gone through: ask etcd
                    try:
                        if await self._key_gone():
                            error = None
                        else:
                            standing = True
                    except RegistryError:
                        unknown = True
        if self.lease and not self.external_lease:
            try:
                await self.election.conn.revoke(self.lease, patience=self._patience())
                self._revoked = True
                error = None  # the key went with the lease
            except LeaseNotFound:
                self._revoked = True
                error = None  # expired already: so did the key
            except RegistryError as exc:
                log.info("revoking lease %x of %s: %s", self.lease, self.election.name, exc)
        if error is not None:
            state = ""
            if unknown:
                state = "; whether its key is gone is unknown (it could not be re-read)"
            elif standing:
                state = "; its key still stands"
            raise ResignFailed(
                f"could not resign from {self.election.name}: {error}{state}"
            ) from None
        if self.external_lease and (self.create_revision or not self.key):
            self._key_cleared = True  # (not when a failed start never learned it: unknown)
        self._lose("resigned", end=False)

    async def _key_gone(self) -> bool:
        """Re-read our key after a delete that may or may not have gone through: True when
        etcd confirms it is gone (or no longer ours), False when it still stands. Retried
        on transient faults for about one command timeout, then the fault is raised."""

        async def gone() -> bool:
            kv = await self.election._read_key(self.key, self._read_timeout(), self._patience())
            return kv is None or kv.create_revision != self.create_revision

        return await _retried(self.election.conn, gone)

    async def _delete_key(self) -> None:
        """The guarded delete (:meth:`_delete_guarded`), retried on transient faults for
        about one command timeout, each attempt waiting up to that long for a channel
        that is reconnecting (a link that just healed)."""

        async def delete() -> None:
            await self._delete_guarded(self._patience())

        await _retried(self.election.conn, delete)

    def _patience(self) -> float:
        """How long resign's calls wait for a reconnecting channel: one command timeout."""
        return self.election.conn.config.command_timeout

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        interval = _interval(self.ttl)
        # A renewal stuck on a silent endpoint must give up well within the TTL, so the
        # next one (on the next endpoint) still comes before the deadline.
        # (interval + timeout + first retry delay < TTL for any TTL etcd grants.)
        timeout = self._read_timeout()
        failures = 0
        while not self.lost.is_set():
            if self.paused:
                await asyncio.sleep(0.2)
                continue
            sent = loop.time()
            try:
                ttl = await self._stream.keepalive(self.lease, timeout)
            except RegistryError as exc:
                failures += 1
                log.info("keep-alive of election %s failed: %s", self.election.name, exc)
                await asyncio.sleep(min(interval, 0.25 * 2 ** min(failures - 1, 4)))
                continue
            if ttl <= 0:
                self._lose("the lease ended")
                return
            if self._past_deadline():  # acknowledged too late: the rule has spoken
                self._expired()
            if self.lost.is_set():
                return
            self._extend(sent, ttl)
            failures = 0
            await asyncio.sleep(interval)

    async def _confirm_own(self) -> None:
        """Once per interval, read our key (and an external lease's TTL): see the module
        docstring's confirmation rule."""
        interval, timeout = _interval(self.ttl), self._read_timeout()
        failures = 0
        await asyncio.sleep(self._next_check(interval, timeout))
        while not self.lost.is_set():
            try:
                if not await self._check_key(timeout):
                    return
            except RegistryError as exc:
                failures += 1
                log.info("confirming own key of %s: %s", self.election.name, exc)
                await asyncio.sleep(min(interval, _CONFIRM_RETRY * 2 ** min(failures - 1, 6)))
                continue
            failures = 0
            await asyncio.sleep(self._next_check(interval, timeout))

    async def _check_key(self, timeout: float) -> bool:
        """One confirmation: read our key (and an external lease's TTL). False when the
        candidacy is lost; transient faults are raised."""
        sent = asyncio.get_running_loop().time()
        kv = await self.election._read_key(self.key, timeout)
        if kv is None or kv.create_revision != self.create_revision:
            self._lose("the candidate key was deleted")
            return False
        if kv.lease != self.lease:
            self._lose("the candidate key was overwritten without our lease")
            return False
        if self.external_lease:
            try:
                await self._lease_deadline(timeout)
            except LeadershipLost:
                return False
        if self.lost.is_set():
            return False
        self._confirm(sent)
        return True

    async def _watch_own(self) -> None:
        election = self.election
        while not self.lost.is_set():
            try:
                read = await election._range(key=self.key)
                kvs = read.kvs
                if not kvs or kvs[0].create_revision != self.create_revision:
                    self._lose("the candidate key was deleted")
                    return
                # from the read's revision (the key's own may be compacted away by now)
                async for response in election.conn.watch(self.key, int(read.header.revision) + 1):
                    for event in response.events:
                        if event.kv.key != self.key:
                            continue
                        if event.type == _DELETE:
                            self._lose("the candidate key was deleted")
                            return
                        if event.kv.lease != self.lease:  # overwritten off our lease
                            self._lose("the candidate key was overwritten without our lease")
                            return
            except RegistryError as exc:
                log.info("watching own key of %s: %s", election.name, exc)
                await asyncio.sleep(1.0)


#: What ``campaign()`` yields: the candidacy, once it leads.
Leadership = Candidacy


def _compare_create(key: bytes, create_revision: int) -> Any:
    return rpc.Compare(
        key=key,
        target=rpc.Compare.CREATE,
        result=rpc.Compare.EQUAL,
        create_revision=create_revision,
    )


def _compare_mod(key: bytes, mod_revision: int) -> Any:
    return rpc.Compare(
        key=key, target=rpc.Compare.MOD, result=rpc.Compare.EQUAL, mod_revision=mod_revision
    )


class Election:
    """One election (or lock) named ``name``; see the module docstring."""

    def __init__(self, conn: EtcdConnection, name: str) -> None:
        if not name or name.endswith("/"):
            raise RegistryError(f"election name {name!r} must be non-empty and not end in '/'")
        self.conn = conn
        self.name = name
        self.prefix = name.encode() + b"/"

    def key_for(self, lease: int) -> bytes:
        return self.prefix + format(lease, "x").encode()

    # -- raw operations ---------------------------------------------------------
    async def _txn_raw(
        self, compare: list[Any], success: list[Any], failure: list[Any], patience: float = 0.0
    ) -> Any:
        return await self.conn.txn(compare, success, failure, patience=patience)

    async def _range(self, **kwargs: Any) -> Any:
        return await self.conn.range(rpc.RangeRequest(**kwargs))

    async def _read_key(self, key: bytes, timeout: float, patience: float = 0.0) -> Any | None:
        """A linearizable read of one key with its own timeout (retried on the next
        endpoint); the key-value or None."""
        response = await self.conn.range(rpc.RangeRequest(key=key), timeout, patience)
        return response.kvs[0] if response.kvs else None

    async def _lease_ttl(self, lease: int, timeout: float) -> tuple[int, int]:
        """(remaining TTL, granted TTL) of ``lease``; remaining <= 0: it is gone."""
        remaining, granted, _ = await self.conn.time_to_live(lease, timeout=timeout)
        return remaining, granted

    async def candidates(self) -> list[Any]:
        """The raw key-values under ``NAME/`` in queue order (the leader first)."""
        response = await self._range(
            key=self.prefix,
            range_end=utils.prefix_range_end(self.prefix),
            sort_order=rpc.RangeRequest.ASCEND,
            sort_target=rpc.RangeRequest.CREATE,
        )
        return list(response.kvs)

    async def leader(self) -> Any | None:
        kvs = await self.candidates()
        return kvs[0] if kvs else None

    # -- campaigning --------------------------------------------------------------
    async def _enter(self, value: bytes, lease: int) -> tuple[bytes, int, int]:
        """Put our key, keeping its CreateRevision (its place) if it stands already (a put
        whose reply was lost, or an older candidacy's key on this lease: adopted, as
        clientv3's Campaign does); returns (key, CreateRevision, ModRevision).

        The put is made even when the key already holds our value, so its ModRevision
        moves: a delete an older candidacy sent guarded on the ModRevision it knew (see
        :meth:`Candidacy._delete_guarded`) can no longer take the adopted key away."""
        key = self.key_for(lease)
        put = rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value, lease=lease))
        response = await self._txn_raw(
            [_compare_create(key, 0)],
            [put],
            [put, rpc.RequestOp(request_range=rpc.RangeRequest(key=key))],
        )
        revision = int(response.header.revision)
        if response.succeeded:
            return key, revision, revision
        kv = response.responses[1].response_range.kvs[0]
        return key, int(kv.create_revision), revision

    async def _wait_deletes(self, create_revision: int) -> None:
        """Wait until no key under the prefix was created before ``create_revision``.

        A broken watch, a refused or failed-over endpoint, a compacted revision: each is
        retried (with backoff) from a fresh read, as clientv3's ``waitDeletes`` does; only
        other errors end the wait."""
        backoff = Backoff(initial=0.2, maximum=2.0)
        while True:
            try:
                response = await self._range(
                    key=self.prefix,
                    range_end=utils.prefix_range_end(self.prefix),
                    max_create_revision=create_revision - 1,
                    sort_order=rpc.RangeRequest.DESCEND,
                    sort_target=rpc.RangeRequest.CREATE,
                    limit=1,
                )
                if not response.kvs:
                    return
                await self._wait_delete(response.kvs[0].key, int(response.header.revision))
                backoff.succeeded()
            except _RETRYABLE as exc:
                log.info("waiting in %s: %s; retrying", self.name, exc)
                await asyncio.sleep(backoff.failed())

    async def _wait_delete(self, key: bytes, revision: int) -> None:
        async for response in self.conn.watch(key, revision + 1):
            for event in response.events:
                if event.type == _DELETE and event.kv.key == key:
                    return

    def candidacy(self, value: str | bytes, ttl: int = 60, lease: int = 0) -> Candidacy:
        """A candidate not yet started: ``await c.start()``, then ``await c.wait_elected()``.

        ``lease``: stand on this lease (kept alive by its owner) instead of a new one."""
        data = value.encode() if isinstance(value, str) else value
        return Candidacy(self, data, ttl, lease)

    @contextlib.asynccontextmanager
    async def campaign(self, value: str | bytes, ttl: int = 60) -> AsyncIterator[Candidacy]:
        """Wait until elected; keep the lease alive while leading; resign on every way out."""
        candidacy = self.candidacy(value, ttl)
        await candidacy.start()
        try:
            await candidacy.wait_elected()
            yield candidacy
        finally:
            await candidacy.resign()
