"""The registry model: instances, services and the state built from etcd events.

Keys look like ``{prefix}{ServiceName}/{InstanceId}`` and values are JSON objects
written by .NET (PascalCase), JavaScript (camelCase) or anything else (lower-case).
Nothing is ever dropped: a key or value that does not fit the format is kept and
carries the reason in ``key_error`` / ``parse_error``.

Every byte comes from whoever can write to etcd, so parsing never raises (values over
:data:`MAX_PARSED_BYTES` or nested deeper than :data:`MAX_JSON_DEPTH` are kept unparsed)
and each instance carries display-safe copies of its key, service, id and address
(``display_*``, see :mod:`.sanitize`), made once; renderers show those, never the raw text.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from .census import RAW, LayoutCensus, LayoutCount, where_of
from .etcd.config import DEFAULT_PREFIX
from .layouts import PLACEHOLDER, Layout, Recognised, recognise
from .sanitize import safe_line, safe_text
from .wording import lease_text

#: Service name under which entries whose *key* does not fit the format are grouped.
UNRECOGNISED = "(unrecognised keys)"
#: Group of the "directory" keys some frameworks write beside their instances (dubbo-go's
#: empty path keys, rpcx's ``rpcx_path``): shown, last, but no service.
FRAMEWORK_PATHS = "(framework path keys)"
#: Groups that are no service: counted apart and listed last.
NOT_SERVICES = frozenset({UNRECOGNISED, FRAMEWORK_PATHS})

_FIELD_ALIASES: dict[str, tuple[str, ...]] = {
    "id": ("Id", "id", "ID", "instanceId", "InstanceId"),
    "name": ("Name", "name", "serviceName", "ServiceName"),
    "address": ("Address", "address", "url", "Url", "URL"),
}


#: Values larger than this are not parsed (kept and shown raw, with the reason).
MAX_PARSED_BYTES = 1024 * 1024
#: JSON nested deeper than this is not parsed: Python's parser and printer recurse.
MAX_JSON_DEPTH = 64
#: Display text of one-line fields (key, service, id, address) is cut after this many chars.
DISPLAY_LINE_CHARS = 2048
#: The value preview (detail pane, inspect view) is cut after this many characters.
DISPLAY_VALUE_CHARS = 32 * 1024


class KeyValueLike(Protocol):
    """What etcd hands out for a key: aetcd ``KeyValue``, the raw protobuf and our frozen
    :class:`KeyValue` all fit (read-only members, so a frozen dataclass qualifies)."""

    @property
    def key(self) -> bytes: ...
    @property
    def value(self) -> bytes: ...
    @property
    def create_revision(self) -> int: ...
    @property
    def mod_revision(self) -> int: ...
    @property
    def version(self) -> int: ...
    @property
    def lease(self) -> int: ...


@dataclass(frozen=True, slots=True)
class KeyValue:
    """A key-value as etcd hands it out, without a gRPC message: for building a state
    from other sources (tests, benchmarks, a saved snapshot)."""

    key: bytes
    value: bytes
    create_revision: int = 1
    mod_revision: int = 1
    version: int = 1
    lease: int = 0


#: One string object per service name, shared by its instances (interned strings are
#: freed again once nothing uses them).
_shared = sys.intern


def _pick(fields: dict[str, Any], role: str) -> str | None:
    for alias in _FIELD_ALIASES[role]:
        if alias in fields:
            value = fields[alias]
            return value if isinstance(value, str) else json.dumps(value)
    return None


def decode_key(raw_key: bytes) -> tuple[str, str | None]:
    """Key as text, and an error when it is not valid UTF-8 (undecodable bytes escaped)."""
    try:
        return raw_key.decode("utf-8"), None
    except UnicodeDecodeError:
        return raw_key.decode("utf-8", "backslashreplace"), "key is not valid UTF-8"


def prefix_of(key: str, prefixes: str | tuple[str, ...]) -> str:
    """The longest of ``prefixes`` that ``key`` starts with (the first one when none does)."""
    if isinstance(prefixes, str):
        return prefixes
    if len(prefixes) == 1:
        return prefixes[0]
    fits = [p for p in prefixes if key.startswith(p)]
    return max(fits, key=len) if fits else prefixes[0]


def split_key(key: str, prefix: str | tuple[str, ...]) -> tuple[str, str, str | None]:
    """Split ``{prefix}{service}/{id}`` into (service, id, error); of several prefixes,
    the longest that the key starts with.

    Under a prefix wider than the walkthrough's (``--prefix /``), a key that does not fit
    but lies under ``/services/`` is split there: the walkthrough's instances stay theirs.
    """
    prefix = prefix_of(key, prefix)
    service, instance_id, error = _split(key, prefix)
    if (
        error is not None
        and prefix != DEFAULT_PREFIX
        and key.startswith(DEFAULT_PREFIX)
        and DEFAULT_PREFIX.startswith(prefix)
    ):
        return _split(key, DEFAULT_PREFIX)
    return service, instance_id, error


def _split(key: str, prefix: str) -> tuple[str, str, str | None]:
    rest = key[len(prefix) :] if key.startswith(prefix) else key
    parts = rest.split("/")
    if len(parts) == 1:
        return "", rest, "key sits directly under the prefix (no service name)"
    if len(parts) > 2:
        return parts[0], "/".join(parts[1:]), f"key is {len(parts)} levels deep, expected 2"
    service, instance_id = parts
    if not service:
        return "", instance_id, "empty service name"
    if not instance_id:
        return service, "", "empty instance id"
    return service, instance_id, None


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


def json_too_deep(text: str, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when ``text`` opens more than ``limit`` arrays/objects inside each other
    (brackets inside strings do not count). Cheap when it holds few brackets."""
    if text.count("[") + text.count("{") <= limit:
        return False
    depth = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class _NonStandard(Exception):
    """NaN, Infinity or a number too large for a double (1e400) in a value."""


def _refuse_constant(name: str) -> float:
    raise _NonStandard(name)


def _finite_float(digits: str) -> float:
    parsed = float(digits)
    if math.isfinite(parsed):
        return parsed
    raise _NonStandard(digits)


#: Parses standard JSON at full speed; the hooks only run for floats and NaN/Infinity.
_STRICT_JSON = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def _loads_keeping_nonstandard(text: str) -> tuple[Any, list[str]]:
    """Parse, keeping NaN, Infinity and overflowing numbers as their text; and list them."""
    found: list[str] = []

    def as_text(literal: str) -> str:
        found.append(literal)
        return literal

    def number(digits: str) -> float | str:
        parsed = float(digits)
        return parsed if math.isfinite(parsed) else as_text(digits)

    return json.loads(text, parse_constant=as_text, parse_float=number), found


def parse_value(raw: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Parse a registry value into its JSON object, or say why it is not one.

    Never raises. NaN and (-)Infinity, which Python accepts but other JSON clients reject,
    are kept as the strings "NaN" / "Infinity" / "-Infinity" (numbers too large for a double
    as their digits) and flagged: then both the object and the reason are returned.
    """
    if len(raw) > MAX_PARSED_BYTES:
        return None, (
            f"value is {len(raw):,} bytes: not parsed (only values up to"
            f" {MAX_PARSED_BYTES // (1024 * 1024)} MiB are), shown raw"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"value is not UTF-8 text ({len(raw)} bytes, bad byte at {exc.start})"
    if not text.strip():
        return None, "value is empty"
    if json_too_deep(text):
        return None, f"value is not parsed: JSON nested more than {MAX_JSON_DEPTH} deep"
    nonstandard: list[str] = []
    try:
        try:
            parsed = _STRICT_JSON.decode(text)
        except _NonStandard:  # rare: parse again, keeping what other clients reject as text
            parsed, nonstandard = _loads_keeping_nonstandard(text)
    except RecursionError:
        return None, f"value is not parsed: JSON nested more than {MAX_JSON_DEPTH} deep"
    except ValueError as exc:
        return None, f"value is not JSON: {exc}"
    except Exception as exc:  # whatever else a parser can raise must not stop the registry
        return None, f"value could not be parsed ({type(exc).__name__})"
    if not isinstance(parsed, dict):
        return None, f"value is JSON {type(parsed).__name__}, expected an object"
    if nonstandard:
        shown = ", ".join(dict.fromkeys(nonstandard))
        return parsed, f"value is not standard JSON: {shown} kept as text"
    return parsed, None


class Instance:
    """One key under the prefix, usually a registered service instance.

    Small on purpose (a registry holds 100,000 of them): only what the tree needs is kept
    parsed (service, id, address, problems, lease, revisions) beside the raw value bytes;
    the JSON object (:attr:`fields`) and the key as text are made again on demand.
    Service names are shared between the instances of a service, and a snapshot's
    instances share one ``first_seen``.
    """

    __slots__ = (
        "raw_key",
        "service",
        "instance_id",
        "value",
        "address",
        "parse_error",
        "key_error",
        "create_revision",
        "mod_revision",
        "version",
        "lease",
        "first_seen",
        "layout",
        "_group",
        "_display",
        "_display_value",
    )

    raw_key: bytes
    service: str
    instance_id: str
    value: bytes
    address: str | None
    parse_error: str | None
    key_error: str | None
    create_revision: int
    mod_revision: int
    version: int
    lease: int
    first_seen: float
    #: The framework layout the key was recognised as (None: the walkthrough's layout, or
    #: a key that fits none), with what that framework says of the instance.
    layout: Recognised | None
    #: The tree group when it is not the service name alone (see :attr:`group`).
    _group: str | None
    #: Display-safe key, service, id and address when any of them is not clean, else None.
    _display: tuple[str, str, str, str | None] | None
    _display_value: str | None

    def __init__(
        self,
        raw_key: bytes,
        key: str,
        service: str,
        instance_id: str,
        value: bytes,
        address: str | None,
        parse_error: str | None,
        key_error: str | None,
        create_revision: int,
        mod_revision: int,
        version: int,
        lease: int,
        first_seen: float | None = None,
        layout: Recognised | None = None,
        home: str | None = None,
    ) -> None:
        self.raw_key = raw_key
        self.service = _shared(service)
        self.instance_id = instance_id
        self.value = value
        self.address = address
        self.parse_error = parse_error
        self.key_error = key_error
        self.create_revision = create_revision
        self.mod_revision = mod_revision
        self.version = version
        self.lease = lease
        self.first_seen = time.time() if first_seen is None else first_seen
        self.layout = layout
        self._group = _shared(f"{self.service} · {home}") if home else None
        self._display_value = None
        limit = DISPLAY_LINE_CHARS
        display_key = safe_line(key, limit)
        display_address = None if address is None else safe_line(address, limit)
        if display_key is key and display_address is address:
            self._display = None  # all clean: the raw strings are shown as they are
        elif display_key is key:  # service and id are parts of a clean key
            self._display = (key, self.service, instance_id, display_address)
        else:
            self._display = (
                display_key,
                safe_line(service, limit),
                safe_line(instance_id, limit),
                display_address,
            )

    def __repr__(self) -> str:
        return (
            f"Instance(key={self.key!r}, lease={self.lease:x}, mod_revision={self.mod_revision},"
            f" problems={self.problems!r})"
        )

    @classmethod
    def from_kv(
        cls, kv: KeyValueLike, prefix: str | tuple[str, ...], first_seen: float | None = None
    ) -> Instance:
        key, key_error = decode_key(kv.key)
        fields, parse_error = parse_value(kv.value)
        hit = None if key_error else recognise(key, fields, kv.value, kv.lease)
        layout: Recognised | None = None
        home: str | None = None
        if hit is PLACEHOLDER:  # a framework's path key: kept, in no service
            service, instance_id, address, parse_error = FRAMEWORK_PATHS, key, None, None
        elif isinstance(hit, Recognised):
            layout, service, instance_id, address = hit, hit.service, hit.instance_id, hit.address
            if fields is None:
                parse_error = None  # a framework whose values are no JSON objects
        else:
            under = prefix_of(key, prefix)
            service, instance_id, split_error = split_key(key, under)
            key_error = key_error or split_error
            address = _pick(fields, "address") if fields is not None else None
            if not isinstance(prefix, str) and len(prefix) > 1:
                # Several prefixes: the same service name under two of them is two groups.
                fits = under != DEFAULT_PREFIX and key.startswith(under)
                home = under if fits else None
        return cls(
            raw_key=kv.key,
            key=key,
            service=service,
            instance_id=instance_id,
            value=kv.value,
            address=address,
            parse_error=parse_error,
            key_error=key_error,
            create_revision=kv.create_revision,
            mod_revision=kv.mod_revision,
            version=kv.version,
            lease=kv.lease,
            first_seen=first_seen,
            layout=layout,
            home=home,
        )

    # -- made on demand ------------------------------------------------------
    @property
    def key(self) -> str:
        """The key as text (undecodable bytes escaped)."""
        return decode_key(self.raw_key)[0]

    @property
    def fields(self) -> dict[str, Any] | None:
        """The value's JSON object (parsed again on each call), or None."""
        return parse_value(self.value)[0] if self._parsed_ok() else None

    def _parsed_ok(self) -> bool:
        error = self.parse_error
        return error is None or error.startswith("value is not standard JSON")

    @property
    def display_key(self) -> str:
        return self.key if self._display is None else self._display[0]

    @property
    def display_service(self) -> str:
        return self.service if self._display is None else self._display[1]

    @property
    def display_id(self) -> str:
        return self.instance_id if self._display is None else self._display[2]

    @property
    def display_address(self) -> str | None:
        return self.address if self._display is None else self._display[3]

    @property
    def group(self) -> str:
        """The tree group: the service name (with its layout's mark for a framework's:
        ``shop · dubbo-app``; with its prefix for the walkthrough's under one of several
        prefixes other than ``/services/``: ``shop · /staging/``), or :data:`UNRECOGNISED`
        for odd keys."""
        if self.layout is not None:
            return self.layout.group
        if self.key_error:
            return UNRECOGNISED
        return self.service if self._group is None else self._group

    @property
    def layout_name(self) -> str | None:
        """The layout's short name: a framework's (``kratos``, ``go-zero`` …), ``services``
        for the walkthrough's, None for a key that fits none (or a framework's path key)."""
        if self.layout is not None:
            return self.layout.layout.value
        if self.key_error or self.service == FRAMEWORK_PATHS:
            return None
        return Layout.WALKTHROUGH.value

    @property
    def name(self) -> str | None:
        if self.layout is not None:
            return self.layout.service
        fields = self.fields
        return _pick(fields, "name") if fields is not None else None

    @property
    def declared_id(self) -> str | None:
        if self.layout is not None:
            return self.layout.instance_id
        fields = self.fields
        return _pick(fields, "id") if fields is not None else None

    @property
    def has_problem(self) -> bool:
        return self.key_error is not None or self.parse_error is not None

    @property
    def problems(self) -> list[str]:
        return [p for p in (self.key_error, self.parse_error) if p]

    @property
    def lease_hex(self) -> str:
        """Lease id as etcdctl prints it (16 lowercase hex digits, zero-padded, no 0x)."""
        return lease_text(self.lease)

    @property
    def display_problems(self) -> list[str]:
        return [safe_line(p, DISPLAY_LINE_CHARS) for p in self.problems]

    def value_text(self) -> str:
        """The value in full: pretty JSON, raw text, or a hex dump for binary data.

        Raw: for machines (``list --json``); a display shows :meth:`display_value`."""
        fields = self.fields
        if fields is not None:
            try:
                return json.dumps(fields, indent=2, ensure_ascii=False)
            except (ValueError, RecursionError):  # not expected after parse_value's checks
                pass
        try:
            return self.value.decode("utf-8")
        except UnicodeDecodeError:
            return hexdump(self.value)

    def display_value(self) -> str:
        """:meth:`value_text` safe to show (line breaks kept) and cut to a preview of
        :data:`DISPLAY_VALUE_CHARS`; made on first use, then kept."""
        shown = self._display_value
        if shown is None:
            shown = safe_text(self.value_text(), DISPLAY_VALUE_CHARS)
            self._display_value = shown
        return shown


def hexdump(data: bytes, width: int = 16, limit: int = 4096) -> str:
    lines = []
    for offset in range(0, min(len(data), limit), width):
        chunk = data[offset : offset + width]
        hexes = " ".join(f"{b:02x}" for b in chunk)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {hexes:<{width * 3}} {text}")
    if len(data) > limit:
        lines.append(f"… {len(data) - limit} more bytes")
    return "\n".join(lines)


@dataclass(slots=True)
class Service:
    name: str
    instances: dict[bytes, Instance] = field(default_factory=dict)

    def sorted_instances(self) -> list[Instance]:
        return sorted(self.instances.values(), key=lambda i: (i.instance_id, i.raw_key))


class ChangeKind(StrEnum):
    CREATE = "PUT"
    UPDATE = "UPDATE"
    DELETE = "DELETE"


@dataclass(slots=True, frozen=True)
class Change:
    """One applied change. ``instance`` is the new entry (or the removed one for DELETE)."""

    kind: ChangeKind
    instance: Instance
    previous: Instance | None
    revision: int

    @property
    def key(self) -> bytes:
        return self.instance.raw_key


class RegistryState:
    """Everything under the prefix, indexed by key, group and lease.

    It is fed by :meth:`load` (a snapshot) and :meth:`apply_put` / :meth:`apply_delete`
    (watch events) and never talks to etcd itself.
    """

    def __init__(self, prefix: str | tuple[str, ...] = "/services/") -> None:
        #: Every prefix held (a key is split on the longest that fits); the first primary.
        self.prefixes = (prefix,) if isinstance(prefix, str) else tuple(prefix)
        self.prefix = self.prefixes[0]
        self._raw_prefixes = tuple(p.encode() for p in self.prefixes)
        self.revision = 0
        self.instances: dict[bytes, Instance] = {}
        self.groups: dict[str, Service] = {}
        self.by_lease: dict[int, set[bytes]] = {}
        self._census = LayoutCensus()

    # -- queries -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.instances)

    def __contains__(self, raw_key: object) -> bool:
        return raw_key in self.instances

    def get(self, raw_key: bytes) -> Instance | None:
        return self.instances.get(raw_key)

    @property
    def service_count(self) -> int:
        return sum(1 for name in self.groups if name not in NOT_SERVICES)

    def sorted_groups(self) -> list[Service]:
        """Services sorted by name, the groups that are no service last."""
        return sorted(self.groups.values(), key=lambda s: (s.name in NOT_SERVICES, s.name))

    def keys_on_lease(self, lease: int) -> set[bytes]:
        return self.by_lease.get(lease, set()) if lease else set()

    def leases(self) -> set[int]:
        return set(self.by_lease)

    def layouts(self) -> list[LayoutCount]:
        """Which layouts are held and where, most instances first (raw keys last)."""
        return self._census.counts()

    def layout_totals(self) -> list[LayoutCount]:
        """Instances per layout, most first (raw keys last), with the one place each was
        found in ("" when several): cheap enough for every flush."""
        return self._census.totals()

    def as_dict(self) -> dict[bytes, tuple[bytes, int, int]]:
        """Comparable content: key -> (value, lease, mod_revision)."""
        return {k: (i.value, i.lease, i.mod_revision) for k, i in self.instances.items()}

    def __iter__(self) -> Iterator[Instance]:
        return iter(self.instances.values())

    # -- mutation ------------------------------------------------------------
    def _census_slot(self, inst: Instance) -> tuple[str, bytes] | None:
        """The layout and place an instance is counted as (None: a framework's path key,
        no instance)."""
        name = inst.layout_name
        if name is None:
            if inst.service == FRAMEWORK_PATHS:
                return None
            name = RAW
        return name, where_of(inst.raw_key, self._raw_prefixes, by_root=name != RAW)

    def _insert(self, inst: Instance) -> None:
        self.instances[inst.raw_key] = inst
        group = self.groups.get(inst.group)
        if group is None:
            group = self.groups[inst.group] = Service(inst.group)
        group.instances[inst.raw_key] = inst
        if inst.lease:
            self.by_lease.setdefault(inst.lease, set()).add(inst.raw_key)
        slot = self._census_slot(inst)
        if slot is not None:
            self._census.add(*slot)

    def _remove(self, inst: Instance) -> None:
        del self.instances[inst.raw_key]
        slot = self._census_slot(inst)
        if slot is not None:
            self._census.remove(*slot)
        group = self.groups.get(inst.group)
        if group is not None:
            group.instances.pop(inst.raw_key, None)
            if not group.instances:
                del self.groups[inst.group]
        if inst.lease:
            keys = self.by_lease.get(inst.lease)
            if keys is not None:
                keys.discard(inst.raw_key)
                if not keys:
                    del self.by_lease[inst.lease]

    def apply_put(self, kv: KeyValueLike) -> Change | None:
        """Apply a PUT; events at or below an already applied revision are ignored."""
        previous = self.instances.get(kv.key)
        if previous is not None and kv.mod_revision <= previous.mod_revision:
            return None
        first_seen = previous.first_seen if previous is not None else None
        inst = Instance.from_kv(kv, self.prefixes, first_seen)
        if previous is not None:
            self._remove(previous)
        self._insert(inst)
        self.revision = max(self.revision, kv.mod_revision)
        kind = ChangeKind.UPDATE if previous is not None else ChangeKind.CREATE
        return Change(kind, inst, previous, kv.mod_revision)

    def apply_delete(self, raw_key: bytes, revision: int) -> Change | None:
        self.revision = max(self.revision, revision)
        previous = self.instances.get(raw_key)
        if previous is None or previous.mod_revision >= revision:
            return None
        self._remove(previous)
        return Change(ChangeKind.DELETE, previous, previous, revision)

    def restore(self, raw_key: bytes, kv: KeyValueLike | None, revision: int) -> Change | None:
        """Set ``raw_key`` to ``kv`` (``None``: absent) whatever the revisions say, and
        call the state's revision ``revision``: for stepping through history."""
        self.revision = revision
        previous = self.instances.get(raw_key)
        if kv is None:
            if previous is None:
                return None
            self._remove(previous)
            return Change(ChangeKind.DELETE, previous, previous, revision)
        if previous is not None and previous.mod_revision == kv.mod_revision:
            return None
        first_seen = previous.first_seen if previous else None
        inst = Instance.from_kv(kv, self.prefixes, first_seen)
        if previous is not None:
            self._remove(previous)
        self._insert(inst)
        kind = ChangeKind.UPDATE if previous is not None else ChangeKind.CREATE
        return Change(kind, inst, previous, revision)

    def copy(self) -> RegistryState:
        """Another state with the same (shared, never mutated) instances."""
        other = RegistryState(self.prefixes)
        other.revision = self.revision
        for inst in self.instances.values():
            other._insert(inst)
        return other

    def parse(self, kvs: Iterable[KeyValueLike]) -> dict[bytes, Instance]:
        """Build the instances for kvs that are new or changed since what is held."""
        held = self.instances
        parsed: dict[bytes, Instance] = {}
        now = time.time()  # one float for the whole page, not one per instance
        for kv in kvs:
            previous = held.get(kv.key)
            if previous is None or previous.mod_revision != kv.mod_revision:
                first_seen = previous.first_seen if previous is not None else now
                parsed[kv.key] = Instance.from_kv(kv, self.prefixes, first_seen)
        return parsed

    def add(self, instances: Iterable[Instance], revision: int) -> list[Change]:
        """Add a page of a first snapshot read at ``revision`` (keys not held yet):
        returns them as CREATE changes."""
        changes = []
        held = self.instances
        for inst in instances:
            if inst.raw_key in held:  # not expected: pages of one snapshot are disjoint
                continue
            self._insert(inst)
            changes.append(Change(ChangeKind.CREATE, inst, None, inst.mod_revision))
        self.revision = max(self.revision, revision)
        return changes

    def load(
        self,
        kvs: Iterable[KeyValueLike],
        revision: int,
        parsed: dict[bytes, Instance] | None = None,
    ) -> list[Change]:
        """Replace the content with a snapshot taken at ``revision``.

        Returns the difference to what was held before as ordinary changes, so a
        consumer sees a reload (after a compaction, say) like any other update.
        ``parsed`` may hold instances already built from these kvs (see :meth:`parse`).
        """
        old = self.instances
        self.instances = {}
        self.groups = {}
        self.by_lease = {}
        self._census = LayoutCensus()
        changes: list[Change] = []
        for kv in kvs:
            previous = old.pop(kv.key, None)
            if previous is not None and previous.mod_revision == kv.mod_revision:
                self._insert(previous)
                continue
            inst = parsed.get(kv.key) if parsed else None
            if inst is None or inst.mod_revision != kv.mod_revision:
                seen = previous.first_seen if previous else None
                inst = Instance.from_kv(kv, self.prefixes, seen)
            self._insert(inst)
            kind = ChangeKind.UPDATE if previous is not None else ChangeKind.CREATE
            changes.append(Change(kind, inst, previous, kv.mod_revision))
        for gone in old.values():
            changes.append(Change(ChangeKind.DELETE, gone, gone, revision))
        self.revision = revision
        return changes
