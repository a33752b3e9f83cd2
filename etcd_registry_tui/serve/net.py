"""``serve``'s listening socket against a hostile network: connection caps, a deadline for
the request head, and one log line (not thousands) when file handles run out.

Every accepted connection is counted, in total and per source address, before a byte of it
is parsed; one over the address's cap is closed at once (so 300 silent sockets from one
address cannot take the handles the operator's own request needs), and when the total is
full a newcomer takes the place of an idle one (no request head yet, or kept alive between
requests) of the address holding the most idle ones; one mid-request or mid-answer (the
operator's download) is taken only when no connection at all is idle. A connection has
``header_timeout`` seconds from its accept (and after each answer, when kept alive) to send
a whole request line and headers: aiohttp's keep-alive timer, started at accept, closes it
otherwise, however slowly it drips bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 64
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: At most one "out of file handles" line per this many seconds.
EXHAUSTION_LOG_EVERY_S = 30.0

log = logging.getLogger("etcd_registry_tui.serve.server")


class Connection(Protocol):
    """What the caps need of a connection: its address, whether it may be taken (a tab's
    websocket may not), whether it is idle (taken first), and a way to drop it."""

    client: str
    kept: bool

    @property
    def idle(self) -> bool: ...

    def drop(self) -> None: ...


@dataclass(slots=True)
class ConnectionLimits:
    """At most ``total`` open connections, at most ``per_client`` from one address.

    A newcomer is never refused while a connection that is not a tab can make room: at its
    address's cap it takes the place of that address's oldest idle connection (its oldest
    busy one if none is idle); when ``total`` is full, of the oldest idle one of the address
    holding the most idle ones (the newcomer's own included). A connection mid-request or
    mid-answer is taken only when none at all is idle: a flood of silent sockets, from one
    address or many, churns among its own connections and cannot cut the operator's
    downloads or keep the operator out; a tab is never taken.
    """

    total: int
    per_client: int
    _by_client: dict[str, list[Connection]] = field(default_factory=dict)
    _open: int = 0

    @property
    def open(self) -> int:
        return self._open

    def admit(self, conn: Connection) -> bool:
        """True (and ``conn`` is counted) if it may stay open; may drop another."""
        mine = self._by_client.get(conn.client, [])
        if len(mine) >= self.per_client:
            victim = _oldest(mine, idle=True) or _oldest(mine, idle=False)
            if victim is None:
                return False
            self.release(victim)
            victim.drop()
        if self._open >= self.total:
            victim = self._victim()
            if victim is None:
                return False
            self.release(victim)
            victim.drop()
        self._by_client.setdefault(conn.client, []).append(conn)
        self._open += 1
        return True

    def _victim(self) -> Connection | None:
        """The oldest idle connection of the address holding the most idle ones; if none is
        idle, the oldest connection that is not a tab of the address holding the most."""
        best: Connection | None = None
        most = 0
        for conns in self._by_client.values():
            idle = [c for c in conns if not c.kept and c.idle]
            if len(idle) > most:
                best, most = idle[0], len(idle)
        if best is not None:
            return best
        for conns in self._by_client.values():
            if len(conns) > most:
                candidate = _oldest(conns, idle=False)
                if candidate is not None:
                    best, most = candidate, len(conns)
        return best

    def release(self, conn: Connection) -> None:
        """``conn`` closed (again: nothing)."""
        conns = self._by_client.get(conn.client)
        if conns is None or conn not in conns:
            return
        conns.remove(conn)
        if not conns:
            del self._by_client[conn.client]
        self._open -= 1


def _unsent(transport: asyncio.Transport) -> int:
    """Bytes the kernel holds for ``transport``'s socket, not yet taken by the other end
    (Linux's SIOCOUTQ); 0 where that cannot be asked. An answer aiohttp has finished
    writing may still be there (a 500 kB script fits a loopback socket's buffers)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        import fcntl
        import termios

        queued = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")  # = SIOCOUTQ
        return int.from_bytes(queued, sys.byteorder, signed=True)
    except (ImportError, AttributeError, OSError, ValueError):
        return 0


def _oldest(conns: list[Connection], idle: bool) -> Connection | None:
    """The oldest of ``conns`` that is not a tab (and, if ``idle``, is idle)."""
    return next((c for c in conns if not c.kept and (c.idle or not idle)), None)


class GatedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the connection caps: an excess
    connection is aborted on accept and never reaches aiohttp."""

    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits) -> None:
        self.inner = inner
        self.limits = limits
        self.client = "?"
        self.kept = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.limits.admit(self):
            transport.abort()  # at once, before any byte is read
            return
        self.transport = transport
        self.inner.connection_made(transport)

    @property
    def idle(self) -> bool:
        """Waiting for a request head, with nothing left to send: a silent socket, or one
        kept alive between requests; not one mid-request or mid-answer.

        Reads aiohttp's private ``RequestHandler._waiter`` (set while it waits for the next
        request) and ``_messages`` (heads received, not yet handled); see
        tests/unit/test_private_apis.py.
        """
        transport = self.transport
        if transport is None:
            return True
        if transport.get_write_buffer_size() > 0 or _unsent(transport) > 0:
            return False  # an answer still on its way (in serve's buffer or the kernel's)
        waiting = getattr(self.inner, "_waiter", None) is not None
        return waiting and not getattr(self.inner, "_messages", None)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # connection_lost follows, on the loop

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        self.limits.release(self)
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.transport is not None else None

    def pause_writing(self) -> None:
        if self.transport is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.inner.resume_writing()


def keep(transport: asyncio.BaseTransport | None) -> None:
    """The connection of ``transport`` is a tab's: never dropped for a newcomer."""
    protocol = transport.get_protocol() if transport is not None else None
    if isinstance(protocol, GatedProtocol):
        protocol.kept = True


class GatedSite(web.BaseSite):
    """A TCP site whose connections go through :class:`GatedProtocol`."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits
    ) -> None:
        super().__init__(runner)
        self._host, self._port, self.limits = host, port, limits

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GatedProtocol(server(), self.limits),
            self._host.strip("[]"),
            self._port,
            reuse_address=True,
        )


def _out_of_handles(error: BaseException | None) -> bool:
    return isinstance(error, OSError) and error.errno in (errno.EMFILE, errno.ENFILE)


class ExhaustionLog:
    """The event loop's error handler: "out of file handles" (which asyncio reports on
    every accept it retries) at most once per ``every`` seconds, with how many were left
    out; anything else as asyncio would."""

    def __init__(
        self, every: float = EXHAUSTION_LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.every, self.clock = every, clock
        self._last = -float("inf")
        self._skipped = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not _out_of_handles(context.get("exception")):
            loop.default_exception_handler(context)
            return
        now = self.clock()
        if now - self._last < self.every:
            self._skipped += 1
            return
        skipped, self._skipped, self._last = self._skipped, 0, now
        more = f" ({skipped} more since the last notice)" if skipped else ""
        log.warning(
            "out of file handles: new connections wait until some close%s;"
            " see --max-connections and ulimit -n",
            more,
        )


def handles_reserved(max_tabs: int) -> int:
    """File handles kept back from connections: serve's own, and each tab's socket and
    pipes."""
    return 64 + 8 * max_tabs


def fit_connections(wanted: int, reserved: int) -> int:
    """``wanted`` connections, or fewer if the open-files limit (raised toward what is
    needed, within the hard one) cannot hold them besides ``reserved`` handles: the
    handles never run out, and an excess connection is closed, never left in the
    listen queue."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        needed = wanted + reserved
        if soft != resource.RLIM_INFINITY and soft < needed:
            top = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
            soft = top
        if soft != resource.RLIM_INFINITY:
            return max(min(wanted, soft - reserved), 1)
    return wanted
