"""What the CLI's history read costs: events per second and peak memory (``VmHWM`` of the
CLI process, from ``wait4``) of ``history --json`` and ``list --json --history`` over N
revisions, against the same CLI reading one event (its baseline). The CLI prints events as
etcd replays them, so its memory should not grow with N.

Usage: ``python bench/history_cli_bench.py [--events 100000] [--value-bytes 100]``
(etcd 3.4 before 3.4.25 cannot always confirm a replay whose first batch takes over a
second to come: with large values at 100,000 revisions it may read none, and says so.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from etcd_registry_tui.demo.embedded import EmbeddedEtcd  # noqa: E402
from etcd_registry_tui.registry.etcd.config import ConnectionConfig  # noqa: E402
from etcd_registry_tui.registry.etcd.connection import EtcdConnection  # noqa: E402

CLI = [sys.executable, "-m", "etcd_registry_tui"]


async def write(endpoint: str, count: int, size: int) -> tuple[int, int]:
    async with EtcdConnection(ConnectionConfig(endpoints=(endpoint,))) as conn:
        first = end = 0
        for base in range(0, count, 250):
            done = await asyncio.gather(
                *(
                    conn.put(
                        f"/services/Orders/o{n % 50}".encode(),
                        json.dumps({"n": n, "pad": "x" * size}).encode(),
                    )
                    for n in range(base, min(base + 250, count))
                )
            )
            first = first or min(done)
            end = max(end, *done)
    return first, end


def measured(*args: str) -> tuple[int, int, float, int]:
    """Events printed, exit status, seconds, peak RSS in KiB of the CLI running ``args``."""
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        proc = subprocess.Popen([*CLI, *args], stdout=out, stderr=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        took = time.monotonic() - began
        out.seek(0)
        if args[0] == "list":
            lines = len(json.load(out).get("history", []))
        else:
            lines = sum(1 for line in out if b'"type"' not in line)
    return lines, os.waitstatus_to_exitcode(status), took, int(usage.ru_maxrss)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    opts = parser.parse_args()
    server = EmbeddedEtcd()
    server.start()
    try:
        began = time.monotonic()
        first, end = asyncio.run(write(server.endpoint, opts.events, opts.value_bytes))
        print(f"wrote {opts.events:,} revisions of ~{opts.value_bytes} B values"
              f" in {time.monotonic() - began:.0f} s")  # fmt: skip
        where = ("--endpoints", server.endpoint)
        _, _, _, baseline = measured("history", "--json", "--since-rev", str(end), *where)
        print(f"baseline (one event): peak RSS {baseline / 1024:.0f} MB")
        for name, args in (
            ("history --json", ("history", "--json", "--since-rev", str(first))),
            ("list --json --history", ("list", "--json", "--history", str(end - first + 1))),
        ):
            lines, code, took, peak = measured(*args, *where)
            print(f"{name}: status {code}, {lines:,} events, {took:.1f} s"
                  f" ({opts.events / took:,.0f} events/s), peak RSS {peak / 1024:.0f} MB"
                  f" (+{(peak - baseline) / 1024:.0f} MB)")  # fmt: skip
    finally:
        server.stop()


if __name__ == "__main__":
    main()
