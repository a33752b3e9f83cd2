"""Reading what a program wrote to a pseudo-terminal (the real dashboard under test)."""

from __future__ import annotations

import os
import select
import time


def read_chunk(fd: int, wait: float) -> bytes | None:
    """What arrives within ``wait`` seconds: b"" if nothing, None once the terminal is closed
    (EOF, or EIO when the process is gone)."""
    if not select.select([fd], [], [], max(wait, 0))[0]:
        return b""
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        return None
    return chunk or None


def read_until(fd: int, *needles: bytes, timeout: float = 30) -> bytes:
    """Read until every one of ``needles`` has been written; return all bytes read."""
    seen = b""
    deadline = time.monotonic() + timeout
    while missing := [n for n in needles if n not in seen]:
        left = deadline - time.monotonic()
        assert left > 0, f"{missing!r} not written; the last bytes: {seen[-300:]!r}"
        chunk = read_chunk(fd, min(left, 0.2))
        if chunk is None:
            break
        seen += chunk
    return seen


def drain(fd: int, seconds: float) -> bytes:
    """What the terminal receives within ``seconds``."""
    seen = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        chunk = read_chunk(fd, min(left, 0.1))
        if chunk is None:
            break
        seen += chunk
    return seen


def settle(fd: int, quiet: float = 0.25, limit: float = 10.0) -> bytes:
    """What the terminal receives until the program has drawn: no output for ``quiet``
    seconds (a busy machine only makes this slower, never wrong)."""
    seen = b""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        chunk = read_chunk(fd, quiet)
        if not chunk:
            break
        seen += chunk
    return seen
