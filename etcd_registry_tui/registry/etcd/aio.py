"""Small asyncio helpers the data layer shares."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """``await awaitable`` for at most ``seconds`` (``None``: no limit); ``TimeoutError`` after.

    Use this, not ``asyncio.wait_for``: on Python 3.11, when the awaited thing completes
    just as the waiting task is cancelled, ``wait_for`` returns its result and the
    cancellation is lost (CPython gh-86296, fixed in 3.12 by building ``wait_for`` on
    ``asyncio.timeout``). A task that loops, like a watch or the lease tracker, then never
    stops, and whoever awaits its end hangs (seen in the demo fleet's election watch).
    """
    async with asyncio.timeout(seconds):
        return await awaitable
