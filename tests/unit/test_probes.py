"""Probes of instance addresses, against loopback servers these tests start."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from support.helpers import eventually

from etcd_registry_tui.registry.probes import (
    NotProbed,
    Prober,
    ProbeTarget,
    parse_target,
    probe,
)


@contextlib.asynccontextmanager
async def http_server(status: int = 200, delay: float = 0.0) -> AsyncIterator[str]:
    """A tiny HTTP server on 127.0.0.1; yields its base URL. Records request lines."""
    requests: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        requests.append(line.decode().strip())
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        await asyncio.sleep(delay)
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http_server.requests = requests  # type: ignore[attr-defined]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.contextmanager
def closed_port() -> Iterator[int]:
    """A port nothing listens on (bound, never listening, so no one else takes it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers (a hung process behind its address)."""
    held: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):  # read, never answer, until the client leaves
                pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 1)


@pytest.mark.parametrize(
    ("address", "path", "expected"),
    [
        ("http://localhost:5000", None, ProbeTarget("http", "localhost", 5000, "/")),
        ("http://h:1/api?x=1", None, ProbeTarget("http", "h", 1, "/api?x=1")),
        ("https://h", "/health", ProbeTarget("https", "h", 443, "/health")),
        ("10.0.0.1:8080", "/health", ProbeTarget("tcp", "10.0.0.1", 8080)),
        ("grpc://[::1]:9000", None, ProbeTarget("tcp", "::1", 9000)),
        ("http://h/a b", None, ProbeTarget("http", "h", 80, "/a%20b")),
        ("http://h/caf\u00e9?q=a b", None, ProbeTarget("http", "h", 80, "/caf%C3%A9?q=a%20b")),
        ("http://h/already%20ok", None, ProbeTarget("http", "h", 80, "/already%20ok")),
        ("http://h", "/my health", ProbeTarget("http", "h", 80, "/my%20health")),
        ("just-a-name", None, NotProbed("no port")),
        ("", None, NotProbed("no address")),
        (None, None, NotProbed("no address")),
        ("http://h:99999", None, NotProbed("bad port")),
        ("http://[::1]:99999", None, NotProbed("bad port")),
        ("http://h:abc", None, NotProbed("bad port")),
        ("file:///etc/passwd", None, NotProbed("unsupported scheme file")),
        ("unix:///run/app.sock", None, NotProbed("unsupported scheme unix")),
        ("http://[::1", None, NotProbed("bad address")),
        ("http:///x", None, NotProbed("no host")),
    ],
)
def test_what_an_address_is_probed_as(
    address: str | None, path: str | None, expected: ProbeTarget | NotProbed
) -> None:
    assert parse_target(address, path) == expected


@pytest.mark.parametrize(
    ("address", "mark"),
    [
        ("file:///etc/passwd", "? unsupported scheme file"),
        ("http://[::1]:99999", "? bad port"),
        ("unix:///run/app.sock", "? unsupported scheme unix"),
        ("host-without-port", "? no port"),
    ],
)
async def test_an_address_that_cannot_be_probed_says_why(address: str, mark: str) -> None:
    result = await probe(parse_target(address))
    assert result.ok is None and result.mark == mark


async def test_a_path_with_spaces_is_percent_encoded_in_the_request_line() -> None:
    async with http_server() as url:
        result = await probe(parse_target(url + "/a b/c\u00e9?x=1 2"))
        assert result.ok is True, result
        line = http_server.requests[-1]  # type: ignore[attr-defined]
        assert line == "GET /a%20b/c%C3%A9?x=1%202 HTTP/1.1", line


async def test_http_up_with_latency_and_probe_path() -> None:
    async with http_server() as url:
        result = await probe(parse_target(url, "/health"))
        assert result.ok is True and result.detail == "HTTP 200"
        assert result.mark.startswith("✓ ") and result.mark.endswith(" ms")
        assert http_server.requests[-1] == "GET /health HTTP/1.1"  # type: ignore[attr-defined]
    async with http_server(status=503) as url:
        result = await probe(parse_target(url))
        assert result.ok is False and result.mark == "✗ HTTP 503"


async def test_closed_port_is_refused_for_http_and_tcp() -> None:
    with closed_port() as port:
        for address in (f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"):
            result = await probe(parse_target(address))
            assert result.mark == "✗ refused", address


async def test_a_port_that_never_answers_times_out() -> None:
    async with silent_server() as port:
        http = await probe(parse_target(f"http://127.0.0.1:{port}"), timeout=0.5)
        assert http.mark == "✗ timeout"
        tcp = await probe(parse_target(f"127.0.0.1:{port}"), timeout=0.5)
        assert tcp.ok is True and tcp.detail == "connected"  # TCP only asks for a connect


async def test_no_address() -> None:
    assert (await probe(parse_target(None))).mark == "? no address"


async def test_prober_bounds_concurrency_and_never_blocks_the_loop() -> None:
    """40 instances behind a silent server, 8 at a time: the loop keeps ticking meanwhile."""
    async with silent_server() as port:
        got: dict[bytes, str] = {}
        prober = Prober(
            concurrency=8,
            interval=60,
            timeout=0.5,
            on_result=lambda k, r: got.__setitem__(k, r.mark),
        )
        prober.set_targets({f"k{i}".encode(): f"http://127.0.0.1:{port}" for i in range(40)})
        task = asyncio.create_task(prober.run())
        ticks = 0
        try:
            while len(got) < 40:
                await asyncio.sleep(0.01)
                ticks += 1
                assert prober.in_flight <= 8
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert set(got.values()) == {"✗ timeout"}
        assert prober.peak_in_flight == 8
        # 5 rounds of 0.5 s: the loop ran its 10 ms sleeps all along (not starved).
        assert ticks >= 50


async def test_prober_schedule_each_instance_at_most_once_per_interval() -> None:
    async with http_server() as url:
        counts: dict[bytes, int] = {}

        def seen(key: bytes, _: object) -> None:
            counts[key] = counts.get(key, 0) + 1

        prober = Prober(interval=0.3, on_result=seen)
        prober.set_targets({b"a": url, b"b": None})
        task = asyncio.create_task(prober.run())
        try:
            start = time.monotonic()
            await eventually(lambda: counts.get(b"a", 0) >= 3, timeout=10)
            elapsed = time.monotonic() - start
            assert counts[b"a"] <= elapsed / 0.3 + 1  # never more often than the interval
            assert prober.results[b"b"].mark == "? no address"
            prober.set_targets({b"b": None})  # a is gone: forgotten, no longer probed
            assert b"a" not in prober.results
            before = counts[b"a"]
            await asyncio.sleep(0.7)
            assert counts[b"a"] == before
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
