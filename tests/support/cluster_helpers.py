"""Helpers for the auth-expiry and fail-over tests: auth on a real etcd, certificates made
with openssl, a TLS cluster, an IPv6 loopback check and a small TCP relay.

Nothing here mocks etcd; the relay only forwards bytes to a real etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from etcd_registry_tui.demo.embedded import (
    HOST,
    ClientTls,
    EmbeddedCluster,
    EtcdMember,
    free_ports,
)
from support.etcdctl import Etcdctl, EtcdctlError


def enable_auth(etcdctl: Etcdctl, password: str = "pw") -> Etcdctl:
    """Add root, turn auth on; return an etcdctl that logs in as root."""
    etcdctl.run("user", "add", f"root:{password}")
    etcdctl.run("auth", "enable")
    authed = Etcdctl(etcdctl.endpoints, binary=etcdctl.binary)
    authed.env = {**etcdctl.env, "ETCDCTL_USER": f"root:{password}"}
    return authed


# --------------------------------------------------------------------------------------------
# TLS


def have_openssl() -> bool:
    return shutil.which("openssl") is not None


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> ClientTls:
    """A CA and one certificate for 127.0.0.1 and ::1 usable by server and client."""
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=ca",
        "-keyout", "ca.key", "-out", "ca.crt", cwd=d,
    )  # fmt: skip
    (d / "san.cnf").write_text(
        "subjectAltName=IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=node",
        "-keyout", "node.key", "-out", "node.csr", cwd=d,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", "node.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", "san.cnf", "-out", "node.crt", cwd=d,
    )  # fmt: skip
    return ClientTls(ca=str(d / "ca.crt"), cert=str(d / "node.crt"), key=str(d / "node.key"))


class TlsEtcdctl(Etcdctl):
    """etcdctl with --cacert/--cert/--key."""

    def __init__(self, endpoints: list[str], tls: ClientTls, binary: str | None = None) -> None:
        super().__init__(endpoints, binary=binary)
        self.tls = tls

    def _cmd(self, args):  # type: ignore[no-untyped-def]
        tls = [f"--cacert={self.tls.ca}", f"--cert={self.tls.cert}", f"--key={self.tls.key}"]
        return [self.binary, "--endpoints", ",".join(self.endpoints), *tls, *args]


def tls_cluster(base: Path, size: int = 3) -> tuple[EmbeddedCluster, ClientTls]:
    certs = base / "certs"
    certs.mkdir()
    tls = make_certs(certs)
    return EmbeddedCluster(size, base_dir=base / "data", client_tls=tls), tls


# --------------------------------------------------------------------------------------------
# IPv6 and a TCP relay


def ipv6_loopback_works() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


@dataclass
class Relay:
    """Forwards every TCP connection made to ``host:port`` to ``target``."""

    host: str
    port: int
    connections: int = 0
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def endpoint(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    async def close(self) -> None:
        """Stop listening and cut every forwarded connection (the endpoint goes dead)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def relay(host: str, target: tuple[str, int]) -> AsyncIterator[Relay]:
    result = Relay(host, 0)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        result.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*target)
        except OSError:
            writer.close()
            return
        result._writers.update((writer, up_writer))
        task = asyncio.current_task()
        assert task is not None
        result._tasks.add(task)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            result._tasks.discard(task)
            result._writers.difference_update((writer, up_writer))

    server = await asyncio.start_server(handle, host, 0)
    result._server = server
    result.port = server.sockets[0].getsockname()[1]
    try:
        yield result
    finally:
        await result.close()


# --------------------------------------------------------------------------------------------
# A cluster whose peer traffic can be cut for one member (a network partition on loopback)

_FROM = re.compile(rb"\r\nX-Server-From: ([0-9a-fA-F]+)\r\n", re.IGNORECASE)


class PartitionableCluster:
    """Members advertise their peer URL on a relay; every peer connection says who opened
    it (etcd's ``X-Server-From`` header), so :meth:`isolate` can cut one member off from
    the others in both directions while its client port keeps serving: a leaderless
    member, as behind a network partition."""

    def __init__(self, base: Path, size: int = 3) -> None:
        ports = free_ports(3 * size)
        self.relay_ports = ports[2 * size :]
        names = [f"m{i + 1}" for i in range(size)]
        initial = ",".join(
            f"{name}=http://{HOST}:{self.relay_ports[i]}" for i, name in enumerate(names)
        )
        self.members = [
            EtcdMember(
                name=name,
                data_dir=base / name,
                client_port=ports[2 * i],
                peer_port=ports[2 * i + 1],
                initial_cluster=initial,
                initial_cluster_token=f"partition-{base.name}",
                # the last flag wins: advertise the relay, listen on the real port
                extra_args=[
                    "--initial-advertise-peer-urls",
                    f"http://{HOST}:{self.relay_ports[i]}",
                ],
            )
            for i, name in enumerate(names)
        ]
        self.ids: dict[str, int] = {}  # member name -> index, by the hex member id
        self.isolated: int | None = None
        self._servers: list[asyncio.Server] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread()
        self._links: set[tuple[str | None, int, asyncio.StreamWriter, asyncio.StreamWriter]] = set()

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    async def start(self, etcdctl_binary: str | None = None) -> None:
        """Relays first (on their own thread and loop, so a test blocking its loop on
        etcdctl cannot stall the peers), then the members, then learn their ids."""
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._listen(), self._loop))
        for member in self.members:
            member.launch()  # from this (long-lived) thread: PDEATHSIG is tied to it
        for member in self.members:
            await asyncio.to_thread(member.wait_healthy, 30)
        ctl = Etcdctl(self.endpoints, binary=etcdctl_binary)
        listed = await asyncio.to_thread(ctl.member_list)
        names = [m.name for m in self.members]
        self.ids = {format(int(m["ID"]), "x"): names.index(str(m["name"])) for m in listed}  # type: ignore[call-overload]

    async def _listen(self) -> None:
        for index, port in enumerate(self.relay_ports):
            server = await asyncio.start_server(
                lambda r, w, index=index: self._handle(r, w, index), HOST, port
            )
            self._servers.append(server)

    def _cut(self, sender: str | None, to: int) -> bool:
        k = self.isolated
        if k is None:
            return False
        return to == k or (sender is not None and self.ids.get(sender) == k)

    async def _handle(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, to: int
    ) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        found = _FROM.search(head)
        sender = found.group(1).decode().lower() if found else None
        if self._cut(sender, to):
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(HOST, self.members[to].peer_port)
        except OSError:
            writer.close()
            return
        link = (sender, to, writer, up_writer)
        self._links.add(link)
        up_writer.write(head)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._links.discard(link)

    def isolate(self, index: int) -> None:
        """Cut member ``index`` off from its peers (new and existing connections)."""
        self._in_loop(self._isolate, index)

    def _isolate(self, index: int) -> None:
        self.isolated = index
        for sender, to, a, b in list(self._links):
            if self._cut(sender, to):
                a.close()
                b.close()

    def heal(self) -> None:
        self._in_loop(setattr, self, "isolated", None)

    def _in_loop(self, fn: Callable[..., object], *args: object) -> None:
        async def run() -> None:
            fn(*args)

        if self._loop is not None and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)
        else:
            fn(*args)

    async def cleanup(self) -> None:
        for member in self.members:
            await asyncio.to_thread(member.stop)
        loop, self._loop = self._loop, None
        if loop is not None:

            async def shut() -> None:
                for server in self._servers:
                    server.close()
                for _, _, a, b in list(self._links):
                    a.close()
                    b.close()

            asyncio.run_coroutine_threadsafe(shut(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            await asyncio.to_thread(self._thread.join, 10)
            loop.close()


__all__ = [
    "PartitionableCluster",
    "EtcdctlError",
    "Relay",
    "TlsEtcdctl",
    "enable_auth",
    "have_openssl",
    "ipv6_loopback_works",
    "make_certs",
    "relay",
    "tls_cluster",
]
