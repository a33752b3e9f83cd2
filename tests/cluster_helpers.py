"""Helpers for the auth-expiry and fail-over tests: auth on a real etcd, certificates made
with openssl, a TLS cluster, an IPv6 loopback check and a small TCP relay.

Nothing here mocks etcd; the relay only forwards bytes to a real etcd.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from conftest import Etcdctl, EtcdctlError

from etcd_registry_tui.registry.embedded import ClientTls, EmbeddedCluster


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


__all__ = [
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
