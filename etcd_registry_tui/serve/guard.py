"""Who may open a tab of ``serve``: the token, the Host and Origin checks, sizes and limits.

Everything here is decided from the request alone, before any dashboard process starts.
A browser sends its cookies (and a proxy's login) with a cross-site websocket handshake, so
what protects a tab is a random token made at each launch, known only to whoever was given
the start-up URL, plus the check that the handshake comes from the served origin and names
a served host (against DNS rebinding).
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

#: Terminal sizes a tab may ask for; larger is clamped (a 20000x20000 tab took 2.4 GB).
MIN_COLUMNS, MAX_COLUMNS = 20, 500
MIN_ROWS, MAX_ROWS = 5, 200
DEFAULT_SIZE = (80, 24)

#: Headers on every answer: not framed (clickjacking), not sniffed, no token in a Referer.
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": "frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")


def new_token() -> str:
    return secrets.token_urlsafe(24)


def _origin_of(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of ``netloc`` under ``scheme``, lower-cased; None if malformed."""
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.password is not None:
        return None
    if parts.path or parts.query or parts.fragment:
        return None
    return scheme, host.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Gate:
    """The token and the served origins; ``refusal`` says why a request may not go on."""

    token: str
    #: (scheme, host, port) a browser may load the page from.
    origins: frozenset[tuple[str, str, int]]

    @classmethod
    def for_serving(cls, token: str, public_url: str, host: str, port: int) -> Gate:
        """The public URL's origin; bound to loopback, also each loopback name at ``port``
        (a proxy in front may name the bound address in its ``Host``)."""
        scheme = urlsplit(public_url).scheme
        origins = set()
        public = _origin_of(scheme, urlsplit(public_url).netloc)
        if public is not None:
            origins.add(public)
        bound = host.strip("[]").lower()
        names: Iterable[str] = _LOOPBACK_NAMES if is_loopback(bound) else (bound,)
        for name in names:
            origins.add(("http", name, port))
        return cls(token, frozenset(origins))

    def token_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def host_ok(self, host_header: str | None) -> bool:
        """``Host`` names a served host and port (whatever the scheme in front)."""
        if not host_header:
            return False
        served = {(h, p) for _, h, p in self.origins}
        for scheme in {s for s, _, _ in self.origins}:
            parsed = _origin_of(scheme, host_header)
            if parsed is not None and parsed[1:] in served:
                return True
        return False

    def origin_ok(self, origin_header: str | None) -> bool:
        """``Origin`` is exactly a served origin (a browser always sends one with a
        websocket handshake; none, ``null`` or another site's is refused)."""
        if not origin_header:
            return False
        try:
            parts = urlsplit(origin_header)
        except ValueError:
            return False
        if parts.scheme not in ("http", "https"):
            return False
        parsed = _origin_of(parts.scheme, parts.netloc)
        return parsed is not None and not parts.path and parsed in self.origins

    def refusal(
        self, host: str | None, token: str | None, origin: str | None, websocket: bool
    ) -> str | None:
        """None if the request may go on, else the one-line reason (for a 403)."""
        if not self.host_ok(host):
            return "this Host is not served here"
        if websocket and not self.origin_ok(origin):
            return "websocket from another origin"
        if not self.token_ok(token):
            return "a valid token is needed: open the URL serve printed at start"
        return None


def parse_size(width: object, height: object) -> tuple[int, int] | None:
    """A terminal size from untrusted values, clamped; None unless both are integers."""
    values = []
    for value in (width, height):
        if isinstance(value, bool):
            return None
        if isinstance(value, str):
            text = value.strip()
            if not text or len(text) > 12 or not text.lstrip("+-").isdigit():
                return None
            value = int(text)
        if not isinstance(value, int):
            return None
        values.append(value)
    columns = min(max(values[0], MIN_COLUMNS), MAX_COLUMNS)
    rows = min(max(values[1], MIN_ROWS), MAX_ROWS)
    return columns, rows


@dataclass(slots=True)
class TabLimits:
    """At most ``max_tabs`` tabs, at most ``per_client`` from one client address.

    ``take`` and ``give_back`` run on the event loop without awaiting in between, so a
    flood of handshakes cannot race past the count.
    """

    max_tabs: int
    per_client: int
    _by_client: dict[str, int] = field(default_factory=dict)

    @property
    def open(self) -> int:
        return sum(self._by_client.values())

    def take(self, client: str) -> str | None:
        """None (and the tab is counted) if it may open, else why not."""
        if self.open >= self.max_tabs:
            return f"{self.max_tabs} tabs are open already (--max-tabs)"
        if self._by_client.get(client, 0) >= self.per_client:
            return f"{self.per_client} tabs from this address already (--max-tabs-per-client)"
        self._by_client[client] = self._by_client.get(client, 0) + 1
        return None

    def give_back(self, client: str) -> None:
        left = self._by_client.get(client, 0) - 1
        if left > 0:
            self._by_client[client] = left
        else:
            self._by_client.pop(client, None)
