"""``etcd-registry-tui demo``: the dashboard on a private etcd with a simulated fleet."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys

from .registry.config import ConnectionConfig
from .registry.embedded import EmbeddedEtcd, EtcdBinaryNotFound, EtcdStartError
from .registry.fleet import Fleet


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


async def _run_headless(fleet: Fleet, endpoint: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(fleet.run())
    print(f"demo fleet running on {endpoint} (seed {fleet.seed}); Ctrl-C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await fleet.stop()


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
            asyncio.run(_run_headless(fleet, config.label))
            return 0
        from .app import run_app

        async def stop_etcd() -> None:
            if etcd is not None:
                await asyncio.to_thread(etcd.cleanup)

        return run_app(
            config,
            background=[fleet.run],
            on_shutdown=[fleet.stop, stop_etcd],
            subtitle=f"demo on {where} · seed {fleet.seed}",
        )
    finally:
        if etcd is not None:
            etcd.cleanup()
