"""What the demo fleet's instances answer on their addresses, so that probes (``P``) see a
fleet that is mostly healthy, with some failing and some gone.

Each instance gets its own loopback port (the OS picks it): a *healthy* one answers every
HTTP request ``200``, a *failing* one ``503``, and a *refusing* one holds its port bound but
not listening, so a connect is refused. One asyncio server (or one bound socket) per live
instance, closed when the instance crashes or the fleet stops: bounded by the fleet's size.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import socket

from ..registry.etcd.aio import within
from ..registry.etcd.errors import RegistryError

HOST = "127.0.0.1"
#: A request's head is read at most this long and this big: a demo server never waits long.
REQUEST_TIMEOUT = 2.0
REQUEST_LIMIT = 8192


class Health(enum.Enum):
    HEALTHY = "healthy"
    FAILING = "failing"
    REFUSING = "refusing"


def _no_port(why: str) -> RegistryError:
    return RegistryError(
        f"the demo could not open a port for an instance: {why}",
        "raise the open-files limit (ulimit -n), or give fewer --services/--instances",
    )


_STATUS = {Health.HEALTHY: b"200 OK", Health.FAILING: b"503 Service Unavailable"}


class Answers:
    """The loopback ports the fleet's instances answer on, by address."""

    def __init__(self) -> None:
        self._servers: dict[str, asyncio.Server] = {}
        self._held: dict[str, socket.socket] = {}

    def __len__(self) -> int:
        return len(self._servers) + len(self._held)

    def reserve(self) -> str:
        """A new address (``http://127.0.0.1:PORT``) whose port is bound but refuses until
        :meth:`serve` makes it answer: known before the instance that uses it is built."""
        try:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            raise _no_port(exc.strerror or str(exc)) from None
        try:
            sock.bind((HOST, 0))  # bound, never listening: ours, and a connect is refused
        except OSError as exc:
            sock.close()
            raise _no_port(exc.strerror or str(exc)) from None
        address = f"http://{HOST}:{sock.getsockname()[1]}"
        self._held[address] = sock
        return address

    async def open(self, health: Health) -> str:
        """A new address (``http://127.0.0.1:PORT``) that answers as ``health`` says."""
        address = self.reserve()
        await self.serve(address, health)
        return address

    async def serve(self, address: str, health: Health) -> None:
        """Make an address from :meth:`reserve` answer as ``health`` says (a refusing one stays
        bound and refusing)."""
        if health is Health.REFUSING or address not in self._held:
            return
        status = _STATUS[health]

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                with contextlib.suppress(Exception):
                    await within(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
                body = health.value.encode() + b"\n"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: " + str(len(body)).encode() + b"\r\n"
                    b"Connection: close\r\n\r\n" + body
                )
                with contextlib.suppress(Exception):
                    await within(writer.drain(), REQUEST_TIMEOUT)
            finally:
                writer.close()

        sock = self._held.pop(address)
        try:
            server = await asyncio.start_server(answer, sock=sock, limit=REQUEST_LIMIT)
        except OSError as exc:
            sock.close()
            raise _no_port(exc.strerror or str(exc)) from None
        self._servers[address] = server

    def close(self, address: str) -> None:
        """The instance at ``address`` is gone: its port refuses from now on."""
        server = self._servers.pop(address, None)
        if server is not None:
            server.close()
        sock = self._held.pop(address, None)
        if sock is not None:
            sock.close()

    async def close_all(self) -> None:
        servers = list(self._servers.values())
        for address in [*self._servers, *self._held]:
            self.close(address)
        for server in servers:
            with contextlib.suppress(Exception):
                await within(server.wait_closed(), 1.0)
