"""A simulated fleet for the demo: services that register, heartbeat, crash and join.

Everything goes through :class:`ServiceRegistration`, the same library a real
Python service would use. The same seed gives the same fleet (names, ids, TTLs, how each
address answers and the order of crashes and joins; the ports are what the OS gives). Each
instance's address answers probes (:mod:`.answers`): most are healthy, some fail (HTTP 503),
some refuse; a crashed instance's port refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from ..registry.elections.campaign import Candidacy, Election
from ..registry.etcd.config import ConnectionConfig
from ..registry.etcd.connection import EtcdConnection
from ..registry.etcd.errors import ConfigError, RegistryError
from ..registry.layouts import Layout
from ..registry.registration import ServiceRegistration
from .answers import Answers, Health

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    "OrderShippingService",
    "PaymentService",
    "InventoryService",
    "CatalogService",
    "NotificationService",
    "CustomerService",
    "PricingService",
    "SearchService",
    "ReportingService",
    "AuthService",
]
TTLS = (10, 15, 20, 30)
ZONES = ("eu-west-1a", "eu-west-1b", "eu-central-1a")
#: etcd expires a lease on a ~500 ms tick; after its TTL plus this, ask whether it has.
EXPIRY_MARGIN = 1.0
#: The service whose instances hold an election (on their registration leases), its
#: election, and a lock two workers pass between them.
ELECTION_SERVICE = "MigrationJob"
ELECTION_NAME = f"/elections/{ELECTION_SERVICE}"
ELECTION_INSTANCES = 3
ELECTION_TTL = 10
LOCK_NAME = "/locks/NightlyReport"
#: How an instance answers on its address (drawn with the seed): mostly healthy.
HEALTH_ODDS = ((0.7, Health.HEALTHY), (0.85, Health.FAILING), (1.0, Health.REFUSING))
#: ``demo --mixed``: the services take these layouts in turn (each written as its
#: framework's registrar writes it; all under ``/``, which the dashboard then watches).
MIXED_LAYOUTS = (
    Layout.WALKTHROUGH,
    Layout.KRATOS,
    Layout.MICRO,
    Layout.DUBBO_APP,
    Layout.GOFRAME,
    Layout.COREDNS,
)
#: The prefix the dashboard watches in a mixed demo: every layout above starts with it.
MIXED_PREFIX = "/"
#: The biggest demo: more services or instances is a typo (and would grow without bound).
MAX_SERVICES = 100
MAX_INSTANCES = 50


def validate_size(services: int, max_instances: int) -> None:
    """Raise :class:`ConfigError` (one line) unless both sizes are within the demo's bounds."""
    for option, value, most in (
        ("--services", services, MAX_SERVICES),
        ("--instances", max_instances, MAX_INSTANCES),
    ):
        if value < 1:
            raise ConfigError(f"{option} {value} must be at least 1")
        if value > most:
            raise ConfigError(f"{option} {value} is too many for the demo: at most {most}")


@dataclass(frozen=True, slots=True)
class FleetPlan:
    """What the fleet starts with."""

    services: dict[str, int]  # name -> initial instance count
    seed: int


class _LegacyRegistration(ServiceRegistration):
    """An old service that writes ``key=value`` text instead of JSON."""

    def payload(self) -> bytes:
        return f"status=UP;addr={self.address}".encode()


class Fleet:
    """Runs in the background next to the dashboard (``await fleet.run()``)."""

    def __init__(
        self,
        config: ConnectionConfig,
        services: int = 5,
        max_instances: int = 6,
        seed: int | None = None,
        churn_every: tuple[float, float] = (4.0, 9.0),
        ttls: Sequence[int] = TTLS,
        elections: bool = True,
        answer: bool = False,
        layouts: Sequence[Layout] = (Layout.WALKTHROUGH,),
    ) -> None:
        """``answer``: each address answers probes (:mod:`.answers`, as the demo does);
        without it addresses are fixed ports where nothing listens (the screenshots').
        ``layouts``: the services take these registry layouts in turn (see MIXED_LAYOUTS)."""
        validate_size(services, max_instances)
        self.config = config
        self.seed = seed if seed is not None else random.randrange(2**31)
        self.rng = random.Random(self.seed)
        self.max_instances = max_instances
        self.min_instances = min(2, max_instances)
        self.churn_every = churn_every
        self.ttls = tuple(ttls)
        self.conn = EtcdConnection(config)
        names = [SERVICE_NAMES[i % len(SERVICE_NAMES)] for i in range(services)]
        names = [n if i < len(SERVICE_NAMES) else f"{n}{i}" for i, n in enumerate(names)]
        self.plan = FleetPlan(
            {n: self.rng.randint(self.min_instances, max_instances) for n in names}, self.seed
        )
        self.layouts = {n: layouts[i % len(layouts)] for i, n in enumerate(names)}
        self.live: dict[str, ServiceRegistration] = {}  # key -> registration
        self.crashed = 0
        self.joined = 0
        #: Each instance's address answers (a loopback port of its own), as drawn from the
        #: seed by its own generator, so the fleet's plan is the same with or without it.
        self.answer = answer
        self.answers = Answers()
        self._port = 5000  # without ``answer``: the next fixed port
        self.health_rng = random.Random(f"health-{self.seed}")
        self.health: dict[str, Health] = {}  # key -> how its address answers
        self._static_keys: list[bytes] = []
        #: Crashed instances whose keys may still linger (until etcd expires their lease),
        #: by key, with when to ask etcd whether it has. Forgotten once it has, so a long
        #: demo keeps only the last TTL's worth of crashes (stop() deletes what lingers).
        self.gone: dict[str, tuple[float, ServiceRegistration]] = {}
        self.elections = elections
        self.steps = 0
        #: Registry key of a MigrationJob instance -> its candidacy (on the same lease).
        self.candidates: dict[str, Candidacy] = {}
        self.lockers: list[Candidacy] = []
        self.failovers = 0

    # -- building instances --------------------------------------------------
    def _draw_health(self) -> Health:
        draw = self.health_rng.random()
        return next(health for odds, health in HEALTH_ODDS if draw < odds)

    def _address(self, fixed: int | None = None) -> str:
        """A fixed address without ``answer``; else a port reserved for the instance (made
        to answer by :meth:`_start`)."""
        if self.answer:
            return self.answers.reserve()
        if fixed is None:
            self._port += 1
            fixed = self._port
        return f"http://127.0.0.1:{fixed}"

    def _new_registration(self, service: str) -> ServiceRegistration:
        """An instance of ``service``; with ``answer``, its address opens when it starts."""
        instance_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        address, ttl = self._address(), self.rng.choice(self.ttls)
        extra = {"Zone": self.rng.choice(ZONES), "Version": f"1.{self.rng.randint(0, 9)}.0"}
        layout = self.layouts.get(service, Layout.WALKTHROUGH)
        reg = ServiceRegistration(
            self.conn,
            service,
            address,
            ttl=ttl,
            instance_id=instance_id,
            prefix=self.config.prefix,
            # A framework's layout has no room for the walkthrough's extra fields.
            extra=extra if layout is Layout.WALKTHROUGH else None,
            layout=layout,
        )
        self.health[reg.key] = self._draw_health()
        return reg

    def initial_registrations(self) -> list[ServiceRegistration]:
        return [
            self._new_registration(name)
            for name, count in self.plan.services.items()
            for _ in range(count)
        ]

    async def _start(self, reg: ServiceRegistration) -> None:
        self.live[reg.key] = reg  # first: stop() then revokes it even if cancelled midway
        await self.answers.serve(reg.address, self.health.get(reg.key, Health.HEALTHY))
        try:
            await reg.register()
        except RegistryError:
            del self.live[reg.key]
            self.answers.close(reg.address)
            raise
        reg.start_keepalive()

    async def _add_oddities(self) -> None:
        prefix = self.config.prefix
        # A legacy service whose value is not JSON, kept alive like any other.
        odd = _LegacyRegistration(
            self.conn, "LegacyBillingService", self._address(4999), ttl=30, instance_id="legacy-1",
            prefix=prefix,
        )  # fmt: skip
        await self._start(odd)
        # A key without a lease: a permanent entry.
        key = f"{prefix}ConfigService/static-1".encode()
        address = self._address(4000)
        await self.answers.serve(address, Health.HEALTHY)
        value = {"Id": "static-1", "Name": "ConfigService", "Address": address}
        self._static_keys.append(key)
        await self.conn.put(key, json.dumps(value).encode())

    # -- the life of the fleet -----------------------------------------------
    async def start(self) -> None:
        await self.conn.connect()
        await asyncio.gather(*(self._start(r) for r in self.initial_registrations()))
        await self._add_oddities()
        if self.elections:
            for _ in range(ELECTION_INSTANCES):
                await self._join_election()
            for worker in ("report-worker-1", "report-worker-2"):
                await self._lock_enter(worker)

    # -- the election and the lock -------------------------------------------
    async def _join_election(self) -> str:
        """A MigrationJob instance registers and campaigns on its registration lease:
        when it crashes, its instance and its candidacy go together."""
        instance_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        reg = ServiceRegistration(
            self.conn, ELECTION_SERVICE, self._address(), ttl=ELECTION_TTL, instance_id=instance_id,
            prefix=self.config.prefix,
        )  # fmt: skip
        self.health[reg.key] = self._draw_health()
        await self._start(reg)
        assert reg.lease_id is not None
        candidacy = Election(self.conn, ELECTION_NAME).candidacy(
            f"{instance_id[:8]} {reg.address}", lease=reg.lease_id
        )
        await candidacy.start()
        self.candidates[reg.key] = candidacy
        return f"join {reg.key} (candidate in {ELECTION_NAME})"

    async def _election_leader(self) -> str | None:
        """Registry key of the MigrationJob instance that leads, as etcd says."""
        leader = await Election(self.conn, ELECTION_NAME).leader()
        if leader is None:
            return None
        return next((k for k, c in self.candidates.items() if c.key == leader.key), None)

    async def _crash_leader(self) -> str | None:
        key = await self._election_leader()
        if key is None or len(self.candidates) < 2:
            return None
        victim = self.live.get(key)
        if victim is None:
            return None
        await self._crash(victim)
        await self.candidates.pop(key).abandon()
        self.failovers += 1
        return f"crash leader {key} of {ELECTION_NAME}"

    async def _lock_enter(self, worker: str) -> None:
        locker = Election(self.conn, LOCK_NAME).candidacy(b"", ttl=ELECTION_TTL)
        await locker.start()
        self.lockers.append(locker)

    async def _lock_handover(self) -> str | None:
        """The lock's holder finishes: it releases (resigns) and queues again."""
        if not self.lockers:
            return None
        holder = min(self.lockers, key=lambda c: c.create_revision)
        self.lockers.remove(holder)
        await holder.resign()
        await self._lock_enter("again")
        return f"release {LOCK_NAME}"

    async def _crash(self, victim: ServiceRegistration) -> None:
        """A crash: heartbeats stop, nobody unregisters; etcd expires the lease."""
        await victim.stop_keepalive()
        del self.live[victim.key]
        self.answers.close(victim.address)  # the process is gone: its port refuses
        last = victim.last_heartbeat or time.monotonic()
        ttl = victim.last_ttl or victim.ttl
        self.gone[victim.key] = (last + ttl + EXPIRY_MARGIN, victim)
        self.crashed += 1

    async def _forget_expired(self) -> None:
        """Drop crashed instances whose lease etcd has expired (so their key is gone)."""
        now = time.monotonic()
        for key, (check_at, reg) in list(self.gone.items()):
            if check_at > now:
                continue
            lease = reg.lease_id
            if lease is None:
                del self.gone[key]
                continue
            try:
                ttl, _, _ = await self.conn.time_to_live(lease)
            except RegistryError:
                return  # ask again at the next step
            if ttl < 0:
                del self.gone[key]
                self.health.pop(key, None)
            else:  # not yet (a leader change renews every lease): ask again after it
                self.gone[key] = (now + ttl + EXPIRY_MARGIN, reg)

    async def churn_once(self) -> str:
        """One step: an instance crashes (its lease will expire) or a new one joins.

        With elections, every fourth step from the third crashes the MigrationJob leader
        (a failover within the demo's first minute), the step after brings a new
        candidate, and every fifth step the lock changes hands."""
        await self._forget_expired()
        self.steps += 1
        if self.elections:
            what: str | None = None
            if self.steps % 4 == 3:
                what = await self._crash_leader()
            elif self.steps % 4 == 0 and len(self.candidates) < ELECTION_INSTANCES:
                what = await self._join_election()
            elif self.steps % 5 == 2:
                what = await self._lock_handover()
            if what is not None:
                return what
        by_service: dict[str, list[ServiceRegistration]] = {}
        for reg in self.live.values():
            by_service.setdefault(reg.name, []).append(reg)
        service = self.rng.choice(sorted(self.plan.services))
        members = sorted(by_service.get(service, []), key=lambda r: r.key)
        crash = len(members) > self.min_instances and (
            len(members) >= self.max_instances or self.rng.random() < 0.5
        )
        if crash:
            victim = self.rng.choice(members)
            await self._crash(victim)
            return f"crash {victim.key}"
        reg = self._new_registration(service)
        await self._start(reg)
        self.joined += 1
        return f"join {reg.key}"

    async def run(self) -> None:
        """Start the fleet, then crash and join instances until cancelled."""
        await self.start()
        await self.churn()

    async def churn(self) -> None:
        """Crash and join instances until cancelled (after :meth:`start`)."""
        while True:
            await asyncio.sleep(self.rng.uniform(*self.churn_every))
            try:
                what = await self.churn_once()
                log.info("fleet: %s", what)
            except RegistryError as exc:
                log.warning("fleet step failed: %s", exc)

    async def stop(self) -> None:
        """Remove every key the fleet wrote (revoke leases, delete static keys)."""
        regs = list(self.live.values()) + [reg for _, reg in self.gone.values()]
        self.live.clear()
        self.gone.clear()
        candidacies = [*self.candidates.values(), *self.lockers]
        self.candidates.clear()
        self.lockers.clear()
        with contextlib.suppress(Exception):
            await asyncio.gather(*(c.resign() for c in candidacies), return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.gather(*(r.unregister() for r in regs), return_exceptions=True)
        for key in self._static_keys:
            with contextlib.suppress(Exception):
                await self.conn.delete(key)
        await self.answers.close_all()
        self.health.clear()
        await self.conn.close()
