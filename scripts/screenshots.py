"""Regenerate ``screenshots/*.svg`` from the real dashboard on a real (private) etcd.

A private EmbeddedEtcd gets a deterministic fleet (``Fleet`` with a fixed seed: five
services, a legacy service whose value is not JSON, a key without a lease), plus a key
that does not fit the ``{prefix}{service}/{id}`` format and a PaymentService instance
whose heartbeats have stopped (short TTL, no keep-alive). The dashboard runs headless
(``app.run_test(size=(120, 36))``) and is photographed once it is live and every lease
countdown is known:

* ``main.svg``      the main view: services, instances, countdowns, detail pane, events;
* ``expiring.svg``  the instance about to expire highlighted, its countdown red;
* ``inspect.svg``   the inspect view of an instance (``i``);
* ``register.svg``  the register form (``r``);
* ``readonly.svg``  a second dashboard started read-only, the non-JSON value highlighted;
* ``elections.svg`` the elections view (``e``) right after the MigrationJob leader's lease
  was revoked: the next candidate leads, the LEADER line is in the event log, and the
  fleet's lock has a holder and a waiter;
* ``alarm.svg``     the mass-expiry banner: three BatchWorker instances whose heartbeats
  stopped expire together;
* ``history.svg``   the history view (``h``) stepped back to the last revision at which
  the three BatchWorker instances were all registered;
* ``mixed.svg``     ``demo --mixed``'s fleet under ``--prefix /``: the walkthrough's services
  beside Kratos, go-micro, dubbo-go, GoFrame and CoreDNS ones, a Kratos instance highlighted;
* ``probes.svg``    probes on (``P``): a ProbedService whose instances answer over HTTP, refuse,
  hang (a server that accepts and never replies) or have no address, all on live leases,
  next to the fleet's addresses where nothing listens.

Everything is stopped at the end (the fleet's leases revoked, etcd stopped, its data
dir removed). Usage: ``python scripts/screenshots.py [--out DIR]`` (default: the
repository's ``screenshots/``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from textual.pilot import Pilot  # noqa: E402
from textual.widgets import Input  # noqa: E402

from etcd_registry_tui.app import RegistryApp  # noqa: E402
from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.demo.fleet import (  # noqa: E402
    ELECTION_NAME,
    MIXED_LAYOUTS,
    MIXED_PREFIX,
    Fleet,
)
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402
from etcd_registry_tui.registry.events import ConnState  # noqa: E402
from etcd_registry_tui.registry.registration import ServiceRegistration  # noqa: E402
from etcd_registry_tui.screens.inspect import InspectScreen  # noqa: E402
from etcd_registry_tui.screens.register import RegisterScreen  # noqa: E402

PREFIX = "/services/"
SIZE = (120, 36)
SEED = 20240611
NAMES = (
    "main.svg",
    "expiring.svg",
    "inspect.svg",
    "register.svg",
    "readonly.svg",
    "elections.svg",
    "probes.svg",
    "alarm.svg",
    "history.svg",
    "mixed.svg",
)
PROBED_SERVICE = "ProbedService"
#: Wider: the marks sit between the address and the countdown.
PROBES_SIZE = (160, 36)

#: The instance whose heartbeats stopped: TTL short enough to run out during the run.
EXPIRING_SERVICE = "PaymentService"
EXPIRING_TTL = 15
#: Photographed when its countdown is this low: red ("under 5 s") and, under a third of
#: the TTL, counted as expiring in its service's header.
EXPIRING_SHOT_AT = (2.0, 3.9)


def fixed_id(rng: Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


class Scene:
    """The fleet and the extra keys written to etcd for the screenshots."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        self.fleet = Fleet(config, services=5, max_instances=4, seed=SEED)
        self.conn = EtcdConnection(config)
        self.rng = Random(SEED + 1)
        self.expiring: ServiceRegistration | None = None
        self.extra: list[ServiceRegistration] = []

    async def start(self) -> None:
        await self.fleet.start()
        await self.conn.connect()
        # A key that does not fit {prefix}{service}/{id}: shown as an unrecognised key.
        await self.conn.put(
            f"{PREFIX}orphan-entry".encode(),
            json.dumps({"Id": "orphan-entry", "Address": "http://127.0.0.1:4100"}).encode(),
        )
        await self.start_expiring()

    async def start_expiring(self) -> ServiceRegistration:
        """Register an instance and never send a heartbeat: a crashed service."""
        if self.expiring is not None:
            await self.expiring.unregister()
        self.expiring = ServiceRegistration(
            self.conn,
            EXPIRING_SERVICE,
            "http://127.0.0.1:5301",
            ttl=EXPIRING_TTL,
            instance_id=fixed_id(Random(SEED + 2)),
            prefix=PREFIX,
            extra={"Zone": "eu-west-1b", "Version": "1.4.0"},
        )
        await self.expiring.register()
        return self.expiring

    @property
    def expiring_key(self) -> bytes:
        assert self.expiring is not None
        return self.expiring.key.encode()

    async def some_events(self) -> None:
        """A join, an update and a short-lived key, so the event log has something."""
        joined = ServiceRegistration(
            self.conn,
            "CatalogService",
            "http://127.0.0.1:5201",
            ttl=30,
            instance_id=fixed_id(self.rng),
            prefix=PREFIX,
            extra={"Zone": "eu-central-1a", "Version": "2.0.0"},
        )
        await joined.register()
        joined.start_keepalive()
        self.extra.append(joined)
        static = f"{PREFIX}ConfigService/static-1".encode()
        value = {
            "Id": "static-1",
            "Name": "ConfigService",
            "Address": "http://127.0.0.1:4000",
            "Version": "2",
        }
        await self.conn.put(static, json.dumps(value).encode())
        temp = f"{PREFIX}MigrationJob/run-42".encode()
        await self.conn.put(temp, json.dumps({"Id": "run-42", "Name": "MigrationJob"}).encode())
        await self.conn.delete(temp)

    async def stop(self) -> None:
        for reg in [*self.extra, *([self.expiring] if self.expiring else [])]:
            with contextlib.suppress(Exception):  # best effort on the way out
                await reg.unregister()
        await self.conn.delete(f"{PREFIX}orphan-entry".encode())
        await self.fleet.stop()
        await self.conn.close()


async def until(pilot: Pilot, cond: Callable[[], object], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await pilot.pause(0.05)


def settled(app: RegistryApp, count: int) -> bool:
    """Live, showing ``count`` keys, every lease countdown known."""
    session = app.session
    if session.status.state is not ConnState.LIVE or len(session.state) != count:
        return False
    if app.registry_tree.row_count == 0:
        return False
    return all(session.ttl(inst.lease)[0] is not None for inst in session.state if inst.lease)


async def expected_count(conn: EtcdConnection) -> int:
    kvs, _ = await conn.get_prefix(PREFIX.encode())
    return len(kvs)


async def shoot(app: RegistryApp, pilot: Pilot, out: Path, name: str) -> Path:
    app.clear_notifications()
    # Countdowns are repainted by the 1 Hz tick: tick now, so none shows a stale value
    # (or "lease ?" for a lease the tracker learnt about since the last tick).
    app._tick()
    await pilot.pause()
    path = Path(app.save_screenshot(name, str(out)))
    print(f"wrote {path}", flush=True)
    return path


def first_instance_of(app: RegistryApp, service: str) -> bytes:
    group = app.session.state.groups[service]
    return group.sorted_instances()[0].raw_key


async def dashboard_shots(scene: Scene, out: Path) -> None:
    app = RegistryApp(scene.config)
    async with app.run_test(size=SIZE) as pilot:
        count = await expected_count(scene.conn)
        await until(pilot, lambda: settled(app, count), "the dashboard to be live")
        await scene.some_events()
        count = await expected_count(scene.conn)
        await until(pilot, lambda: settled(app, count), "the new events")

        def logged(kind: str, key: str) -> bool:
            return any(
                e.kind.value == kind and e.key.endswith(key)
                for e in app.query_one("#events").entries
            )

        # The live events themselves (the log also holds the history read at start).
        await until(pilot, lambda: logged("UPDATE", "ConfigService/static-1"), "the UPDATE")
        await until(pilot, lambda: logged("DEREGISTERED", "MigrationJob/run-42"), "the removal")
        app.registry_tree.select_key(first_instance_of(app, "CatalogService"))
        await shoot(app, pilot, out, "main.svg")

        app.registry_tree.select_key(first_instance_of(app, "OrderShippingService"))
        await pilot.press("i")
        await until(pilot, lambda: isinstance(app.screen, InspectScreen), "the inspect view")
        await shoot(app, pilot, out, "inspect.svg")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, InspectScreen), "the main view")

        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, RegisterScreen), "the register form")
        form = app.screen
        # The form proposes a free port; a fixed one keeps the picture stable.
        form.query_one("#address", Input).value = "http://localhost:5000"
        form.query_one("#extra", Input).value = '{"Zone": "eu-west-1a"}'
        form.query_one("#name", Input).focus()
        await shoot(app, pilot, out, "register.svg")
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, RegisterScreen), "the main view")

        # The crashed instance: photographed when its lease is about to run out.
        remaining = app.session.ttl(app.session.state.get(scene.expiring_key).lease)[0]
        if remaining is None or remaining < EXPIRING_SHOT_AT[0] + 1:
            await scene.start_expiring()  # too late already (a slow machine): once more
        key = scene.expiring_key

        def about_to_expire() -> bool:
            inst = app.session.state.get(key)
            if inst is None:
                return False
            left = app.session.ttl(inst.lease)[0]
            return left is not None and EXPIRING_SHOT_AT[0] < left <= EXPIRING_SHOT_AT[1]

        await until(pilot, about_to_expire, "the instance to be about to expire", timeout=40)
        app.registry_tree.select_key(key)
        await shoot(app, pilot, out, "expiring.svg")
        await elections_shot(app, pilot, scene, out)
        await alarm_and_history_shots(app, pilot, scene, out)
        await app.shutdown_session()


async def alarm_and_history_shots(app: RegistryApp, pilot: Pilot, scene: Scene, out: Path) -> None:
    """Three instances of one service stop their heartbeats together: the alarm. Then the
    history view, stepped back to before they registered."""
    from etcd_registry_tui.screens.history import HistoryScreen

    # Certain expiries raise MASS EXPIRY: on a loaded machine a lease read too late reads
    # LEASE ENDED instead (at most POSSIBLE MASS EXPIRY), so another batch is started until
    # the certain alarm is up (at most three).
    for attempt in range(3):
        batch = [
            ServiceRegistration(
                scene.conn,
                "BatchWorker",
                f"http://127.0.0.1:{5400 + n}",
                ttl=3,
                instance_id=f"batch-{attempt}{n}" if attempt else f"batch-{n}",
                prefix=PREFIX,
            )  # fmt: skip
            for n in range(3)
        ]
        for reg in batch:
            await reg.register()  # and never a heartbeat: they expire in 3 s
        try:
            await until(
                pilot,
                lambda: (app.alarm.banner(time.time()) or "").startswith("MASS EXPIRY"),
                "the alarm",
                15,
            )
            break
        except TimeoutError:
            if attempt == 2:
                raise
    await shoot(app, pilot, out, "alarm.svg")

    await pilot.press("h")
    await until(pilot, lambda: isinstance(app.screen, HistoryScreen), "the history view")
    screen = app.screen
    assert isinstance(screen, HistoryScreen)

    def batch_workers() -> int:
        return sum(1 for i in screen.view.state if i.service == "BatchWorker")

    for _ in range(20):  # back past the expiries, to when all three were registered
        if batch_workers() == 3:
            break
        await pilot.press("left")
    await shoot(app, pilot, out, "history.svg")
    await pilot.press("escape")


async def elections_shot(app: RegistryApp, pilot: Pilot, scene: Scene, out: Path) -> None:
    """A failover: the MigrationJob leader's lease revoked, the next candidate leads."""
    elections = app.elections.state
    await until(pilot, lambda: len(elections.elections) == 2, "the election and the lock")
    leader = elections.leader_of(ELECTION_NAME)
    assert leader is not None
    await pilot.press("e")
    await scene.conn.revoke(leader.lease)
    await until(
        pilot,
        lambda: (now := elections.leader_of(ELECTION_NAME)) is not None and now.key != leader.key,
        "the next MigrationJob candidate to lead",
    )
    await until(
        pilot,
        lambda: all(
            app.elections.ttl(c.lease)[0] is not None
            for e in elections.elections.values()
            for c in e.candidates.values()
        ),
        "every candidate's countdown",
    )
    await pilot.press("down")  # the new leader's line
    await shoot(app, pilot, out, "elections.svg")
    await pilot.press("e")


async def readonly_shot(scene: Scene, out: Path) -> None:
    app = RegistryApp(scene.config, read_only=True)
    async with app.run_test(size=SIZE) as pilot:
        count = await expected_count(scene.conn)
        await until(pilot, lambda: settled(app, count), "the read-only dashboard to be live")
        app.registry_tree.select_key(first_instance_of(app, "LegacyBillingService"))
        await shoot(app, pilot, out, "readonly.svg")
        await app.shutdown_session()


@contextlib.asynccontextmanager
async def loopback_servers() -> AsyncIterator[tuple[int, int, int]]:
    """(an HTTP server's port, a closed port, a port that accepts and never answers)."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(1024):
                pass
        writer.close()

    up = await asyncio.start_server(http, "127.0.0.1", 0)
    hung = await asyncio.start_server(silent, "127.0.0.1", 0)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    try:
        yield (
            up.sockets[0].getsockname()[1],
            closed.getsockname()[1],
            hung.sockets[0].getsockname()[1],
        )
    finally:
        closed.close()
        for server in (up, hung):
            server.close()


async def probes_shot(scene: Scene, out: Path) -> None:
    async with loopback_servers() as (up, refused, hung):
        lease, _ = await scene.conn.grant(300)
        instances = {
            "api-1": f"http://127.0.0.1:{up}/health",
            "api-2": f"http://127.0.0.1:{refused}",
            "api-3": f"http://127.0.0.1:{hung}",
            "worker-1": None,
        }
        keys = []
        for instance_id, address in instances.items():
            value = {"Id": instance_id, "Name": PROBED_SERVICE}
            if address is not None:
                value["Address"] = address
            key = f"{PREFIX}{PROBED_SERVICE}/{instance_id}".encode()
            await scene.conn.put(key, json.dumps(value).encode(), lease=lease)
            keys.append(key)
        try:
            app = RegistryApp(scene.config, read_only=True)
            async with app.run_test(size=PROBES_SIZE) as pilot:
                count = await expected_count(scene.conn)
                await until(pilot, lambda: settled(app, count), "the dashboard to be live")
                await pilot.press("P")
                await until(
                    pilot,
                    lambda: all(key in app.prober.results for key in keys),
                    "every probe of ProbedService",
                )
                app.probes.push_marks()
                app.registry_tree.select_key(keys[0])
                app.registry_tree.scroll_to(y=app.registry_tree.cursor_index - 2, animate=False)
                await shoot(app, pilot, out, "probes.svg")
                await app.shutdown_session()
        finally:
            await scene.conn.revoke(lease)


async def mixed_shot(endpoint: str, out: Path) -> None:
    """``demo --mixed``'s fleet (each service in a framework's layout) watched under ``/``,
    a Kratos instance highlighted: its parsed fields in the detail pane."""
    fleet_config = ConnectionConfig(endpoints=(endpoint,), prefix=PREFIX)
    fleet = Fleet(
        fleet_config, services=len(MIXED_LAYOUTS), max_instances=2, seed=SEED,
        elections=False, layouts=MIXED_LAYOUTS,
    )  # fmt: skip
    await fleet.start()
    try:
        config = ConnectionConfig(endpoints=(endpoint,), prefix=MIXED_PREFIX)
        app = RegistryApp(config, read_only=True)
        async with app.run_test(size=SIZE) as pilot:
            kvs, _ = await fleet.conn.get_prefix(MIXED_PREFIX.encode())
            await until(pilot, lambda: settled(app, len(kvs)), "the mixed fleet")
            kratos = next(g for g in app.session.state.groups if g.endswith("· kratos"))
            app.registry_tree.select_key(first_instance_of(app, kratos))
            await shoot(app, pilot, out, "mixed.svg")
            await app.shutdown_session()
    finally:
        await fleet.stop()


async def run(endpoint: str, out: Path) -> None:
    config = ConnectionConfig(endpoints=(endpoint,), prefix=PREFIX)
    scene = Scene(config)
    await scene.start()
    try:
        await dashboard_shots(scene, out)
        if scene.expiring is not None:  # gone by now or about to: not part of the next shot
            await scene.expiring.unregister()
            scene.expiring = None
        await readonly_shot(scene, out)
        await probes_shot(scene, out)
    finally:
        await scene.stop()
    await mixed_shot(endpoint, out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "screenshots", help="directory for the SVG files"
    )
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    etcd = EmbeddedEtcd(name="screenshots", log_level="warn")
    etcd.start()
    try:
        asyncio.run(run(etcd.endpoint, out))
    finally:
        etcd.cleanup()
    missing = [name for name in NAMES if not (out / name).is_file()]
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
