"""Opt-in probes: is each registered ``Address`` really answering?

A lease kept alive by a stuck heartbeat thread keeps a dead instance registered; a probe of
its address says so. ``http://`` and ``https://`` addresses get a minimal HTTP/1.1 ``GET``
(of the address's path, or ``probe_path``); ``host:port`` (or ``tcp://``, ``grpc://``…) a TCP
connect. Pure asyncio (``asyncio.open_connection``): nothing blocks the event loop, so the
UI and the watch go on while probes wait. At most ``concurrency`` run at once, each instance
at most once per ``interval``, each within ``timeout``.

HTTPS certificates are not verified: a probe asks "does it answer?", not "is it who it says".
Any HTTP status under 500 counts as up (a base URL often answers 404); 5xx is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from .etcd.aio import within

DEFAULT_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    """What the dashboard probes: ``enabled`` at start, the HTTP ``path``, how many at once."""

    enabled: bool = False
    path: str | None = None
    concurrency: int = DEFAULT_CONCURRENCY


DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 2.0
#: Longest status line read from an HTTP answer.
STATUS_LINE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    scheme: str  # "http", "https" or "tcp"
    host: str
    port: int
    path: str = "/"

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = {"http": 80, "https": 443}.get(self.scheme)
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool | None  # None: nothing to probe
    detail: str  # "HTTP 200", "connected", "refused", "timeout", "no address", "bad port", ...
    latency: float | None  # seconds, when it answered
    at: float  # wall-clock time (time.time()) of the probe
    target: str = ""

    @property
    def mark(self) -> str:
        """``✓ 12 ms``, ``✗ refused``, ``✗ timeout``, ``? no address``, ``? bad port``."""
        if self.ok is None:
            return f"? {self.detail}"
        if self.ok:
            return f"✓ {format_latency(self.latency or 0.0)}"
        return f"✗ {self.detail}"

    @property
    def level(self) -> str:
        return "unknown" if self.ok is None else "up" if self.ok else "down"


def format_latency(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:.1f} ms" if ms < 1 else f"{ms:.0f} ms"


@dataclass(frozen=True, slots=True)
class NotProbed:
    """An address that cannot be probed, and why (``no address``, ``bad port``, …)."""

    reason: str


#: Schemes that name no network address: a probe cannot reach them.
LOCAL_SCHEMES = frozenset({"file", "unix", "unix-abstract", "vsock", "npipe", "pipe", "data"})
_NETWORK_SCHEMES = frozenset({"http", "https", "tcp"})
#: Characters left as they are in a request line's path and query (RFC 3986 pchar, '/',
#: '?', and '%' so that an address already percent-encoded is not encoded twice).
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = _PATH_SAFE + "?"


def parse_target(address: str | None, probe_path: str | None = None) -> ProbeTarget | NotProbed:
    """What to probe for ``address``, or why it cannot be probed."""
    if not address or not isinstance(address, str) or not address.strip():
        return NotProbed("no address")
    text = address.strip()
    if "://" not in text:
        text = "tcp://" + text
    try:
        parts = urlsplit(text)
    except ValueError:
        return NotProbed("bad address")  # e.g. an unclosed '[' of an IPv6 address
    scheme = parts.scheme.lower()
    if scheme in LOCAL_SCHEMES or (not parts.hostname and scheme not in _NETWORK_SCHEMES):
        return NotProbed(f"unsupported scheme {scheme[:16] or '?'}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        return NotProbed("bad port")  # out of 0-65535, or not a number
    if not host:
        return NotProbed("no host")
    if port == 0:
        return NotProbed("bad port")
    if scheme in ("http", "https"):
        port = port or (443 if scheme == "https" else 80)
        path = probe_path or parts.path or "/"
        if not path.startswith("/"):
            path = "/" + path
        path = quote(path, safe=_PATH_SAFE)
        if not probe_path and parts.query:
            path += "?" + quote(parts.query, safe=_QUERY_SAFE)
        return ProbeTarget(scheme, host, port, path)
    if port is None:
        return NotProbed("no port")  # a bare host name, or another scheme without a port
    return ProbeTarget("tcp", host, port)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "TLS error"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, OSError):
        if exc.errno is not None and exc.strerror:
            return exc.strerror.lower()[:32]
        return "unreachable"
    return type(exc).__name__


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


async def _exchange(target: ProbeTarget) -> str:
    context = _insecure_context() if target.scheme == "https" else None
    reader, writer = await asyncio.open_connection(
        target.host, target.port, ssl=context, limit=STATUS_LINE_LIMIT * 4
    )
    try:
        if target.scheme == "tcp":
            return "connected"
        request = (
            f"GET {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"
            "User-Agent: etcd-registry-tui-probe\r\nAccept: */*\r\nConnection: close\r\n\r\n"
        )
        writer.write(request.encode("ascii", "replace"))
        await writer.drain()
        line = await reader.readline()
        fields = line.decode("latin-1").split()
        if len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
            raise _BadAnswer("no HTTP answer" if not line else "not HTTP")
        return f"HTTP {fields[1]}"
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await within(writer.wait_closed(), 0.5)


class _BadAnswer(Exception):
    pass


async def probe(
    target: ProbeTarget | NotProbed | None,
    timeout: float = DEFAULT_TIMEOUT,
    clock: Callable[[], float] = time.time,
) -> ProbeResult:
    """One probe of ``target``, within ``timeout`` (connecting and answering together)."""
    at = clock()
    if target is None:
        return ProbeResult(None, "no address", None, at)
    if isinstance(target, NotProbed):
        return ProbeResult(None, target.reason, None, at)
    shown = f"{target.scheme}://{target.host_header}" + (
        target.path if target.scheme != "tcp" else ""
    )
    start = time.perf_counter()
    try:
        detail = await within(_exchange(target), timeout)
    except _BadAnswer as exc:
        return ProbeResult(False, str(exc), None, at, shown)
    except (OSError, TimeoutError, EOFError, ValueError, UnicodeError) as exc:
        return ProbeResult(False, _reason(exc), None, at, shown)
    latency = time.perf_counter() - start
    if detail.startswith("HTTP 5"):
        return ProbeResult(False, detail, latency, at, shown)
    return ProbeResult(True, detail, latency, at, shown)


class Prober:
    """Probes every instance given to :meth:`set_targets`, on its own schedule.

    ``run()`` is a long-lived task (run it under a Supervisor); ``on_result(key, result)``
    is called on the event loop after each probe. Instances that leave are forgotten."""

    def __init__(
        self,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        interval: float = DEFAULT_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        probe_path: str | None = None,
        on_result: Callable[[bytes, ProbeResult], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("probe concurrency must be at least 1")
        self.concurrency = concurrency
        self.interval = interval
        self.timeout = timeout
        self.probe_path = probe_path
        self.on_result = on_result
        self.results: dict[bytes, ProbeResult] = {}
        self._targets: dict[bytes, ProbeTarget | NotProbed] = {}
        self._addresses: dict[bytes, str | None] = {}
        self._due: dict[bytes, float] = {}  # monotonic time of each key's next probe
        self._running: set[bytes] = set()
        self._wake = asyncio.Event()
        #: Probes in flight now, and the most at once (for tests and benchmarks).
        self.in_flight = 0
        self.peak_in_flight = 0

    def set_targets(self, addresses: Mapping[bytes, str | None]) -> None:
        """The instances to probe now (key -> address); others are forgotten."""
        for key in [k for k in self._addresses if k not in addresses]:
            self.remove(key)
        for key, address in addresses.items():
            self.update(key, address)

    def update(self, key: bytes, address: str | None) -> None:
        """Probe ``key`` at ``address`` (at once when new or moved to another address)."""
        if key in self._addresses and self._addresses[key] == address:
            return
        self._addresses[key] = address
        self._targets[key] = parse_target(address, self.probe_path)
        self._due[key] = time.monotonic()
        self._wake.set()

    def remove(self, key: bytes) -> None:
        self._addresses.pop(key, None)
        self._targets.pop(key, None)
        self._due.pop(key, None)
        self.results.pop(key, None)

    async def run(self) -> None:
        semaphore = asyncio.Semaphore(self.concurrency)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self._wake.clear()
                now = time.monotonic()
                due = [k for k, t in self._due.items() if t <= now and k not in self._running]
                for key in due:
                    self._due[key] = now + self.interval
                    self._running.add(key)
                    task = asyncio.create_task(self._one(key, semaphore))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                waits = [t for k, t in self._due.items() if k not in self._running]
                delay = max(0.05, min(waits) - time.monotonic()) if waits else self.interval
                with contextlib.suppress(TimeoutError):
                    await within(self._wake.wait(), delay)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _one(self, key: bytes, semaphore: asyncio.Semaphore) -> None:
        try:
            async with semaphore:
                if key not in self._targets:
                    return
                self.in_flight += 1
                self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
                try:
                    result = await probe(self._targets[key], self.timeout)
                finally:
                    self.in_flight -= 1
            if key not in self._targets:
                return  # gone while probed
            self.results[key] = result
            self._due[key] = time.monotonic() + self.interval
            if self.on_result is not None:
                self.on_result(key, result)
        finally:
            self._running.discard(key)
            self._wake.set()
