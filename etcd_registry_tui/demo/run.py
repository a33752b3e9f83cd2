"""``etcd-registry-tui demo``: the dashboard on a private etcd with a simulated fleet."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable

from ..registry.config import ConnectionConfig
from ..registry.connection import EtcdConnection
from ..registry.errors import RegistryError
from .embedded import EmbeddedEtcd, EtcdBinaryNotFound, EtcdStartError
from .fleet import Fleet


def _start_private_etcd(binary: str | None) -> EmbeddedEtcd | None:
    try:
        etcd = EmbeddedEtcd(name="demo", binary=binary, log_level="warn")
    except EtcdBinaryNotFound as exc:
        print(f"etcd-registry-tui: error: {exc}", file=sys.stderr)
        return None
    print(f"starting a private etcd on {etcd.endpoint} …", file=sys.stderr, flush=True)
    try:
        etcd.start()
    except EtcdStartError as exc:
        etcd.cleanup()
        print(f"etcd-registry-tui: error: {exc}", file=sys.stderr)
        return None
    return etcd


async def _run_headless(fleet: Fleet, endpoint: str) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    stopped = asyncio.create_task(stop.wait())
    task = asyncio.create_task(fleet.start())
    try:
        # "Running" only once it is: an etcd that cannot be reached is an error, said once.
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            return 0  # stopped while starting
        task.result()
        print(f"demo fleet running on {endpoint} (seed {fleet.seed}); Ctrl-C to stop", flush=True)
        task = asyncio.create_task(fleet.churn())
        await stopped
        return 0
    finally:
        for pending in (task, stopped):
            pending.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
        await fleet.stop()


async def _check_reachable(config: ConnectionConfig) -> None:
    """Raise :class:`RegistryError` (one line for the user) unless etcd answers."""
    async with EtcdConnection(config):
        pass


def _fleet_task(fleet: Fleet) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        try:
            await fleet.run()
        except RegistryError as exc:  # shown on screen: say whose failure it is
            raise RegistryError(f"the demo fleet stopped: {exc}", exc.hint) from exc

    return run


def run_demo(args: argparse.Namespace, config: ConnectionConfig) -> int:
    etcd: EmbeddedEtcd | None = None
    if not args.endpoints:
        etcd = _start_private_etcd(args.etcd_binary)
        if etcd is None:
            return 1
        config = dataclasses.replace(config, endpoints=(etcd.endpoint,), user=None, password=None)
    try:
        fleet = Fleet(config, services=args.services, max_instances=args.instances, seed=args.seed)
        where = f"private etcd {etcd.endpoint}" if etcd else config.label
        if args.no_ui:
            return asyncio.run(_run_headless(fleet, config.label))
        if etcd is None:  # someone else's etcd: fail here, not behind the dashboard
            asyncio.run(_check_reachable(config))
        from ..app import run_app

        async def stop_etcd() -> None:
            if etcd is not None:
                await asyncio.to_thread(etcd.cleanup)

        return run_app(
            config,
            background=[_fleet_task(fleet)],
            on_shutdown=[fleet.stop, stop_etcd],
            subtitle=f"demo on {where} · seed {fleet.seed}",
        )
    finally:
        if etcd is not None:
            etcd.cleanup()
