"""``serve``'s listening socket against a hostile network: connection caps, a deadline for
the request head, and one log line (not thousands) when file handles run out.

Every accepted connection is counted, in total and per source address, before a byte of it
is parsed; one over either cap is closed at once (so 300 silent sockets from one address
cannot take the handles the operator's own request needs). A connection has
``header_timeout`` seconds from its accept (and after each answer, when kept alive) to send
a whole request line and headers: aiohttp's keep-alive timer, started at accept, closes it
otherwise, however slowly it drips bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

DEFAULT_MAX_CONNECTIONS = 256
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 64
DEFAULT_HEADER_TIMEOUT_S = 10.0
#: At most one "out of file handles" line per this many seconds.
EXHAUSTION_LOG_EVERY_S = 30.0

log = logging.getLogger("etcd_registry_tui.serve")


@dataclass(slots=True)
class ConnectionLimits:
    """At most ``total`` open connections, at most ``per_client`` from one address."""

    total: int
    per_client: int
    _by_client: dict[str, int] = field(default_factory=dict)
    _open: int = 0

    @property
    def open(self) -> int:
        return self._open

    def take(self, client: str) -> bool:
        """True (and the connection is counted) if it may stay open."""
        if self._open >= self.total or self._by_client.get(client, 0) >= self.per_client:
            return False
        self._by_client[client] = self._by_client.get(client, 0) + 1
        self._open += 1
        return True

    def give_back(self, client: str) -> None:
        left = self._by_client.get(client, 0) - 1
        if left > 0:
            self._by_client[client] = left
        else:
            self._by_client.pop(client, None)
        self._open = max(self._open - 1, 0)


class GatedProtocol(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the connection caps: an excess
    connection is aborted on accept and never reaches aiohttp."""

    def __init__(self, inner: asyncio.Protocol, limits: ConnectionLimits) -> None:
        self.inner = inner
        self.limits = limits
        self.client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.limits.take(client):
            transport.abort()  # at once, before any byte is read
            return
        self.client = client
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is None:
            return
        self.limits.give_back(self.client)
        self.client = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.client is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.client is not None else None

    def pause_writing(self) -> None:
        if self.client is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.client is not None:
            self.inner.resume_writing()


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

    def __init__(self, every: float = EXHAUSTION_LOG_EVERY_S) -> None:
        self.every = every
        self._last = -float("inf")
        self._skipped = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if not _out_of_handles(context.get("exception")):
            loop.default_exception_handler(context)
            return
        now = time.monotonic()
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


def allow_open_files(wanted: int) -> None:
    """Raise the soft limit of open files toward ``wanted`` (within the hard one)."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))
