"""Small helpers shared by the data-layer tests (polling, views of etcd, a running watcher).

Nothing here mocks etcd: every view comes from a real etcd, through etcdctl or the
connection under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from etcd_registry_tui.registry.etcd.config import ConnectionConfig
from etcd_registry_tui.registry.etcd.connection import EtcdConnection
from etcd_registry_tui.registry.events import ChangeBatch, ConnectionStatus, ConnState
from etcd_registry_tui.registry.watcher import RegistryWatcher

View = dict[bytes, tuple[bytes, int, int]]

#: Every "wait until" in the tests waits this many times longer than it says before it fails:
#: a passing test does not wait longer, and a loaded machine (CI, three xdist workers on two
#: cores) no longer fails a test whose condition was only late. Never applied to what a test
#: measures or asserts as a bound. ``ETCD_TUI_TEST_SLACK=1`` runs with the stated timeouts.
SLACK = float(os.environ.get("ETCD_TUI_TEST_SLACK", "3"))


def slack(seconds: float) -> float:
    """A test's wait, with the load slack (:data:`SLACK`)."""
    return seconds * SLACK


async def eventually(
    cond: Callable[[], Any | Awaitable[Any]],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> Any:
    """Poll ``cond`` (sync or async) until it returns something truthy; return that.

    Raises AssertionError after ``timeout`` seconds, naming ``message`` and the last
    result (or the last exception ``cond`` raised).
    """
    deadline = time.monotonic() + slack(timeout)
    last: Any = None
    last_exc: BaseException | None = None
    while True:
        try:
            result = cond()
            if inspect.isawaitable(result):
                result = await result
            last, last_exc = result, None
            if result:
                return result
        except AssertionError as exc:  # conditions may assert to explain themselves
            last_exc = exc
        if time.monotonic() >= deadline:
            text = message() if callable(message) else message
            detail = f"last exception: {last_exc!r}" if last_exc else f"last result: {last!r}"
            raise AssertionError(
                f"condition not met within {slack(timeout):g}s{': ' + text if text else ''}"
                f" ({detail})"
            )
        await asyncio.sleep(interval)


def etcdctl_view(etcdctl: Any, prefix: str | bytes) -> View:
    """``etcdctl get --prefix`` as key -> (value, lease, mod_revision)."""
    kvs, _ = etcdctl.get_prefix(prefix)
    return {k: (kv.value, kv.lease, kv.mod_revision) for k, kv in kvs.items()}


async def conn_view(conn: EtcdConnection, prefix: str | bytes) -> tuple[View, int]:
    """A fresh Range of ``prefix`` through the connection: (view, revision)."""
    raw = prefix.encode() if isinstance(prefix, str) else prefix
    kvs, revision = await conn.get_prefix(raw)
    return {kv.key: (kv.value, kv.lease, kv.mod_revision) for kv in kvs}, revision


def describe_diff(left: View, right: View, names: tuple[str, str] = ("watcher", "etcd")) -> str:
    only_l = sorted(set(left) - set(right))
    only_r = sorted(set(right) - set(left))
    differ = sorted(k for k in set(left) & set(right) if left[k] != right[k])
    parts = []
    if only_l:
        parts.append(f"only in {names[0]}: {only_l[:5]}")
    if only_r:
        parts.append(f"only in {names[1]}: {only_r[:5]}")
    for k in differ[:5]:
        parts.append(f"{k!r}: {names[0]}={left[k]!r} {names[1]}={right[k]!r}")
    return "; ".join(parts) or "equal"


async def assert_matches_etcdctl(
    watcher: RegistryWatcher, etcdctl: Any, prefix: str | None = None, timeout: float = 20.0
) -> View:
    """Wait until the watcher's state equals ``etcdctl get --prefix``; return that view."""
    prefix = prefix or watcher.prefix
    seen: dict[str, View] = {}

    async def equal() -> bool:
        expected = await asyncio.to_thread(etcdctl_view, etcdctl, prefix)
        seen["etcd"] = expected
        seen["watcher"] = watcher.state.as_dict()
        return seen["watcher"] == expected

    await eventually(
        equal,
        timeout=timeout,
        interval=0.2,
        message=lambda: describe_diff(seen.get("watcher", {}), seen.get("etcd", {})),
    )
    return seen["etcd"]


@dataclass
class WatcherRun:
    """A RegistryWatcher running in a task, with everything it reported recorded."""

    watcher: RegistryWatcher
    task: asyncio.Task[None]
    batches: list[ChangeBatch] = field(default_factory=list)
    statuses: list[ConnectionStatus] = field(default_factory=list)

    @property
    def state(self) -> Any:
        return self.watcher.state

    def states_seen(self) -> list[ConnState]:
        return [s.state for s in self.statuses]

    def saw(self, *sequence: ConnState, since: int = 0) -> bool:
        """True when the statuses since index ``since`` contain ``sequence`` in order."""
        it = iter(self.states_seen()[since:])
        return all(any(s is wanted for s in it) for wanted in sequence)


@contextlib.asynccontextmanager
async def running_watcher(
    conn: EtcdConnection,
    live_timeout: float = 15.0,
    on_batch_list: list[ChangeBatch] | None = None,
    **kwargs: Any,
) -> AsyncIterator[WatcherRun]:
    """Start a watcher on ``conn``, wait until it is LIVE, cancel it on the way out
    (``on_batch_list``: collect the batches there, visible before it is LIVE)."""
    batches: list[ChangeBatch] = [] if on_batch_list is None else on_batch_list
    statuses: list[ConnectionStatus] = []
    watcher = RegistryWatcher(conn, on_batch=batches.append, on_status=statuses.append, **kwargs)
    task = asyncio.create_task(watcher.run(), name="test watcher")
    run = WatcherRun(watcher, task, batches, statuses)
    try:
        await watcher.wait_live(live_timeout)
        yield run
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def connection(
    endpoints: str | list[str] | tuple[str, ...], **kwargs: Any
) -> AsyncIterator[EtcdConnection]:
    """An EtcdConnection to ``endpoints`` (closed afterwards)."""
    if isinstance(endpoints, str):
        endpoints = (endpoints,)
    config = ConnectionConfig(endpoints=tuple(endpoints), **kwargs)
    conn = EtcdConnection(config)
    try:
        await conn.connect()
        yield conn
    finally:
        await conn.close()


def grant_lease_id(endpoint: str, ttl: int, lease_id: int) -> None:
    """Grant a lease with an id the client chose (etcd allows it; etcdctl cannot), through
    etcd's JSON gateway: a service deriving its lease id from its instance id does this."""
    import json
    import urllib.request

    request = urllib.request.Request(
        f"http://{endpoint}/v3/lease/grant",
        data=json.dumps({"TTL": ttl, "ID": lease_id}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # loopback only
        body = json.load(response)
    assert int(body.get("ID", 0)) == lease_id, body
