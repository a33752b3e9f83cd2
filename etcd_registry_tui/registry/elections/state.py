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

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..model import KeyValueLike
from ..wording import lease_text


class ElectionKind(StrEnum):
    ELECTION = "election"
    LOCK = "lock"


def name_bytes(name: str) -> bytes:
    """An election's name as the bytes of its keys (a name that is not UTF-8 is held
    with its undecodable bytes as surrogates: ``surrogateescape``)."""
    return name.encode("utf-8", "surrogateescape")


def name_text(name: str) -> str:
    """The name printable, bytes that are not UTF-8 as ``\\xff`` (as :attr:`Candidate.key_text`)."""
    return name_bytes(name).decode("utf-8", "backslashreplace")


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
    name = raw_key[:slash].decode("utf-8", "surrogateescape")  # every name etcd can hold
    if last == format(lease, "x").encode():
        return CandidateKey(name, lease, decimal=False)
    if last == str(lease).encode():
        return CandidateKey(name, lease, decimal=True)
    return None


@dataclass(slots=True, eq=False)
class Candidate:
    """A key in an election's queue: every key under ``NAME/`` takes part, as clientv3 has
    it (its ``Leader`` is the lowest CreateRevision under the prefix, nested keys included)."""

    key: bytes
    value: bytes
    lease: int
    create_revision: int
    mod_revision: int
    #: The election this key's own layout names (``NAME/<its lease>``): another name for a
    #: nested election's key, None for a key under ``NAME/`` that is not a candidate's.
    stands_in: str | None = None

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

    @property
    def sort_key(self) -> tuple[int, bytes]:
        return self.create_revision, self.key


@dataclass(slots=True, eq=False)
class Election:
    """One election or lock: every key under ``NAME/`` in queue order (the leader first).

    The leader is kept as keys come and go, and the queue is sorted only when read after
    a change (a new key, whose CreateRevision is the highest, is appended): a batch of
    watch events costs what it changes, not the length of the queue.
    """

    name: str
    candidates: dict[bytes, Candidate] = field(default_factory=dict)
    #: How many keys name this election by their own layout (it exists while one does).
    defining: int = 0
    _leader: Candidate | None = field(default=None, repr=False)
    _leader_known: bool = field(default=True, repr=False)
    _queue: list[Candidate] | None = field(default=None, repr=False)
    _places: dict[bytes, int] | None = field(default=None, repr=False)
    _valued: int = field(default=0, repr=False)  # keys with a non-empty value

    @property
    def prefix(self) -> bytes:
        return name_bytes(self.name) + b"/"

    def add(self, candidate: Candidate) -> None:
        key = candidate.key
        old = self.candidates.get(key)
        if old is not None and old.create_revision != candidate.create_revision:
            self.discard(key)
            old = None
        self.candidates[key] = candidate
        self._valued += bool(candidate.value) - (bool(old.value) if old is not None else 0)
        queue, places = self._queue, self._places
        if old is not None:  # the same key with a new value: same place
            if queue is not None and places is not None:
                queue[places[key]] = candidate
            if self._leader is old:
                self._leader = candidate
            return
        if queue is not None and places is not None:
            if not queue or queue[-1].sort_key < candidate.sort_key:
                places[key] = len(queue)
                queue.append(candidate)
            else:
                self._queue = self._places = None
        if self._leader_known and (
            self._leader is None or candidate.sort_key < self._leader.sort_key
        ):
            self._leader = candidate

    def discard(self, key: bytes) -> Candidate | None:
        candidate = self.candidates.pop(key, None)
        if candidate is None:
            return None
        self._valued -= bool(candidate.value)
        queue, places = self._queue, self._places
        if queue is not None and places is not None and queue and queue[-1] is candidate:
            queue.pop()
            del places[key]
        else:
            self._queue = self._places = None
        if self._leader is candidate:
            self._leader, self._leader_known = None, False
        return candidate

    def queue(self) -> list[Candidate]:
        if self._queue is None:
            self._queue = sorted(self.candidates.values(), key=lambda c: c.sort_key)
            self._places = {c.key: n for n, c in enumerate(self._queue)}
        return self._queue

    def place(self, key: bytes) -> int | None:
        """The key's place in the queue (0: the leader), None if it is not in it."""
        self.queue()
        assert self._places is not None
        return self._places.get(key)

    @property
    def leader(self) -> Candidate | None:
        if not self._leader_known:
            self._leader = min(self.candidates.values(), key=lambda c: c.sort_key, default=None)
            self._leader_known = True
        return self._leader

    @property
    def kind(self) -> ElectionKind:
        """A lock when every candidate's value is empty, unless the name says otherwise."""
        name = self.name.lower()
        if "elect" in name:
            return ElectionKind.ELECTION
        if "lock" in name or not self._valued:
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
    """Every election and lock under the watched prefixes, kept equal to etcd.

    An election exists while a key names it by its layout (``NAME/<its own lease>``);
    its queue is every key under ``NAME/``, nested elections' keys included, ordered by
    CreateRevision, so its leader is the one clientv3's ``Election.Leader`` returns.
    Keys under the registry's prefix (``instances_prefix``) are instances, never a
    candidate's, unless an elections prefix inside it says otherwise.
    """

    def __init__(self, prefixes: Iterable[str] = (), instances_prefix: str | None = None) -> None:
        self.prefixes = tuple(p.encode() for p in prefixes)
        self.instances_prefix = instances_prefix.encode() if instances_prefix else None
        self.elections: dict[str, Election] = {}
        self._raw: dict[bytes, Election] = {}  # raw name -> election
        self._keys: dict[bytes, Candidate] = {}  # every key of some election's queue
        self._sorted: list[Election] | None = None
        self._leases: dict[int, set[bytes]] = {}  # lease -> the held keys on it
        self._gained: set[int] = set()
        self._lost: set[int] = set()
        self.revision = 0
        #: Whether the last apply() changed any candidate (a queue moves without a new leader).
        self.touched = False
        #: Elections found in the watch whose older keys that are not candidates' have not
        #: been read yet (see :meth:`adopt`).
        self.unloaded: set[str] = set()

    def covers(self, raw_key: bytes) -> bool:
        return not self.prefixes or any(raw_key.startswith(p) for p in self.prefixes)

    def is_instance(self, raw_key: bytes) -> bool:
        """Under the registry's prefix, and not under a narrower elections prefix."""
        ip = self.instances_prefix
        if ip is None or not raw_key.startswith(ip):
            return False
        return not any(len(p) > len(ip) and raw_key.startswith(p) for p in self.prefixes)

    def candidate_name(self, raw_key: bytes, lease: int) -> CandidateKey | None:
        """The election this key stands in by its layout, if it is watched here."""
        parsed = parse_candidate_key(raw_key, lease)
        if parsed is None or self.is_instance(raw_key):
            return None
        if not self.covers(name_bytes(parsed.name) + b"/"):
            return None  # its queue is not all watched: a leader could not be told
        return parsed

    def _elections_of(self, raw_key: bytes) -> list[Election]:
        """Every election whose ``NAME/`` holds the key (outermost first)."""
        found = []
        raw = self._raw
        at = raw_key.find(b"/", 1)
        while at > 0:
            election = raw.get(raw_key[:at])
            if election is not None:
                found.append(election)
            at = raw_key.find(b"/", at + 1)
        return found

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

    def _hold(self, candidate: Candidate) -> None:
        self._keys[candidate.key] = candidate
        lease = candidate.lease
        if lease:
            on_lease = self._leases.get(lease)
            if on_lease is None:
                on_lease = self._leases[lease] = set()
                self._gained.add(lease)
                self._lost.discard(lease)
            on_lease.add(candidate.key)

    def _release(self, candidate: Candidate) -> None:
        del self._keys[candidate.key]
        lease = candidate.lease
        on_lease = self._leases.get(lease) if lease else None
        if on_lease is not None:
            on_lease.discard(candidate.key)
            if not on_lease:
                del self._leases[lease]
                self._lost.add(lease)
                self._gained.discard(lease)

    def _new_election(self, name: str) -> Election:
        election = self.elections[name] = Election(name)
        self._raw[name_bytes(name)] = election
        self._sorted = None
        return election

    def _found(self, name: str) -> Election:
        """A new election seen in the watch: its queue from the innermost election that
        encloses it (which holds every key under it), else from etcd (:meth:`adopt`)."""
        election = self._new_election(name)
        prefix = election.prefix
        enclosing = [e for e in self._elections_of(prefix) if e is not election]
        if not enclosing:
            self.unloaded.add(name)
            return election
        inner = enclosing[-1].queue()
        for candidate in inner:
            if candidate.key.startswith(prefix):
                election.add(candidate)
        return election

    def _put(self, kv: KeyValueLike) -> bool:
        """Take in a put; whether it touched an election."""
        key = kv.key
        parsed = self.candidate_name(key, kv.lease)
        stands_in = parsed.name if parsed is not None else None
        old = self._keys.get(key)
        touched = False
        if old is not None and (
            old.stands_in != stands_in or old.create_revision != kv.create_revision
        ):
            self._remove(key)
            old, touched = None, True
        if stands_in is not None and stands_in not in self.elections:
            self._found(stands_in)
        elections = self._elections_of(key)
        if not elections:
            return touched
        candidate = Candidate(
            key, kv.value, kv.lease, kv.create_revision, kv.mod_revision, stands_in
        )
        if old is not None:
            self._release(old)
        self._hold(candidate)
        for election in elections:
            election.add(candidate)
        if old is None and stands_in is not None:
            self.elections[stands_in].defining += 1
        return True

    def _remove(self, raw_key: bytes) -> bool:
        candidate = self._keys.get(raw_key)
        if candidate is None:
            return False
        self._release(candidate)
        for held_in in self._elections_of(raw_key):
            held_in.discard(raw_key)
        name = candidate.stands_in
        election = self.elections.get(name) if name is not None else None
        if election is not None:
            election.defining -= 1
            if election.defining <= 0:
                self._drop(election)
        return True

    def _drop(self, election: Election) -> None:
        """No key names the election any more: it goes, and the keys only it held."""
        del self.elections[election.name]
        del self._raw[name_bytes(election.name)]
        self._sorted = None
        self.unloaded.discard(election.name)
        for key, candidate in list(election.candidates.items()):
            if not self._elections_of(key):
                self._release(candidate)

    def apply(
        self, events: Iterable[tuple[bool, KeyValueLike]], revision: int
    ) -> list[LeaderChange]:
        """Apply watch events ``(is_put, kv)``, held up to ``revision`` (the last event's
        ModRevision); returns the leadership changes they made."""
        touched: dict[str, Candidate | None] = {}
        self.touched = False
        for is_put, kv in events:
            for election in self._elections_of(kv.key):
                if election.name not in touched:
                    touched[election.name] = election.leader
            if is_put:
                parsed = self.candidate_name(kv.key, kv.lease)
                if parsed is not None and parsed.name not in touched:
                    touched.update(self._leaders([parsed.name]))
                self.touched |= self._put(kv)
            else:
                self.touched |= self._remove(kv.key)
        self.revision = max(self.revision, revision)
        return self._diff(touched, revision)

    def adopt(self, name: str, kvs: Iterable[KeyValueLike]) -> list[LeaderChange]:
        """Every key under ``NAME/`` at :attr:`revision`, read for an election found in the
        watch: they join its queue. Returns the leadership changes."""
        self.unloaded.discard(name)
        election = self.elections.get(name)
        if election is None:
            return []
        prefix = election.prefix
        before = self._leaders(e.name for e in self._elections_of(prefix))
        for kv in sorted(kvs, key=lambda kv: (kv.create_revision, kv.key)):
            if not kv.key.startswith(prefix):
                continue
            held = self._keys.get(kv.key)
            if held is None:
                self.touched |= self._put(kv)
            elif kv.key not in election.candidates:
                election.add(held)
                self.touched = True
        return self._diff(before, self.revision)

    def load(self, kvs: Iterable[KeyValueLike], revision: int) -> list[LeaderChange]:
        """Replace everything with a snapshot (every key under each election's ``NAME/``);
        returns the leadership differences."""
        before = self._leaders(self.elections)
        held = list(self._keys.values())
        self.elections.clear()
        self._raw.clear()
        self._keys.clear()
        self._leases.clear()
        self._sorted = None
        self.unloaded.clear()
        self._gained.clear()
        self._lost.update(c.lease for c in held if c.lease)
        kvs = list(kvs)
        for kv in kvs:
            parsed = self.candidate_name(kv.key, kv.lease)
            if parsed is not None and parsed.name not in self.elections:
                self._new_election(parsed.name)
        for kv in sorted(kvs, key=lambda kv: (kv.create_revision, kv.key)):
            if kv.key not in self._keys:
                self._put(kv)
        for name in self.elections:
            before.setdefault(name, None)
        self.revision = revision
        return self._diff(before, revision, snapshot=True)

    def drain_leases(self) -> tuple[set[int], set[int]]:
        """The leases that came to and went from the held keys since the last call."""
        gained, lost = self._gained, self._lost
        self._gained, self._lost = set(), set()
        return gained, {lease for lease in lost if lease not in self._leases}

    def leases(self) -> set[int]:
        return set(self._leases)

    def keys_on_lease(self, lease: int) -> set[bytes]:
        """The keys held here (elections' queues) that are on ``lease``."""
        return set(self._leases.get(lease, ())) if lease else set()

    # -- reading ---------------------------------------------------------------
    def sorted(self) -> list[Election]:
        if self._sorted is None:
            self._sorted = [self.elections[name] for name in sorted(self.elections)]
        return self._sorted

    def leader_of(self, name: str) -> Candidate | None:
        election = self.elections.get(name)
        return election.leader if election is not None else None

    def to_json(self, ttl_of: Any = None) -> list[dict[str, Any]]:
        """Every election as ``elections --json`` prints it (``ttl_of(lease)`` → seconds)."""
        out = []
        for election in self.sorted():
            out.append(
                {
                    "name": name_text(election.name),
                    "kind": election.kind.value,
                    "candidates": [
                        {
                            "key": c.key_text,
                            "key_b64": base64.b64encode(c.key).decode("ascii"),  # exact bytes
                            "value": c.value_text(),
                            "value_b64": base64.b64encode(c.value).decode("ascii"),
                            "lease": c.lease_hex,
                            "ttl": ttl_of(c.lease) if ttl_of is not None and c.lease else None,
                            "create_revision": c.create_revision,
                            "stands_in": None if c.stands_in is None else name_text(c.stands_in),
                        }
                        for c in election.queue()
                    ],
                }
            )
        return out
