"""The history's memory under large values (issue item 19, scaled down).

200 puts of a 1 MB value to five keys, etcd compacted every 50 puts, while a session
watches (the live path); then a second session reads the same history back at start (the
read-back path). Prints the process's RSS before and after each, and what the history holds.

    .venv/bin/python bench/history_memory.py
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402
from etcd_registry_tui.registry.session import RegistrySession  # noqa: E402

PREFIX = "/services/"
PUTS, KEYS, COMPACT_EVERY, SIZE = 200, 5, 50, 1_000_000


def rss_mb() -> float:
    gc.collect()
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def session_until(config: ConnectionConfig, done: object = None) -> RegistrySession:
    sess = RegistrySession(config)
    sess._runner = asyncio.create_task(sess.run())  # type: ignore[attr-defined]
    await sess.watcher.wait_live(30)
    for _ in range(300):
        if sess.history.loaded:
            break
        await asyncio.sleep(0.1)
    return sess


async def stop(sess: RegistrySession) -> None:
    sess._runner.cancel()  # type: ignore[attr-defined]
    await asyncio.gather(sess._runner, return_exceptions=True)  # type: ignore[attr-defined]
    await sess.shutdown()


def held_bytes(sess: RegistrySession) -> int:
    total = 0
    for e in sess.history:
        total += len(e.kv.value) if e.kv is not None else 0
        total += len(e.prev.value) if e.prev is not None else 0
    return total


async def main() -> None:
    server = EmbeddedEtcd()
    server.start()
    try:
        config = ConnectionConfig(endpoints=(server.endpoint,))
        base = rss_mb()
        live = await session_until(config)
        async with EtcdConnection(config) as writer:
            for n in range(PUTS):
                value = b'{"Id": "x", "pad": "' + bytes([97 + n % 26]) * SIZE + b'"}'
                rev = await writer.put(f"{PREFIX}Big/k{n % KEYS}".encode(), value)
                if n % COMPACT_EVERY == COMPACT_EVERY - 1 and n < PUTS - 1:
                    await writer.compact(rev)
        await asyncio.sleep(2)
        after_live = rss_mb()
        print(f"live: RSS {base:.0f} -> {after_live:.0f} MB; history holds {len(live.history)}"
              f" events, {held_bytes(live) / 1e6:.1f} MB of values")  # fmt: skip
        await stop(live)
        before_read = rss_mb()
        read = await session_until(config)
        after_read = rss_mb()
        values = held_bytes(read) / 1e6
        print(f"read back: RSS {before_read:.0f} -> {after_read:.0f} MB; history holds"
              f" {len(read.history)} events, {values:.1f} MB of values")  # fmt: skip
        await stop(read)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
