"""Connection settings, named and defaulted the way etcdctl names them."""

from __future__ import annotations

import ipaddress
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .errors import ConfigError, ConnectionOptionError

DEFAULT_ENDPOINT = "127.0.0.1:2379"
DEFAULT_PREFIX = "/services/"
#: The longest timeout accepted: longer is a typo (and overflows gRPC's deadline).
MAX_DURATION = 86_400.0
DURATION_HINT = "give a positive time such as 5s, 500ms or 1m"


def _is_ipv6(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).version == 6
    except ValueError:
        return False


def format_host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets (``[::1]:2379``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_endpoint(text: str) -> tuple[str, int, bool]:
    """``[http[s]://]host[:port]`` -> (host, port, tls)."""
    raw = text.strip()
    tls = False
    lowered = raw.lower()
    if lowered.startswith("https://"):
        tls, raw = True, raw[8:]
    elif lowered.startswith("http://"):
        raw = raw[7:]
    elif "://" in raw:
        raise ConnectionOptionError(f"endpoint {text!r}: only http:// and https:// are understood")
    raw = raw.rstrip("/")
    if not raw:
        raise ConnectionOptionError(f"endpoint {text!r} is empty")
    if raw.startswith("["):  # [::1]:2379
        if "]" not in raw:
            raise ConnectionOptionError(f"endpoint {text!r} has no closing ']'")
        host, _, rest = raw[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif raw.count(":") == 1:
        host, port_text = raw.split(":")
    else:  # no port, or a bare IPv6 address ("::1")
        host, port_text = raw, ""
        if ":" in host and not _is_ipv6(host):
            raise ConnectionOptionError(f"endpoint {text!r} is not host:port (too many ':')")
    if not host:
        raise ConnectionOptionError(f"endpoint {text!r} has no host")
    try:
        port = int(port_text) if port_text else 2379
    except ValueError:
        raise ConnectionOptionError(
            f"endpoint {text!r}: port {port_text!r} is not a number"
        ) from None
    if not 0 < port < 65536:
        raise ConnectionOptionError(f"endpoint {text!r}: port {port} is out of range")
    return host, port, tls


def watched_prefixes(prefixes: Sequence[str]) -> tuple[str, ...]:
    """The prefixes to watch: each given one, except those under another (and repeats),
    in the order given."""
    kept: list[str] = []
    for prefix in prefixes:
        if not any(prefix.startswith(other) for other in prefixes if other != prefix):
            if prefix not in kept:
                kept.append(prefix)
    return tuple(kept)


#: ``--prefix`` may be given at most this often (each is a watch of its own).
MAX_PREFIXES = 64


@dataclass(frozen=True, slots=True)
class ConnectionConfig:
    endpoints: tuple[str, ...] = (DEFAULT_ENDPOINT,)
    user: str | None = None
    password: str | None = None
    dial_timeout: float = 5.0
    command_timeout: float = 5.0
    prefix: str = DEFAULT_PREFIX
    cacert: str | None = None
    cert: str | None = None
    key: str | None = None
    hosts: tuple[tuple[str, int], ...] = field(default=(), compare=False)
    tls: bool = False
    #: MB the dashboard may use for the prefix's keys (None: see registry/budget.py).
    memory_budget_mb: float | None = None
    #: Prefixes watched beside ``prefix`` (``--prefix`` given more than once).
    more_prefixes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.endpoints:
            raise ConnectionOptionError("no endpoint given")
        parsed = [parse_endpoint(e) for e in self.endpoints]
        object.__setattr__(self, "hosts", tuple((h, p) for h, p, _ in parsed))
        tls = any(t for _, _, t in parsed) or bool(self.cacert or self.cert)
        object.__setattr__(self, "tls", tls)
        if (self.user is None) != (self.password is None):
            raise ConnectionOptionError("--user needs a password: use --user name:password")
        if (self.cert is None) != (self.key is None):
            raise ConnectionOptionError("--cert and --key go together")
        for name, value in (("dial", self.dial_timeout), ("command", self.command_timeout)):
            if not (math.isfinite(value) and 0 < value <= MAX_DURATION):
                raise ConfigError(
                    f"{name} timeout {value!r} is not a positive, finite time", DURATION_HINT
                )
        # Any non-empty prefix ending in '/': go-zero's and Kitex's keys have no leading
        # '/' (``kitex/registry-etcd/``, ``user.rpc/``); the trailing '/' keeps
        # ``{prefix}{service}/{id}`` splitting on whole names.
        if len(self.prefixes) > MAX_PREFIXES:
            raise ConfigError(
                f"{len(self.prefixes):,} prefixes given: at most {MAX_PREFIXES}",
                "give the prefixes they share (--prefix / covers every key starting with /)",
            )
        for prefix in self.prefixes:
            try:
                prefix.encode()
            except UnicodeEncodeError:
                raise ConfigError(
                    f"prefix {prefix.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8",
                    "give the prefix as UTF-8 text",
                ) from None
            if not prefix:
                raise ConfigError(
                    "--prefix is empty",
                    "give the registry's key prefix, or --prefix / for every key",
                )
            if not prefix.endswith("/"):
                raise ConfigError(
                    f"prefix {prefix!r} must end with '/'",
                    "e.g. --prefix /services/ or --prefix kitex/registry-etcd/",
                )

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every prefix given, the primary one (``prefix``) first, each once."""
        return tuple(dict.fromkeys((self.prefix, *self.more_prefixes)))

    @property
    def watched_prefixes(self) -> tuple[str, ...]:
        """The prefixes that are watched, one watch each (see :func:`watched_prefixes`)."""
        return watched_prefixes(self.prefixes) if self.more_prefixes else (self.prefix,)

    @property
    def label(self) -> str:
        """The endpoints as a user typed them, for messages."""
        return ",".join(self.targets)

    @property
    def targets(self) -> tuple[str, ...]:
        """One gRPC target per endpoint: ``host:port``, ``[v6]:port`` for IPv6 addresses.

        The connection opens one channel per target, so TLS checks each endpoint's
        certificate against its own host, address families can mix, and host names are
        resolved by gRPC's resolver (off the event loop).
        """
        return tuple(format_host_port(host, port) for host, port in self.hosts)

    @classmethod
    def from_options(
        cls,
        endpoints: str | None = None,
        user: str | None = None,
        password: str | None = None,
        dial_timeout: float | None = None,
        command_timeout: float | None = None,
        prefix: str | None = None,
        cacert: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        env: Mapping[str, str] | None = None,
        more_prefixes: tuple[str, ...] = (),
    ) -> ConnectionConfig:
        """Build from command-line values, falling back to the ``ETCDCTL_*`` variables."""
        env = os.environ if env is None else env
        if endpoints is not None and not endpoints.strip(" ,"):
            # Given but empty (e.g. an unset shell variable): not silently 127.0.0.1:2379.
            raise ConfigError("--endpoints is empty", "give host:port[,host:port…]")
        endpoints = endpoints or env.get("ETCDCTL_ENDPOINTS") or DEFAULT_ENDPOINT
        user = user or env.get("ETCDCTL_USER") or None
        password = password or env.get("ETCDCTL_PASSWORD") or None
        if user is not None and password is None and ":" in user:
            user, password = user.split(":", 1)
        if dial_timeout is None and env.get("ETCDCTL_DIAL_TIMEOUT"):
            dial_timeout = parse_duration(env["ETCDCTL_DIAL_TIMEOUT"], "ETCDCTL_DIAL_TIMEOUT")
        if command_timeout is None and env.get("ETCDCTL_COMMAND_TIMEOUT"):
            command_timeout = parse_duration(
                env["ETCDCTL_COMMAND_TIMEOUT"], "ETCDCTL_COMMAND_TIMEOUT"
            )
        if prefix == "":
            # Given but empty (e.g. an unset shell variable): not silently /services/.
            raise ConfigError(
                "--prefix is empty", "give the registry's key prefix, or --prefix / for every key"
            )
        return cls(
            endpoints=tuple(e for e in endpoints.split(",") if e.strip()),
            user=user,
            password=password,
            dial_timeout=dial_timeout if dial_timeout is not None else 5.0,
            command_timeout=command_timeout if command_timeout is not None else 5.0,
            prefix=prefix or DEFAULT_PREFIX,
            cacert=cacert or env.get("ETCDCTL_CACERT") or None,
            cert=cert or env.get("ETCDCTL_CERT") or None,
            key=key or env.get("ETCDCTL_KEY") or None,
            more_prefixes=more_prefixes,
        )


def parse_duration(text: str, name: str = "duration") -> float:
    """etcdctl-style durations: ``5s``, ``500ms``, ``1m``, or plain seconds.

    ``name`` (the option or variable it came from) is what an error message names.
    Only positive, finite times up to a day are durations: ``nan``, ``inf``, ``0``
    and negative times are refused here, before anything is dialled.
    """
    raw = text.strip().lower()
    units = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))
    number, factor = raw, 1.0
    for suffix, unit in units:
        if raw.endswith(suffix):
            number, factor = raw[: -len(suffix)], unit
            break
    try:
        value = float(number) * factor
    except ValueError:
        raise ConfigError(f"{name} {text!r} is not understood", DURATION_HINT) from None
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} {text!r} is not a positive, finite time", DURATION_HINT)
    if value > MAX_DURATION:
        raise ConfigError(f"{name} {text!r} is too long: at most 24h", DURATION_HINT)
    return value
