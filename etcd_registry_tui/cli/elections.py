"""``elect`` and ``elections``: campaign in, and list, etcd elections and locks from the shell."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable
from typing import Any

from ..registry.elections.campaign import Election
from ..registry.elections.watch import ElectionWatcher
from ..registry.etcd.config import ConnectionConfig
from ..registry.etcd.connection import EtcdConnection
from ..registry.registration import validate_ttl
from ..registry.sanitize import safe_line
from .args import AddOptions, add_elections_prefix


def add_parsers(sub: Any, add_connection_options: AddOptions) -> None:
    p_elect = sub.add_parser(
        "elect",
        help="campaign in an election (as etcdctl elect); resign on Ctrl-C",
        description="Campaign in an election as etcdctl elect does: print the key and value"
        " once leading; Ctrl-C or SIGTERM resigns (exit 0; 130 while still waiting). Exits 1"
        " with one line as soon as leadership is lost: when the lease's local deadline (send"
        " time of the last acknowledged keep-alive + TTL) passes, when its key was not confirmed"
        " within the confirm window (TTL/3 + 2 x min(command timeout, TTL/4)), or its key or"
        " lease goes.",
    )
    p_elect.add_argument("name", help="election name, e.g. myjob or /elections/migrations")
    p_elect.add_argument("value", help="this candidate's proposal (shown as the leader's value)")
    p_elect.add_argument(
        "--ttl", type=int, default=60, help="lease TTL in whole seconds, at least 1 (default 60)"
    )
    add_connection_options(p_elect, True)

    p_list = sub.add_parser("elections", help="print every election and lock with its queue")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    add_elections_prefix(p_list)
    add_connection_options(p_list, True)


def _short(value: str, limit: int = 60) -> str:
    """A value on one line of the listing (the whole value is in --json)."""
    text = safe_line(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _nesting(name: str, stands_in: str | None, key: str) -> str:
    """Why a key is in the queue of ``name`` although it is not one of its candidates."""
    if stands_in == name:
        return ""
    if stands_in is None:
        return f"  {_short(key)} (not a candidate's key; it still comes first by age)"
    return f"  {_short(key)} (a candidate of the nested {_short(stands_in)})"


async def cmd_elections(config: ConnectionConfig, args: argparse.Namespace) -> int:
    async with EtcdConnection(config) as conn:
        watcher = ElectionWatcher(conn, tuple(getattr(args, "elections_prefix", None) or ()))
        await watcher.load_snapshot()
        leases = watcher.state.leases()
        ttls: dict[int, int] = {}
        for lease in sorted(leases):
            ttl, _, _ = await conn.time_to_live(lease)
            ttls[lease] = max(ttl, 0)
    doc = watcher.state.to_json(ttls.get)
    if args.json:
        print(json.dumps(doc, indent=2, ensure_ascii=True, allow_nan=False))
        return 0
    if not doc:
        print(f"No elections or locks at {config.label} (revision {watcher.state.revision}).")
        return 0
    for election in doc:
        print(f"{safe_line(election['name'])}  ({election['kind']})")
        for place, c in enumerate(election["candidates"]):
            role = "leader " if place == 0 else f"waiting #{place}"
            if election["kind"] == "lock":
                role = "holder " if place == 0 else f"waiting #{place}"
            value = _short(c["value"]) or "(empty)"
            nesting = _nesting(election["name"], c["stands_in"], c["key"])
            shown = f"lease {c['lease']}  {c['ttl']}s" if c["ttl"] is not None else "no lease"
            print(f"  {role:<10} {value:<24} {shown}{nesting}")
    return 0


async def _first(main: Awaitable[object], stop: asyncio.Event) -> bool:
    """Wait for ``main`` or ``stop``; True when ``main`` finished (its error raised)."""
    task = asyncio.ensure_future(main)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in (task, stopped):
            fut.cancel()
        await asyncio.gather(task, stopped, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


async def cmd_elect(config: ConnectionConfig, args: argparse.Namespace) -> int:
    """Campaign as ``etcdctl elect`` does: print the key and value once leading, resign
    on SIGINT/SIGTERM (0; 130 while still waiting), exit 1 as soon as leadership is lost
    (the lease's local deadline passed, the key went unconfirmed past the confirm window,
    or the key or lease went)."""
    validate_ttl(args.ttl)  # what `register` says for the same TTL, before connecting
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with EtcdConnection(config) as conn:
        candidacy = Election(conn, args.name).candidacy(args.value, ttl=args.ttl)
        await candidacy.start()
        try:
            if not await _first(candidacy.wait_elected(), stop):
                return 130  # interrupted while waiting: withdraw the candidacy
            print(safe_line(candidacy.key.decode("utf-8", "backslashreplace")), flush=True)
            print(safe_line(args.value), flush=True)
            await _first(candidacy.lost.wait(), stop)
            if candidacy.lost.is_set():
                # said at once, before any clean-up that may wait on an unreachable etcd
                print(
                    f"elect: leadership of {safe_line(args.name)} lost: {candidacy.reason}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        finally:
            await candidacy.resign()
    return 0
