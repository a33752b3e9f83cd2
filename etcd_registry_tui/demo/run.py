"""``etcd-registry-tui demo``: the dashboard on a private etcd with a simulated fleet."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import Awaitable, Callable

from ..registry.etcd.config import ConnectionConfig
from ..registry.etcd.connection import EtcdConnection
from ..registry.etcd.errors import RegistryError
from ..registry.layouts import Layout
from .embedded import EmbeddedEtcd, EtcdBinaryNotFound, EtcdStartError
from .fleet import ELECTION_INSTANCES, MIXED_LAYOUTS, MIXED_PREFIX, Fleet, validate_size
from .stop_signals import StopSignals


def _new_private_etcd(binary: str | None) -> EmbeddedEtcd | None:
    try:
        return EmbeddedEtcd(name="demo", binary=binary, log_level="warn")
    except EtcdBinaryNotFound as exc:
        print(f"etcd-registry-tui: error: {exc}", file=sys.stderr)
        return None


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
    """The demo; a private etcd (unless ``--endpoints``) stopped and its data dir removed on
    every way out, also SIGTERM or Ctrl-C while it starts."""
    validate_size(args.services, args.instances)  # before any etcd starts
    # Before the private etcd starts: it inherits the limit (etcd 3.5.1 does not start
    # under a soft limit of 64 open files).
    _allow_open_files(args.services * args.instances + ELECTION_INSTANCES + 2)
    if args.endpoints:
        return _run_fleet(args, config, None)
    signals = StopSignals()
    signals.install()
    etcd: EmbeddedEtcd | None = None
    try:
        with signals.held():  # its data dir exists once it does: no signal in between
            etcd = _new_private_etcd(args.etcd_binary)
        if etcd is None:
            return 1
        print(f"starting a private etcd on {etcd.endpoint} …", file=sys.stderr, flush=True)
        with signals.held():  # the process is tracked once spawned
            etcd.launch()
        try:
            etcd.start()
        except EtcdStartError as exc:
            print(f"etcd-registry-tui: error: {exc}", file=sys.stderr)
            return 1
        config = dataclasses.replace(config, endpoints=(etcd.endpoint,), user=None, password=None)
        return _run_fleet(args, config, etcd)
    finally:
        signals.ignore()
        try:
            if etcd is not None:
                etcd.cleanup()
        finally:
            signals.restore()


def _allow_open_files(instances: int) -> None:
    """Each instance answers on a port of its own: raise the soft limit of open files
    (within the hard one) so that the biggest demo fits, with room for everything else."""
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = instances + 512
        if soft != resource.RLIM_INFINITY and soft < wanted:
            top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            resource.setrlimit(resource.RLIMIT_NOFILE, (top, hard))


def _run_fleet(
    args: argparse.Namespace, config: ConnectionConfig, etcd: EmbeddedEtcd | None
) -> int:
    _allow_open_files(args.services * args.instances + ELECTION_INSTANCES + 2)
    mixed = getattr(args, "mixed", False)
    fleet = Fleet(
        config,
        services=args.services,
        max_instances=args.instances,
        seed=args.seed,
        answer=True,
        layouts=MIXED_LAYOUTS if mixed else (Layout.WALKTHROUGH,),
    )
    # A mixed fleet writes under several prefixes: the dashboard watches what they share.
    shown = dataclasses.replace(config, prefix=MIXED_PREFIX) if mixed else config
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
        shown,
        background=[_fleet_task(fleet)],
        on_shutdown=[fleet.stop, stop_etcd],
        subtitle=f"demo on {where} · seed {fleet.seed}",
    )
