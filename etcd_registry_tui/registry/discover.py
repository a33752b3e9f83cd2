"""Find where registries live: one bounded, keys-only scan of the keyspace (``--discover``).

The keys are grouped by their first path segment (``/services/``, ``/microservices/``,
``kitex/``, go-zero's ``user.rpc/`` …), a *root*. Of each root, the first key of each of its
first :data:`SAMPLES_PER_ROOT` second segments is read with its value, at the scan's
revision, and recognised as the dashboard recognises every key (:mod:`.layouts`, the
walkthrough's layout in :mod:`.model`). A root where one of them is an instance is a
prefix to watch. The scan refuses a keyspace over :data:`MAX_SCAN_KEYS` keys on its first
page (whose count is etcd's for the whole keyspace), as the elections scan does; no value is
read but the samples'.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .census import root_of
from .etcd.connection import EtcdConnection
from .etcd.errors import RegistryError
from .model import Instance

MAX_SCAN_KEYS = 200_000
SAMPLES_PER_ROOT = 20
#: At most this many roots are sampled (a keyspace of many roots is not a registry's).
MAX_ROOTS = 200


class KeyspaceTooLargeToDiscover(RegistryError):
    hint = "name the registry's prefixes with --prefix P (repeatable) instead of --discover"


@dataclass(slots=True)
class Found:
    """One root where instances were found, and which layouts they are in."""

    prefix: str
    layouts: list[str] = field(default_factory=list)
    keys: int = 0


@dataclass(slots=True)
class Discovery:
    revision: int
    scanned: int
    found: list[Found]
    #: Roots not sampled (over :data:`MAX_ROOTS`): a registry there was not looked for.
    unsampled: int = 0

    @property
    def prefixes(self) -> tuple[str, ...]:
        return tuple(f.prefix for f in self.found)

    def describe(self) -> str:
        """One line: what was found where, for the status line and stderr."""
        if not self.found:
            return f"no registry found in {self.scanned:,} keys"
        parts = [
            f"{f.prefix} ({', '.join(f.layouts)}; {f.keys:,} key{'s' if f.keys != 1 else ''})"
            for f in self.found
        ]
        more = f"; {self.unsampled:,} roots not looked at" if self.unsampled else ""
        return f"found {'; '.join(parts)}{more}"


def _second(key: bytes, root: bytes) -> bytes:
    rest = key[len(root) :]
    at = rest.find(b"/")
    return rest[:at] if at >= 0 else rest


def _layout(kv: Any, root: str) -> str | None:
    """The layout of one key-value as the dashboard would show it (None: no instance)."""
    inst = Instance.from_kv(kv, root)
    if inst.layout is not None:
        return inst.layout.layout.value
    if inst.key_error is None and inst.parse_error is None and inst.name and inst.address:
        return "services"  # the walkthrough's {Id, Name, Address}
    return None


async def discover(
    conn: EtcdConnection, max_keys: int = MAX_SCAN_KEYS, samples: int = SAMPLES_PER_ROOT
) -> Discovery:
    """Scan the keyspace (keys only, at one revision) and sample each root's values."""
    counts: dict[bytes, int] = {}
    picked: dict[bytes, dict[bytes, bytes]] = {}  # root -> second segment -> first key
    revision = scanned = 0
    async for kvs, at, total, _more in conn.iter_prefix(b"", keys_only=True):
        revision = at  # every page's: the first one's
        if total > max_keys:  # said on the first page, before the rest is read
            raise KeyspaceTooLargeToDiscover(
                f"{total:,} keys to scan to discover registries (more than {max_keys:,})"
            )
        for kv in kvs:
            scanned += 1
            root = root_of(kv.key)
            if root is None:
                continue
            counts[root] = counts.get(root, 0) + 1
            seconds = picked.setdefault(root, {}) if len(picked) < MAX_ROOTS else picked.get(root)
            if seconds is not None and len(seconds) < samples:
                seconds.setdefault(_second(kv.key, root), kv.key)
        await asyncio.sleep(0)
    found: list[Found] = []
    for root, seconds in picked.items():
        text = root.decode("utf-8", "backslashreplace")
        layouts: list[str] = []
        for key in seconds.values():
            kv = await conn.get_revision(key, revision)
            if kv is not None and (name := _layout(kv, text)) and name not in layouts:
                layouts.append(name)
        if layouts and root.decode("utf-8", "replace") == text:  # a prefix must be text
            found.append(Found(text, layouts, counts[root]))
    return Discovery(revision, scanned, found, unsampled=len(counts) - len(picked))
