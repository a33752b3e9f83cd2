"""Elections and locks found in the keyspace by their layout, and who leads each.

etcd keeps no list of elections. What every client writes is recognisable:

* Go ``concurrency.Election``, ``etcdctl elect``, etcd's ``v3election`` API, jetcd and
  dotnet-etcd: ``NAME/<lease id in lowercase hex>`` bound to that lease, the value being
  the candidate's proposal;
* Go ``concurrency.Mutex`` and ``etcdctl lock``: the same layout with an empty value;
* Node's ``etcd3``: ``election/<name>/<lease id in decimal>``.

So a key whose last segment spells its own (non-zero) lease id is a candidate, and the
election's name is the key without that segment. The leader (or lock holder) is the
candidate with the lowest CreateRevision; the others wait in CreateRevision order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .model import KeyValueLike
from .wording import lease_text


class ElectionKind(StrEnum):
    ELECTION = "election"
    LOCK = "lock"


@dataclass(frozen=True, slots=True)
class CandidateKey:
    """What a key's layout says: the election's name and the lease id it spells."""

    name: str
    lease: int
    decimal: bool  # Node's etcd3 layout


def parse_candidate_key(raw_key: bytes, lease: int) -> CandidateKey | None:
    """The election a key belongs to, or None when the key is not a candidate's.

    The last segment must be the key's own lease id, as ``%x`` (Go, etcdctl) or in
    decimal (Node's etcd3), and the lease must not be 0.
    """
    if not lease:
        return None
    slash = raw_key.rfind(b"/")
    if slash <= 0:
        return None
    last = raw_key[slash + 1 :]
    try:
        name = raw_key[:slash].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if last == format(lease, "x").encode():
        return CandidateKey(name, lease, decimal=False)
    if last == str(lease).encode():
        return CandidateKey(name, lease, decimal=True)
    return None


@dataclass(slots=True, eq=False)
class Candidate:
    key: bytes
    value: bytes
    lease: int
    create_revision: int
    mod_revision: int

    @property
    def lease_hex(self) -> str:
        """The lease id as etcdctl writes a lease (16 hex digits). A Go client's key
        spells it ``%x``, unpadded: that is the key's spelling (:func:`parse_candidate_key`)."""
        return lease_text(self.lease)

    @property
    def key_text(self) -> str:
        return self.key.decode("utf-8", "backslashreplace")

    def value_text(self) -> str:
        return self.value.decode("utf-8", "backslashreplace")


@dataclass(slots=True, eq=False)
class Election:
    """One election or lock: its candidates in queue order (the leader first)."""

    name: str
    candidates: dict[bytes, Candidate] = field(default_factory=dict)

    def queue(self) -> list[Candidate]:
        return sorted(self.candidates.values(), key=lambda c: (c.create_revision, c.key))

    @property
    def leader(self) -> Candidate | None:
        if not self.candidates:
            return None
        return min(self.candidates.values(), key=lambda c: (c.create_revision, c.key))

    @property
    def kind(self) -> ElectionKind:
        """A lock when every candidate's value is empty, unless the name says otherwise."""
        name = self.name.lower()
        if "elect" in name:
            return ElectionKind.ELECTION
        if "lock" in name or all(not c.value for c in self.candidates.values()):
            return ElectionKind.LOCK
        return ElectionKind.ELECTION


@dataclass(frozen=True, slots=True)
class LeaderChange:
    """The leader of ``name`` changed from ``old`` to ``new`` (None: nobody)."""

    name: str
    old: Candidate | None
    new: Candidate | None
    revision: int
    snapshot: bool = False  # found by (re)loading a snapshot, not seen in the watch


class ElectionState:
    """Every election and lock under the watched prefixes, kept equal to etcd."""

    def __init__(self, prefixes: Iterable[str] = ()) -> None:
        self.prefixes = tuple(p.encode() for p in prefixes)
        self.elections: dict[str, Election] = {}
        self._where: dict[bytes, str] = {}  # candidate key -> election name
        self.revision = 0
        #: Whether the last apply() changed any candidate (a queue moves without a new leader).
        self.touched = False

    def covers(self, raw_key: bytes) -> bool:
        return not self.prefixes or any(raw_key.startswith(p) for p in self.prefixes)

    # -- changes ---------------------------------------------------------------
    def _leaders(self, names: Iterable[str]) -> dict[str, Candidate | None]:
        return {
            name: (self.elections[name].leader if name in self.elections else None)
            for name in names
        }

    def _diff(
        self, before: dict[str, Candidate | None], revision: int, snapshot: bool = False
    ) -> list[LeaderChange]:
        changes = []
        for name, old in before.items():
            election = self.elections.get(name)
            new = election.leader if election is not None else None
            if (old.key if old else None) != (new.key if new else None) or (
                old is not None and new is not None and old.create_revision != new.create_revision
            ):
                changes.append(LeaderChange(name, old, new, revision, snapshot))
        return changes

    def _put(self, kv: KeyValueLike) -> str | None:
        parsed = parse_candidate_key(kv.key, kv.lease) if self.covers(kv.key) else None
        old_name = self._where.get(kv.key)
        if old_name is not None and (parsed is None or parsed.name != old_name):
            self._remove(kv.key)
        if parsed is None:
            return old_name
        election = self.elections.get(parsed.name)
        if election is None:
            election = self.elections[parsed.name] = Election(parsed.name)
        election.candidates[kv.key] = Candidate(
            kv.key, kv.value, kv.lease, kv.create_revision, kv.mod_revision
        )
        self._where[kv.key] = parsed.name
        return parsed.name

    def _remove(self, raw_key: bytes) -> str | None:
        name = self._where.pop(raw_key, None)
        if name is None:
            return None
        election = self.elections[name]
        election.candidates.pop(raw_key, None)
        if not election.candidates:
            del self.elections[name]
        return name

    def apply(
        self, events: Iterable[tuple[bool, KeyValueLike]], revision: int
    ) -> list[LeaderChange]:
        """Apply watch events ``(is_put, kv)``; returns the leadership changes they made."""
        touched: dict[str, Candidate | None] = {}
        self.touched = False
        for is_put, kv in events:
            name = self._where.get(kv.key)
            if name is not None and name not in touched:
                touched.update(self._leaders([name]))
            if is_put:
                parsed = parse_candidate_key(kv.key, kv.lease) if self.covers(kv.key) else None
                if parsed is not None and parsed.name not in touched:
                    touched.update(self._leaders([parsed.name]))
                self.touched |= self._put(kv) is not None
            else:
                self.touched |= self._remove(kv.key) is not None
        self.revision = max(self.revision, revision)
        return self._diff(touched, revision)

    def load(self, kvs: Iterable[KeyValueLike], revision: int) -> list[LeaderChange]:
        """Replace everything with a snapshot; returns the leadership differences."""
        before = self._leaders(self.elections)
        self.elections.clear()
        self._where.clear()
        for kv in kvs:
            self._put(kv)
        for name in self.elections:
            before.setdefault(name, None)
        self.revision = revision
        return self._diff(before, revision, snapshot=True)

    # -- reading ---------------------------------------------------------------
    def sorted(self) -> list[Election]:
        return [self.elections[name] for name in sorted(self.elections)]

    def leader_of(self, name: str) -> Candidate | None:
        election = self.elections.get(name)
        return election.leader if election is not None else None

    def to_json(self, ttl_of: Any = None) -> list[dict[str, Any]]:
        """Every election as ``elections --json`` prints it (``ttl_of(lease)`` → seconds)."""
        out = []
        for election in self.sorted():
            out.append(
                {
                    "name": election.name,
                    "kind": election.kind.value,
                    "candidates": [
                        {
                            "key": c.key_text,
                            "value": c.value_text(),
                            "lease": c.lease_hex,
                            "ttl": ttl_of(c.lease) if ttl_of is not None else None,
                            "create_revision": c.create_revision,
                        }
                        for c in election.queue()
                    ],
                }
            )
        return out
