"""What the CLI history tests share: running the CLI (to the end, or following it line by
line), writing many revisions fast, and etcdctl's witnesses of etcd's history."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from support.helpers import slack

PREFIX = "/services/"
CLI = [sys.executable, "-m", "etcd_registry_tui"]

#: ``next_line(timeout)``: the next line of a stream, or None after ``timeout`` seconds.
NextLine = Callable[[float], "str | None"]


def _env(env: dict[str, str] | None = None) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ETCDCTL_")}
    full.update(env or {})
    return full


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``args`` to its end (no ``ETCDCTL_*`` from the environment)."""
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=slack(timeout), env=_env(env)
    )


def json_lines(text: str) -> list[Any]:
    """Each line of ``text`` as JSON (``history --json``)."""
    return [json.loads(line) for line in text.splitlines()]


def line_reader(stream: Any) -> NextLine:
    """``next_line(timeout)``: the next line of ``stream`` (read on one thread), or None."""
    got: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [got.put(line) for line in stream], daemon=True).start()

    def next_line(timeout: float) -> str | None:
        try:
            return got.get(timeout=timeout)
        except queue.Empty:
            return None

    return next_line


@contextlib.contextmanager
def cli_lines(*args: str) -> Iterator[NextLine]:
    """The CLI running with ``args`` (``--follow``): its stdout line by line; terminated
    after."""
    proc = subprocess.Popen(
        [*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert proc.stdout is not None
        yield line_reader(proc.stdout)
    finally:
        proc.terminate()
        proc.wait(10)


def read_until(next_line: NextLine, done: Callable[[list[Any]], bool], wait: float = 30) -> list:
    """JSON lines from ``next_line`` until ``done(lines so far)``."""
    printed: list[Any] = []
    while not done(printed):
        line = next_line(wait)
        assert line is not None, f"no more lines after {printed}"
        printed.append(json.loads(line))
    return printed


def run_cli_measured(*args: str, timeout: float = 600) -> tuple[str, str, int, int]:
    """Run the CLI with ``args`` to its end, its stdout a pipe read as it comes: its
    stdout, stderr, exit status and peak resident memory in KiB (``wait4``: this child's
    own, not any other's)."""
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(
            [*CLI, *args], stdout=subprocess.PIPE, stderr=err, text=True, env=_env()
        )
        assert proc.stdout is not None
        out: list[str] = []
        reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)  # type: ignore[union-attr]
        reader.start()
        reader.join(timeout)
        assert not reader.is_alive(), "the CLI did not finish"
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return out[0], err.read(), proc.returncode, int(usage.ru_maxrss)


async def many_puts(
    endpoint: str, count: int, at_once: int = 250, value: Callable[[int], bytes] | None = None
) -> tuple[int, int]:
    """``count`` puts under the prefix (``Orders/first``, then ``Orders/o<n % 50>``),
    ``at_once`` at a time: one revision each. Returns the first and the last revision."""
    from support.helpers import connection

    make = value or (lambda n: f'{{"n": {n}}}'.encode())
    async with connection(endpoint) as conn:
        first = await conn.put(f"{PREFIX}Orders/first".encode(), b'{"Id": "first"}')
        for base in range(1, count, at_once):
            await asyncio.gather(
                *(
                    conn.put(f"{PREFIX}Orders/o{n % 50}".encode(), make(n))
                    for n in range(base, min(base + at_once, count))
                )
            )
        _, end = await conn.get_prefix(PREFIX.encode(), page_size=1, keys_only=True)
    return int(first), int(end)


def reader_only(etcdctl: Any) -> list[str]:
    """A user allowed to read only the prefix (it cannot watch every key, so a window with
    no event under the prefix cannot be proven quiet on this etcd); its login options."""
    etcdctl.run("user", "add", "root:pw")
    etcdctl.run("role", "add", "reader")
    etcdctl.run("role", "grant-permission", "reader", "--prefix=true", "read", PREFIX)
    etcdctl.run("user", "add", "reader:pw")
    etcdctl.run("user", "grant-role", "reader", "reader")
    etcdctl.run("auth", "enable")
    return ["--user", "reader:pw"]


def witness_at(etcdctl: Any, revision: int) -> dict[str, int]:
    """``etcdctl get --prefix --rev``: each key under the prefix then, and its mod_revision."""
    data = etcdctl.run_json("get", "--prefix", f"--rev={revision}", "--", PREFIX)
    return {
        base64.b64decode(kv["key"]).decode(errors="replace"): int(kv["mod_revision"])
        for kv in data.get("kvs") or []
    }


def witness_watch(
    endpoint: str, revision: int, until: int, prefix: str = PREFIX
) -> list[tuple[int, str, str]]:
    """``etcdctl watch --prefix --rev``: (revision, kind, key) of every event under
    ``prefix`` from ``revision`` to ``until``, in etcd's order; the kind as ``history``
    names it (a put of version 1 is a PUT, a later one an UPDATE)."""
    from support.etcdctl import require_etcdctl

    proc = subprocess.Popen(
        [require_etcdctl(), "--endpoints", endpoint, "watch", "--prefix",
         f"--rev={revision}", "-w", "json", prefix],
        stdout=subprocess.PIPE, text=True, env={**_env(), "ETCDCTL_API": "3"},
    )  # fmt: skip
    seen: list[tuple[int, str, str]] = []
    try:
        assert proc.stdout is not None
        next_line = line_reader(proc.stdout)
        while not seen or seen[-1][0] < until:
            line = next_line(30)
            assert line is not None, f"etcdctl watch stopped after {seen[-1:]}"
            for ev in json.loads(line).get("Events") or []:
                kv = ev["kv"]
                if ev.get("type") == 1:
                    kind = "DELETE"
                else:
                    kind = "PUT" if int(kv.get("version", 0)) == 1 else "UPDATE"
                seen.append((int(kv["mod_revision"]), kind, base64.b64decode(kv["key"]).decode()))
    finally:
        proc.terminate()
        proc.wait(10)
    return [s for s in seen if s[0] <= until]
